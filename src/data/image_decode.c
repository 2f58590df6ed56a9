/* PNG and JPEG files -> uint8 CHW planes (grey or RGB), through libpng and
 * libjpeg-turbo. Both libraries report errors by calling a handler that must
 * not return; ours longjmp back to the one setjmp of each decode, which frees
 * what was allocated since (the pointers it frees are volatile, so their
 * values survive the jump) and turns the library's text into a dp_status.
 * Conversions are listed in include/dptrain/image_decode.h. */
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h> /* message codes, after jpeglib.h */
#include <png.h>

#include "dptrain/image_decode.h"
#include "dptrain/infile.h"

enum { FMT_PNG = 1, FMT_JPEG = 2 };

/* Opens `path` and tells its format from the first bytes; the stream is left
 * at offset 0. */
static dp_status open_image(const char *path, FILE **out, int *fmt)
{
    *out = NULL;
    FILE *f;
    dp_status orc = dp_fopen_regular(path, 0, &f);
    if (orc != DP_OK)
        return orc;
    unsigned char sig[8] = {0};
    size_t n = fread(sig, 1, sizeof sig, f);
    dp_status rc = DP_OK;
    if (ferror(f))
        rc = dp_errorf(DP_ERR_IO, "%s: read: %s", path, strerror(errno));
    else if (n == 0)
        rc = dp_errorf(DP_ERR_FORMAT, "%s: empty file, not an image", path);
    else if (n == sizeof sig && !png_sig_cmp(sig, 0, sizeof sig))
        *fmt = FMT_PNG;
    else if (n >= 3 && sig[0] == 0xff && sig[1] == 0xd8 && sig[2] == 0xff)
        *fmt = FMT_JPEG;
    else
        rc = dp_errorf(DP_ERR_FORMAT, "%s: not a PNG or JPEG image (starts with bytes %02x %02x %02x %02x)", path,
                       sig[0], sig[1], sig[2], sig[3]);
    if (rc == DP_OK && fseek(f, 0, SEEK_SET) != 0)
        rc = dp_errorf(DP_ERR_IO, "%s: seek: %s", path, strerror(errno));
    if (rc != DP_OK) {
        fclose(f);
        return rc;
    }
    *out = f;
    return DP_OK;
}

static dp_status check_size(unsigned long w, unsigned long h, char *msg, size_t cap)
{
    if (w == 0 || h == 0 || w > DP_IMAGE_MAX_SIDE || h > DP_IMAGE_MAX_SIDE ||
        (unsigned long long)w * h > DP_IMAGE_MAX_PIXELS) {
        snprintf(msg, cap, "image is %lux%lu (width x height), outside 1..%d a side and %d pixels", w, h,
                 DP_IMAGE_MAX_SIDE, DP_IMAGE_MAX_PIXELS);
        return DP_ERR_FORMAT;
    }
    return DP_OK;
}

/* PIL's convert("L"): ITU-R 601-2 luma in 16-bit fixed point. */
static inline uint8_t luma(const uint8_t *p)
{
    return (uint8_t)((19595u * p[0] + 38470u * p[1] + 7471u * p[2] + 0x8000u) >> 16);
}

/* Interleaved rows of n_in samples a pixel (1 grey, 2 grey+alpha, 3 RGB,
 * 4 RGBA) -> `want` planes; alpha is dropped. */
static void to_planes(const uint8_t *src, int n_in, size_t hw, int want, uint8_t *dst)
{
    int colour = n_in >= 3;
    for (size_t i = 0; i < hw; i++) {
        const uint8_t *p = src + i * (size_t)n_in;
        if (want == 1) {
            dst[i] = colour ? luma(p) : p[0];
        } else {
            dst[i] = p[0];
            dst[hw + i] = colour ? p[1] : p[0];
            dst[2 * hw + i] = colour ? p[2] : p[0];
        }
    }
}

/* ------------------------------------------------------------------ PNG */

typedef struct png_ctx {
    FILE *f;
    dp_status status; /* of the failure that jumped: FORMAT unless set otherwise */
    char msg[256];
} png_ctx;

