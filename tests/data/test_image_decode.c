/* PNG/JPEG decoding and resizing: tiny images written here with libpng and
 * libjpeg (grey, RGB, palette with tRNS, 1- and 16-bit, alpha, interlaced)
 * decode to the expected planes; truncated, corrupt, empty and non-image
 * files are refused naming the file; the resize filter matches its
 * definition (block means, bilinear taps) exactly. */
#include <criterion/criterion.h>
#include "timeout.h"
#include "test_data_util.h"
#include "test_image_util.h"
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/image_decode.h"

static char dir[256];

static void setup(void) { td_tmpdir(dir, sizeof dir); }
static void teardown(void) { td_rmtree(dir); }

TestSuite(image_decode, .init = setup, .fini = teardown, .timeout = DP_TIMEOUT(30));

static const char *tmp(const char *name)
{
    static char p[4][400];
    static int k;
    k = (k + 1) % 4;
    td_path(p[k], sizeof p[k], dir, name);
    return p[k];
}

static uint8_t luma(int r, int g, int b) { return (uint8_t)((19595u * r + 38470u * g + 7471u * b + 0x8000u) >> 16); }

/* Decodes path at `ch` channels and checks the size. */
static uint8_t *decode(const char *path, int ch, int h, int w)
{
    uint8_t *px = NULL;
    int gh = 0, gw = 0;
    dp_status rc = dp_image_decode(path, ch, &px, &gh, &gw);
    cr_assert_eq(rc, DP_OK, "%s", dp_errmsg());
    cr_assert_eq(gh, h);
    cr_assert_eq(gw, w);
    return px;
}

enum { W = 5, H = 3 };

Test(image_decode, grey8_png)
{
    uint8_t g[H * W];
    for (int i = 0; i < H * W; i++)
        g[i] = (uint8_t)(i * 17);
    const char *p = tmp("g.png");
    cr_assert_eq(ti_write_png(p, W, H, PNG_COLOR_TYPE_GRAY, 8, g, NULL, 0, NULL, 0, 0), 0);
    dp_image_info info;
    cr_assert_eq(dp_image_probe(p, &info), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(info.width, W);
    cr_assert_eq(info.height, H);
    cr_assert_eq(info.channels, 1);
    cr_assert_eq(info.has_alpha, 0);
    cr_assert_str_eq(info.format, "png");
    uint8_t *px = decode(p, 1, H, W);
    cr_assert_arr_eq(px, g, sizeof g);
    free(px);
    px = decode(p, 3, H, W); /* grey -> RGB replicates */
    for (int c = 0; c < 3; c++)
        cr_assert_arr_eq(px + c * H * W, g, sizeof g);
    free(px);
}

Test(image_decode, rgb8_png_and_luma)
{
    uint8_t rgb[H * W * 3];
    for (int i = 0; i < H * W * 3; i++)
        rgb[i] = (uint8_t)(i * 29 + 7);
    const char *p = tmp("rgb.png");
    cr_assert_eq(ti_write_png(p, W, H, PNG_COLOR_TYPE_RGB, 8, rgb, NULL, 0, NULL, 0, 0), 0);
    dp_image_info info;
    cr_assert_eq(dp_image_probe(p, &info), DP_OK);
    cr_assert_eq(info.channels, 3);
    uint8_t *px = decode(p, 3, H, W);
    for (int i = 0; i < H * W; i++)
        for (int c = 0; c < 3; c++)
            cr_assert_eq(px[c * H * W + i], rgb[i * 3 + c], "pixel %d channel %d", i, c);
    free(px);
    px = decode(p, 1, H, W);
    for (int i = 0; i < H * W; i++)
        cr_assert_eq(px[i], luma(rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]));
    free(px);
}

Test(image_decode, interlaced_png_equals_plain)
{
    uint8_t rgb[9 * 11 * 3];
    for (int i = 0; i < (int)sizeof rgb; i++)
        rgb[i] = (uint8_t)(i * 13 + (i >> 3));
    cr_assert_eq(ti_write_png(tmp("i.png"), 11, 9, PNG_COLOR_TYPE_RGB, 8, rgb, NULL, 0, NULL, 0, 1), 0);
    cr_assert_eq(ti_write_png(tmp("p.png"), 11, 9, PNG_COLOR_TYPE_RGB, 8, rgb, NULL, 0, NULL, 0, 0), 0);
    uint8_t *a = decode(tmp("i.png"), 3, 9, 11), *b = decode(tmp("p.png"), 3, 9, 11);
    cr_assert_arr_eq(a, b, sizeof rgb);
    free(a);
    free(b);
}

