/* Image files in, uint8 CHW pixels out: PNG (libpng) and JPEG (libjpeg-turbo)
 * decoding to grey or RGB, and the resize `dptrain shard image-folder --size`
 * applies. The image-folder importer is the user; `predict` can be another.
 *
 * Conversions, the same for both formats (and, where PIL has one, PIL's, which
 * torchvision's ImageFolder loader uses):
 *   - palette -> RGB; grey of 1, 2 or 4 bits -> 8 bits (v * 255 / max);
 *   - 16-bit samples -> 8 bits rounded, v * 255 / 65535 (libpng's scale_16);
 *   - alpha (RGBA, grey+alpha, a tRNS chunk) is dropped, not composited, as
 *     PIL's convert("RGB") does;
 *   - grey -> RGB replicates the value; RGB -> grey is PIL's convert("L"):
 *     (19595 R + 38470 G + 7471 B + 32768) >> 16 (ITU-R 601-2 luma);
 *   - no gamma or colour-profile correction (PIL applies none either).
 * The format is told by the file's first bytes, not its extension. Errors are
 * DP_ERR_FORMAT "<file>: <what>" (not an image, truncated, unsupported) or
 * DP_ERR_IO "<file>: <errno text>"; libpng's and libjpeg's longjmp-based error
 * paths are caught inside, freeing what they allocated. */
#ifndef DPTRAIN_IMAGE_DECODE_H
#define DPTRAIN_IMAGE_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "dptrain/status.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    DP_IMAGE_MAX_SIDE = 1 << 15,      /* widest / tallest image accepted, pixels */
    DP_IMAGE_MAX_PIXELS = 1 << 28,    /* largest width * height accepted */
};

/*! What a file's header says, read without decoding the pixels. */
typedef struct dp_image_info {
    int width, height;
    int channels;     /* 1 when the file stores grey (with or without alpha), else 3 */
    int has_alpha;    /* an alpha channel or a tRNS chunk (dropped when decoding) */
    int bit_depth;    /* bits per sample as stored (1..16) */
    const char *format; /* "png" or "jpeg" (static) */
} dp_image_info;

/*! Reads only the header of a PNG or JPEG file (libpng: the chunks up to the
 *  first IDAT; libjpeg: the markers up to the first scan).
 *  @return DP_OK, DP_ERR_IO, DP_ERR_FORMAT naming the file (not a PNG/JPEG,
 *          truncated header, unsupported colour space, size over the limits). */
dp_status dp_image_probe(const char *path, dp_image_info *info);

/*! Decodes a PNG or JPEG file to `channels` (1 = grey, 3 = RGB) uint8 planes
 *  in CHW order. *pixels is malloc'd (channels * height * width bytes) and
 *  owned by the caller; it is NULL after a failure.
 *  @return DP_OK, DP_ERR_ARG (channels not 1 or 3), DP_ERR_IO, DP_ERR_NOMEM,
 *          DP_ERR_FORMAT naming the file (corrupt, truncated, unsupported). */
dp_status dp_image_decode(const char *path, int channels, uint8_t **pixels, int *height, int *width);

/*! Resizes `c` uint8 planes (CHW) from sh x sw to dh x dw, each axis on its
 *  own: area averaging when the axis shrinks (every output pixel is the mean
 *  of the source area it covers, as OpenCV's INTER_AREA), bilinear with
 *  half-pixel centres when it grows (PyTorch's align_corners=False), an equal
 *  axis copied. Weights are exact integers and the sum is rounded half up
 *  once, so results are the same bits on every machine and compiler; a 2x
 *  shrink is the rounded mean of each 2x2 block.
 *  @return DP_OK, DP_ERR_ARG (a side outside 1..DP_IMAGE_MAX_SIDE), DP_ERR_NOMEM. */
dp_status dp_image_resize(const uint8_t *src, int c, int sh, int sw, uint8_t *dst, int dh, int dw);

#ifdef __cplusplus
}
#endif
#endif