static void png_on_error(png_structp png, png_const_charp msg)
{
    png_ctx *c = png_get_error_ptr(png);
    if (!c->msg[0])
        snprintf(c->msg, sizeof c->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png, (void)msg; /* ancillary-chunk complaints (e.g. an sRGB profile) do not stop a decode */
}

static void png_fail(png_structp png, dp_status s, const char *msg)
{
    png_ctx *c = png_get_error_ptr(png);
    c->status = s;
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    png_longjmp(png, 1);
}

/* libpng's default reader says only "Read Error"; this one tells a short file
 * from a failing disk. */
static void png_read_cb(png_structp png, png_bytep data, size_t len)
{
    png_ctx *c = png_get_io_ptr(png);
    if (fread(data, 1, len, c->f) == len)
        return;
    char msg[128];
    if (ferror(c->f)) {
        snprintf(msg, sizeof msg, "read: %s", strerror(errno));
        png_fail(png, DP_ERR_IO, msg);
    }
    snprintf(msg, sizeof msg, "truncated: the file ends at byte %ld inside the PNG data", ftell(c->f));
    png_fail(png, DP_ERR_FORMAT, msg);
}

static dp_status png_run(const char *path, FILE *f, int want, dp_image_info *info, uint8_t **out, int *oh, int *ow)
{
    png_ctx ctx = {.f = f, .status = DP_ERR_FORMAT};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, png_on_error, png_on_warning);
    png_infop pi = png ? png_create_info_struct(png) : NULL;
    if (!pi) {
        png_destroy_read_struct(&png, NULL, NULL);
        return dp_errorf(DP_ERR_NOMEM, "%s: out of memory for the PNG decoder", path);
    }
    uint8_t *volatile buf = NULL;
    png_bytep *volatile rows = NULL;
    uint8_t *volatile planes = NULL;
    if (setjmp(png_jmpbuf(png))) {
        free(buf);
        free(rows);
        free(planes);
        png_destroy_read_struct(&png, &pi, NULL);
        return dp_errorf(ctx.status, "%s: PNG: %s", path, ctx.msg[0] ? ctx.msg : "decoding failed");
    }
    png_set_read_fn(png, &ctx, png_read_cb);
    png_set_user_limits(png, DP_IMAGE_MAX_SIDE, DP_IMAGE_MAX_SIDE);
    png_read_info(png, pi);
    png_uint_32 w, h;
    int depth, ctype;
    png_get_IHDR(png, pi, &w, &h, &depth, &ctype, NULL, NULL, NULL);
    char msg[256];
    if (check_size(w, h, msg, sizeof msg) != DP_OK)
        png_fail(png, DP_ERR_FORMAT, msg);
    info->width = (int)w;
    info->height = (int)h;
    info->channels = (ctype & PNG_COLOR_MASK_COLOR) ? 3 : 1;
    info->has_alpha = (ctype & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, pi, PNG_INFO_tRNS);
    info->bit_depth = depth;
    info->format = "png";
    if (out) {
        if (ctype == PNG_COLOR_TYPE_PALETTE)
            png_set_palette_to_rgb(png); /* may add alpha from tRNS: to_planes drops it */
        if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8)
            png_set_expand_gray_1_2_4_to_8(png);
        if (depth == 16)
            png_set_scale_16(png);
        png_set_interlace_handling(png);
        png_read_update_info(png, pi);
        int nch = png_get_channels(png, pi);
        size_t rowbytes = png_get_rowbytes(png, pi);
        if (nch < 1 || nch > 4 || png_get_bit_depth(png, pi) != 8 || rowbytes != (size_t)w * (size_t)nch)
            png_fail(png, DP_ERR_FORMAT, "unsupported sample layout after conversion to 8 bits");
        size_t hw = (size_t)w * h;
        buf = malloc(hw * (size_t)nch);
        rows = malloc(h * sizeof *rows);
        planes = malloc(hw * (size_t)want);
        if (!buf || !rows || !planes)
            png_fail(png, DP_ERR_NOMEM, "out of memory for the pixels");
        for (png_uint_32 y = 0; y < h; y++)
            rows[y] = buf + (size_t)y * rowbytes;
        png_read_image(png, rows);
        png_read_end(png, NULL); /* to IEND: a file cut after the pixels is still truncated */
        to_planes(buf, nch, hw, want, planes);
        *out = planes;
        *oh = (int)h;
        *ow = (int)w;
    }
    free(buf);
    free(rows);
    png_destroy_read_struct(&png, &pi, NULL);
    return DP_OK;
}

/* ----------------------------------------------------------------- JPEG */

typedef struct jpeg_ctx {
    struct jpeg_error_mgr pub; /* first: libjpeg hands back a pointer to it */
    jmp_buf jb;
    dp_status status;
    char msg[JMSG_LENGTH_MAX + 64];
} jpeg_ctx;

static void jpeg_on_exit(j_common_ptr ci)
{
    jpeg_ctx *c = (jpeg_ctx *)ci->err;
    char m[JMSG_LENGTH_MAX];
    ci->err->format_message(ci, m);
    snprintf(c->msg, sizeof c->msg, "%s", m);
    longjmp(c->jb, 1);
}

/* Warnings (level -1) are corrupt or missing data that libjpeg would paper
 * over with grey: "Premature end of JPEG file" is a truncated file. Each one
 * fails the decode, except bytes between markers, which many cameras write
 * and which lose no pixels. */
static void jpeg_on_message(j_common_ptr ci, int level)
{
    if (level >= 0 || ci->err->msg_code == JWRN_EXTRANEOUS_DATA)
        return;
    jpeg_ctx *c = (jpeg_ctx *)ci->err;
    char m[JMSG_LENGTH_MAX];
    ci->err->format_message(ci, m);
    snprintf(c->msg, sizeof c->msg, "truncated or corrupt data: %s", m);
    longjmp(c->jb, 1);
}