Test(image_decode, palette_png_with_trns)
{
    const uint8_t pal[4 * 3] = {10, 20, 30, 200, 100, 0, 0, 255, 128, 77, 77, 77};
    const uint8_t trns[4] = {0, 128, 255, 255};
    /* 2 bits an index, W = 5 pixels -> 2 bytes a row */
    const int idx[H][W] = {{0, 1, 2, 3, 0}, {3, 2, 1, 0, 1}, {2, 2, 3, 3, 1}};
    uint8_t data[H * 2] = {0};
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            data[y * 2 + x / 4] |= (uint8_t)(idx[y][x] << (6 - 2 * (x % 4)));
    const char *p = tmp("pal.png");
    cr_assert_eq(ti_write_png(p, W, H, PNG_COLOR_TYPE_PALETTE, 2, data, pal, 4, trns, 4, 0), 0);
    dp_image_info info;
    cr_assert_eq(dp_image_probe(p, &info), DP_OK);
    cr_assert_eq(info.channels, 3);
    cr_assert_eq(info.has_alpha, 1);
    cr_assert_eq(info.bit_depth, 2);
    uint8_t *px = decode(p, 3, H, W);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++)
                cr_assert_eq(px[c * H * W + y * W + x], pal[idx[y][x] * 3 + c], "(%d,%d) channel %d", y, x, c);
    free(px);
}

Test(image_decode, grey16_png_scaled_and_grey1_expanded)
{
    uint8_t d16[H * W * 2];
    for (int i = 0; i < H * W; i++) { /* v = 257 * k maps exactly to k */
        unsigned v = 257u * (unsigned)(i * 18);
        d16[2 * i] = (uint8_t)(v >> 8);
        d16[2 * i + 1] = (uint8_t)v;
    }
    const char *p = tmp("g16.png");
    cr_assert_eq(ti_write_png(p, W, H, PNG_COLOR_TYPE_GRAY, 16, d16, NULL, 0, NULL, 0, 0), 0);
    dp_image_info info;
    cr_assert_eq(dp_image_probe(p, &info), DP_OK);
    cr_assert_eq(info.bit_depth, 16);
    uint8_t *px = decode(p, 1, H, W);
    for (int i = 0; i < H * W; i++)
        cr_assert_eq(px[i], i * 18, "pixel %d", i);
    free(px);

    uint8_t d1[H] = {0xa8, 0x50, 0xf8}; /* 10101, 01010, 11111 */
    p = tmp("g1.png");
    cr_assert_eq(ti_write_png(p, W, H, PNG_COLOR_TYPE_GRAY, 1, d1, NULL, 0, NULL, 0, 0), 0);
    px = decode(p, 1, H, W);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            cr_assert_eq(px[y * W + x], (d1[y] >> (7 - x)) & 1 ? 255 : 0);
    free(px);
}

Test(image_decode, rgb16_png_scaled)
{
    uint8_t d[H * W * 6];
    for (int i = 0; i < H * W * 3; i++) {
        unsigned v = 257u * (unsigned)((i * 37) % 256);
        d[2 * i] = (uint8_t)(v >> 8);
        d[2 * i + 1] = (uint8_t)v;
    }
    const char *p = tmp("rgb16.png");
    cr_assert_eq(ti_write_png(p, W, H, PNG_COLOR_TYPE_RGB, 16, d, NULL, 0, NULL, 0, 0), 0);
    uint8_t *px = decode(p, 3, H, W);
    for (int i = 0; i < H * W; i++)
        for (int c = 0; c < 3; c++)
            cr_assert_eq(px[c * H * W + i], ((i * 3 + c) * 37) % 256);
    free(px);
}

