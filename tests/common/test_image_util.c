/* PNG and JPEG writers for tests and tools (see test_image_util.h). */
#include "test_image_util.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>

int ti_write_png(const char *path, int w, int h, int color_type, int depth, const uint8_t *data,
                 const uint8_t *palette, int npal, const uint8_t *trns, int ntrns, int interlace)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        return -1;
    }
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    png_bytep *volatile rows = NULL;
    if (!info || setjmp(png_jmpbuf(png))) {
        fprintf(stderr, "%s: cannot write the PNG\n", path);
        png_destroy_write_struct(&png, &info);
        free(rows);
        fclose(f);
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color_type,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (palette) {
        png_color pal[256];
        for (int i = 0; i < npal; i++)
            pal[i] = (png_color){palette[3 * i], palette[3 * i + 1], palette[3 * i + 2]};
        png_set_PLTE(png, info, pal, npal);
    }
    if (ntrns > 0) {
        png_color_16 grey_trns = {0};
        png_set_tRNS(png, info, (png_bytep)trns, ntrns, &grey_trns);
    }
    png_write_info(png, info);
    int ch = color_type == PNG_COLOR_TYPE_GRAY || color_type == PNG_COLOR_TYPE_PALETTE ? 1
             : color_type == PNG_COLOR_TYPE_GRAY_ALPHA                                ? 2
             : color_type == PNG_COLOR_TYPE_RGB                                       ? 3
                                                                                      : 4;
    size_t rowbytes = ((size_t)w * ch * depth + 7) / 8;
    rows = malloc((size_t)h * sizeof *rows);
    for (int y = 0; y < h; y++)
        rows[y] = (png_bytep)data + (size_t)y * rowbytes;
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    return fclose(f) == 0 ? 0 : -1;
}

int ti_write_png_chw(const char *path, int c, int h, int w, const uint8_t *chw)
{
    size_t hw = (size_t)h * w;
    uint8_t *hwc = malloc(hw * (size_t)c);
    if (!hwc)
        return -1;
    for (size_t i = 0; i < hw; i++)
        for (int k = 0; k < c; k++)
            hwc[i * c + k] = chw[k * hw + i];
    int rc = ti_write_png(path, w, h, c == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, 8, hwc, NULL, 0, NULL, 0, 0);
    free(hwc);
    return rc;
}

struct ti_jerr {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
};

static void ti_jpeg_exit(j_common_ptr ci)
{
    (*ci->err->output_message)(ci);
    longjmp(((struct ti_jerr *)ci->err)->jb, 1);
}

int ti_write_jpeg(const char *path, int w, int h, int channels, const uint8_t *hwc, int quality)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        return -1;
    }
    struct jpeg_compress_struct ci;
    struct ti_jerr jerr;
    ci.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = ti_jpeg_exit;
    if (setjmp(jerr.jb)) {
        jpeg_destroy_compress(&ci);
        fclose(f);
        return -1;
    }
    jpeg_create_compress(&ci);
    jpeg_stdio_dest(&ci, f);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = channels;
    ci.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, quality, TRUE);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = (JSAMPROW)hwc + (size_t)ci.next_scanline * w * channels;
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    return fclose(f) == 0 ? 0 : -1;
}