static void jpeg_fail(j_decompress_ptr ci, dp_status s, const char *msg)
{
    jpeg_ctx *c = (jpeg_ctx *)ci->err;
    c->status = s;
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    longjmp(c->jb, 1);
}

static dp_status jpeg_run(const char *path, FILE *f, int want, dp_image_info *info, uint8_t **out, int *oh, int *ow)
{
    struct jpeg_decompress_struct ci;
    jpeg_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.status = DP_ERR_FORMAT;
    uint8_t *volatile buf = NULL;
    uint8_t *volatile planes = NULL;
    ci.err = jpeg_std_error(&ctx.pub);
    ctx.pub.error_exit = jpeg_on_exit;
    ctx.pub.emit_message = jpeg_on_message;
    if (setjmp(ctx.jb)) {
        free(buf);
        free(planes);
        jpeg_destroy_decompress(&ci);
        return dp_errorf(ctx.status, "%s: JPEG: %s", path, ctx.msg[0] ? ctx.msg : "decoding failed");
    }
    jpeg_create_decompress(&ci);
    jpeg_stdio_src(&ci, f);
    jpeg_read_header(&ci, TRUE);
    char msg[256];
    if (check_size(ci.image_width, ci.image_height, msg, sizeof msg) != DP_OK)
        jpeg_fail(&ci, DP_ERR_FORMAT, msg);
    int grey = ci.jpeg_color_space == JCS_GRAYSCALE;
    if (!grey && ci.jpeg_color_space != JCS_YCbCr && ci.jpeg_color_space != JCS_RGB) {
        snprintf(msg, sizeof msg, "unsupported colour space %s (only grey, YCbCr and RGB)",
                 ci.jpeg_color_space == JCS_CMYK ? "CMYK" : ci.jpeg_color_space == JCS_YCCK ? "YCCK" : "(unknown)");
        jpeg_fail(&ci, DP_ERR_FORMAT, msg);
    }
    info->width = (int)ci.image_width;
    info->height = (int)ci.image_height;
    info->channels = grey ? 1 : 3;
    info->has_alpha = 0;
    info->bit_depth = ci.data_precision;
    info->format = "jpeg";
    if (out) {
        /* Colour is decoded to RGB and made grey by to_planes, so a colour JPEG and
         * the same picture as a PNG give the same grey. */
        ci.out_color_space = grey ? JCS_GRAYSCALE : JCS_RGB;
        jpeg_start_decompress(&ci);
        int nch = ci.output_components;
        if ((nch != 1 && nch != 3) || ci.output_width != ci.image_width || ci.output_height != ci.image_height)
            jpeg_fail(&ci, DP_ERR_FORMAT, "unexpected decoder output layout");
        size_t w = ci.output_width, h = ci.output_height, rowbytes = w * (size_t)nch;
        buf = malloc(h * rowbytes);
        planes = malloc(h * w * (size_t)want);
        if (!buf || !planes)
            jpeg_fail(&ci, DP_ERR_NOMEM, "out of memory for the pixels");
        while (ci.output_scanline < ci.output_height) {
            JSAMPROW row = buf + (size_t)ci.output_scanline * rowbytes;
            jpeg_read_scanlines(&ci, &row, 1);
        }
        jpeg_finish_decompress(&ci); /* to EOI: a file cut after the last scan is still truncated */
        to_planes(buf, nch, h * w, want, planes);
        *out = planes;
        *oh = (int)h;
        *ow = (int)w;
    }
    free(buf);
    jpeg_destroy_decompress(&ci);
    return DP_OK;
}

/* ---------------------------------------------------------------- entry */

static dp_status run(const char *path, int want, dp_image_info *info, uint8_t **out, int *oh, int *ow)
{
    FILE *f;
    int fmt = 0;
    dp_status rc = open_image(path, &f, &fmt);
    if (rc != DP_OK)
        return rc;
    rc = fmt == FMT_PNG ? png_run(path, f, want, info, out, oh, ow) : jpeg_run(path, f, want, info, out, oh, ow);
    fclose(f);
    return rc;
}

dp_status dp_image_probe(const char *path, dp_image_info *info)
{
    memset(info, 0, sizeof *info);
    return run(path, 0, info, NULL, NULL, NULL);
}

dp_status dp_image_decode(const char *path, int channels, uint8_t **pixels, int *height, int *width)
{
    *pixels = NULL;
    if (channels != 1 && channels != 3)
        return dp_errorf(DP_ERR_ARG, "%s: %d channels asked for, want 1 (grey) or 3 (RGB)", path, channels);
    dp_image_info info;
    return run(path, channels, &info, pixels, height, width);
}