Test(image_decode, alpha_is_dropped)
{
    uint8_t ga[H * W * 2], rgba[H * W * 4];
    for (int i = 0; i < H * W; i++) {
        ga[2 * i] = (uint8_t)(i * 11);
        ga[2 * i + 1] = (uint8_t)(i * 3); /* alpha: must not change the grey */
        for (int c = 0; c < 3; c++)
            rgba[4 * i + c] = (uint8_t)(i * 7 + c * 50);
        rgba[4 * i + 3] = (uint8_t)(255 - i);
    }
    const char *pg = tmp("ga.png"), *pr = tmp("rgba.png");
    cr_assert_eq(ti_write_png(pg, W, H, PNG_COLOR_TYPE_GRAY_ALPHA, 8, ga, NULL, 0, NULL, 0, 0), 0);
    cr_assert_eq(ti_write_png(pr, W, H, PNG_COLOR_TYPE_RGB_ALPHA, 8, rgba, NULL, 0, NULL, 0, 0), 0);
    dp_image_info info;
    cr_assert_eq(dp_image_probe(pg, &info), DP_OK);
    cr_assert_eq(info.channels, 1);
    cr_assert_eq(info.has_alpha, 1);
    uint8_t *px = decode(pg, 1, H, W);
    for (int i = 0; i < H * W; i++)
        cr_assert_eq(px[i], ga[2 * i]);
    free(px);
    px = decode(pr, 3, H, W);
    for (int i = 0; i < H * W; i++)
        for (int c = 0; c < 3; c++)
            cr_assert_eq(px[c * H * W + i], rgba[4 * i + c]);
    free(px);
    px = decode(pr, 1, H, W);
    for (int i = 0; i < H * W; i++)
        cr_assert_eq(px[i], luma(rgba[4 * i], rgba[4 * i + 1], rgba[4 * i + 2]));
    free(px);
}

Test(image_decode, jpeg_grey_and_rgb)
{
    enum { JW = 16, JH = 8 };
    uint8_t g[JH * JW], rgb[JH * JW * 3];
    for (int y = 0; y < JH; y++)
        for (int x = 0; x < JW; x++) { /* smooth, so quality 100 stays within a few levels */
            g[y * JW + x] = (uint8_t)(60 + 4 * x + 3 * y);
            for (int c = 0; c < 3; c++)
                rgb[(y * JW + x) * 3 + c] = (uint8_t)(40 + 5 * x + 2 * y + 40 * c);
        }
    const char *pg = tmp("g.jpg"), *pc = tmp("c.JPEG");
    cr_assert_eq(ti_write_jpeg(pg, JW, JH, 1, g, 100), 0);
    cr_assert_eq(ti_write_jpeg(pc, JW, JH, 3, rgb, 100), 0);
    dp_image_info info;
    cr_assert_eq(dp_image_probe(pg, &info), DP_OK, "%s", dp_errmsg());
    cr_assert_eq(info.channels, 1);
    cr_assert_str_eq(info.format, "jpeg");
    cr_assert_eq(dp_image_probe(pc, &info), DP_OK);
    cr_assert_eq(info.channels, 3);
    cr_assert_eq(info.width, JW);
    cr_assert_eq(info.height, JH);
    uint8_t *px = decode(pg, 1, JH, JW);
    for (int i = 0; i < JH * JW; i++)
        cr_assert(abs(px[i] - g[i]) <= 2, "grey pixel %d: %d vs %d", i, px[i], g[i]);
    free(px);
    uint8_t *c3 = decode(pc, 3, JH, JW), *c1 = decode(pc, 1, JH, JW);
    for (int i = 0; i < JH * JW; i++) {
        for (int c = 0; c < 3; c++)
            cr_assert(abs(c3[c * JH * JW + i] - rgb[i * 3 + c]) <= 4, "pixel %d channel %d", i, c);
        /* grey from a colour JPEG = luma of its own RGB decode */
        cr_assert_eq(c1[i], luma(c3[i], c3[JH * JW + i], c3[2 * JH * JW + i]));
    }
    free(c3);
    free(c1);
}

/* The error must be a format error that names the file and says `what`. */
static void expect_error(const char *path, dp_status want, const char *what)
{
    uint8_t *px = (uint8_t *)1;
    int h, w;
    dp_status rc = dp_image_decode(path, 3, &px, &h, &w);
    cr_assert_eq(rc, want, "%s: got %d: %s", path, rc, dp_errmsg());
    cr_assert_null(px);
    cr_assert(strstr(dp_errmsg(), path), "message names the file: %s", dp_errmsg());
    cr_assert(strstr(dp_errmsg(), what), "message says '%s': %s", what, dp_errmsg());
}

Test(image_decode, truncated_png_and_jpeg)
{
    uint8_t rgb[32 * 32 * 3];
    for (int i = 0; i < (int)sizeof rgb; i++)
        rgb[i] = (uint8_t)((i * 7919) >> 3);
    const char *p = tmp("t.png"), *j = tmp("t.jpg");
    cr_assert_eq(ti_write_png(p, 32, 32, PNG_COLOR_TYPE_RGB, 8, rgb, NULL, 0, NULL, 0, 0), 0);
    cr_assert_eq(ti_write_jpeg(j, 32, 32, 3, rgb, 90), 0);
    size_t lp, lj;
    free(td_read(p, &lp));
    free(td_read(j, &lj));
    td_truncate(p, (long)lp / 2);
    expect_error(p, DP_ERR_FORMAT, "truncated");
    td_truncate(p, 20); /* inside IHDR: the probe fails too */
    dp_image_info info;
    cr_assert_eq(dp_image_probe(p, &info), DP_ERR_FORMAT);
    cr_assert(strstr(dp_errmsg(), "truncated"), "%s", dp_errmsg());
    td_truncate(j, (long)lj / 2);
    expect_error(j, DP_ERR_FORMAT, "Premature end of JPEG file");
    cr_assert_eq(ti_write_jpeg(j, 32, 32, 3, rgb, 90), 0);
    td_truncate(j, (long)lj - 2); /* only the EOI marker gone */
    expect_error(j, DP_ERR_FORMAT, "Premature end of JPEG file");
}

