/* Writing small PNG and JPEG files with libpng and libjpeg, for the decoder's tests and the tools under
 * tests/data (the round trip's PNG folder, the benchmark's JPEG folder). Defined in test_image_util.c;
 * each returns 0, or -1 with a message on stderr. */
#ifndef DP_TEST_IMAGE_UTIL_H
#define DP_TEST_IMAGE_UTIL_H

#include <stdint.h>

/* A PNG of w x h pixels: `color_type` a PNG_COLOR_TYPE_* value, `depth` bits a sample (1..16), `data` the
 * packed rows as PNG stores them (16-bit samples big-endian, sub-byte samples packed high bit first),
 * h * ceil(w * channels * depth / 8) bytes. For a palette image, palette is npal RGB triples; trns (if
 * ntrns > 0) the tRNS chunk's alpha bytes. interlace: Adam7 when 1. */
int ti_write_png(const char *path, int w, int h, int color_type, int depth, const uint8_t *data,
                 const uint8_t *palette, int npal, const uint8_t *trns, int ntrns, int interlace);

/* A baseline JPEG of w x h pixels of `channels` (1 grey, 3 RGB) interleaved samples at `quality` (1..100). */
int ti_write_jpeg(const char *path, int w, int h, int channels, const uint8_t *hwc, int quality);

/* A grey (c = 1) or RGB (c = 3) 8-bit PNG from planes in CHW order (the shard layout). */
int ti_write_png_chw(const char *path, int c, int h, int w, const uint8_t *chw);

#endif