Test(image_decode, png_missing_iend_is_truncated)
{
    uint8_t g[4 * 4] = {0};
    const char *p = tmp("e.png");
    cr_assert_eq(ti_write_png(p, 4, 4, PNG_COLOR_TYPE_GRAY, 8, g, NULL, 0, NULL, 0, 0), 0);
    size_t n;
    free(td_read(p, &n));
    td_truncate(p, (long)n - 12); /* the IEND chunk */
    expect_error(p, DP_ERR_FORMAT, "truncated");
}

Test(image_decode, corrupt_png_crc)
{
    uint8_t g[8 * 8];
    for (int i = 0; i < 64; i++)
        g[i] = (uint8_t)i;
    const char *p = tmp("crc.png");
    cr_assert_eq(ti_write_png(p, 8, 8, PNG_COLOR_TYPE_GRAY, 8, g, NULL, 0, NULL, 0, 0), 0);
    td_flip(p, 8 + 25 + 8 + 2, 0x10); /* a byte of the IDAT data */
    expect_error(p, DP_ERR_FORMAT, "PNG");
}

Test(image_decode, not_an_image_empty_missing)
{
    const char *t = tmp("notes.png");
    td_write(t, "hello, world\n", 13);
    expect_error(t, DP_ERR_FORMAT, "not a PNG or JPEG image");
    dp_image_info info;
    cr_assert_eq(dp_image_probe(t, &info), DP_ERR_FORMAT);
    const char *e = tmp("empty.jpg");
    td_write(e, "", 0);
    expect_error(e, DP_ERR_FORMAT, "empty file");
    expect_error(tmp("missing.png"), DP_ERR_IO, "No such file");
    uint8_t *px;
    int h, w;
    cr_assert_eq(dp_image_decode(t, 2, &px, &h, &w), DP_ERR_ARG);
}

Test(image_decode, jpeg_header_garbage)
{
    const uint8_t junk[] = {0xff, 0xd8, 0xff, 0xe0, 0x00, 0x02, 0xff, 0x01, 0x02, 0x03};
    const char *j = tmp("junk.jpg");
    td_write(j, junk, sizeof junk);
    expect_error(j, DP_ERR_FORMAT, "JPEG");
}

/* ---------------------------------------------------------------- resize */

static void resize(const uint8_t *src, int c, int sh, int sw, uint8_t *dst, int dh, int dw)
{
    cr_assert_eq(dp_image_resize(src, c, sh, sw, dst, dh, dw), DP_OK, "%s", dp_errmsg());
}

Test(image_decode, resize_identity_and_block_means)
{
    uint8_t src[2 * 6 * 8], dst[2 * 6 * 8];
    for (int i = 0; i < (int)sizeof src; i++)
        src[i] = (uint8_t)(i * 37 + 11);
    resize(src, 2, 6, 8, dst, 6, 8);
    cr_assert_arr_eq(dst, src, sizeof src);
    resize(src, 2, 6, 8, dst, 3, 4); /* 2x2 blocks, mean rounded half up */
    for (int c = 0; c < 2; c++)
        for (int y = 0; y < 3; y++)
            for (int x = 0; x < 4; x++) {
                const uint8_t *s = src + c * 48 + 2 * y * 8 + 2 * x;
                int sum = s[0] + s[1] + s[8] + s[9];
                cr_assert_eq(dst[c * 12 + y * 4 + x], (sum + 2) / 4, "(%d,%d,%d)", c, y, x);
            }
    resize(src, 2, 6, 8, dst, 2, 8); /* 3:1 rows, columns kept */
    for (int c = 0; c < 2; c++)
        for (int y = 0; y < 2; y++)
            for (int x = 0; x < 8; x++) {
                const uint8_t *s = src + c * 48 + 3 * y * 8 + x;
                int sum = s[0] + s[8] + s[16];
                cr_assert_eq(dst[c * 16 + y * 8 + x], (2 * sum + 3) / 6);
            }
}

Test(image_decode, resize_area_fractional)
{
    /* 3 -> 2: output 0 = (2 a + b) / 3, output 1 = (b + 2 c) / 3 */
    const uint8_t src[3] = {0, 100, 201};
    uint8_t dst[2];
    resize(src, 1, 1, 3, dst, 1, 2);
    cr_assert_eq(dst[0], (0 * 2 + 100 + 1) / 3);
    cr_assert_eq(dst[1], (100 + 2 * 201 + 1) / 3);
    uint8_t flat[7 * 9], out[4 * 5];
    memset(flat, 93, sizeof flat);
    resize(flat, 1, 7, 9, out, 4, 5); /* a constant stays constant */
    for (int i = 0; i < 20; i++)
        cr_assert_eq(out[i], 93);
}

Test(image_decode, resize_bilinear_grow)
{
    /* 2 -> 4 (PyTorch bilinear, align_corners=False): a, .75a+.25b, .25a+.75b, b */
    const uint8_t src[2] = {10, 90};
    uint8_t dst[4];
    resize(src, 1, 1, 2, dst, 1, 4);
    cr_assert_eq(dst[0], 10);
    cr_assert_eq(dst[1], 30);
    cr_assert_eq(dst[2], 70);
    cr_assert_eq(dst[3], 90);
    uint8_t one = 200, big[3 * 5];
    resize(&one, 1, 1, 1, big, 3, 5);
    for (int i = 0; i < 15; i++)
        cr_assert_eq(big[i], 200);
    /* shrink rows, grow columns: 2x1 -> 1x2 is the row mean in both columns */
    const uint8_t col[2] = {11, 20};
    uint8_t row[2];
    resize(col, 1, 2, 1, row, 1, 2);
    cr_assert_eq(row[0], 16);
    cr_assert_eq(row[1], 16);
}

Test(image_decode, resize_matches_float_reference)
{
    /* random sizes: each output within 1 of a double-precision evaluation of the same definition */
    unsigned s = 12345;
    for (int t = 0; t < 40; t++) {
        s = s * 1103515245u + 12345u;
        int sh = 1 + (s >> 8) % 13, sw = 1 + (s >> 16) % 13, dh = 1 + (s >> 4) % 11, dw = 1 + (s >> 20) % 11;
        uint8_t src[13 * 13], dst[11 * 11];
        for (int i = 0; i < sh * sw; i++)
            src[i] = (uint8_t)((i * 2654435761u) >> 24);
        resize(src, 1, sh, sw, dst, dh, dw);
        double wy[11][13] = {{0}}, wx[11][13] = {{0}};
        for (int a = 0; a < 2; a++) {
            int S = a ? sw : sh, D = a ? dw : dh;
            double(*w)[13] = a ? wx : wy;
            for (int i = 0; i < D; i++) {
                if (D <= S) {
                    double lo = (double)i * S / D, hi = (double)(i + 1) * S / D;
                    for (int j = 0; j < S; j++) {
                        double o = (hi < j + 1 ? hi : j + 1) - (lo > j ? lo : j);
                        if (o > 0)
                            w[i][j] = o / ((double)S / D);
                    }
                } else {
                    double x = (i + 0.5) * S / D - 0.5;
                    x = x < 0 ? 0 : x > S - 1 ? S - 1 : x;
                    int x0 = (int)x;
                    double f = x - x0;
                    w[i][x0] += 1 - f;
                    if (f > 0)
                        w[i][x0 + 1] += f;
                }
            }
        }
        for (int y = 0; y < dh; y++)
            for (int x = 0; x < dw; x++) {
                double v = 0;
                for (int j = 0; j < sh; j++)
                    for (int k = 0; k < sw; k++)
                        v += wy[y][j] * wx[x][k] * src[j * sw + k];
                cr_assert(fabs(dst[y * dw + x] - v) <= 0.5 + 1e-9, "%dx%d -> %dx%d at (%d,%d): %d vs %.4f", sh, sw,
                          dh, dw, y, x, dst[y * dw + x], v);
            }
    }
}

Test(image_decode, resize_refuses_bad_sides)
{
    uint8_t b[4] = {0};
    cr_assert_eq(dp_image_resize(b, 1, 0, 2, b, 1, 1), DP_ERR_ARG);
    cr_assert_eq(dp_image_resize(b, 1, 2, 2, b, 1, DP_IMAGE_MAX_SIDE + 1), DP_ERR_ARG);
}
