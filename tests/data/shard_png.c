/* Test and benchmark tool for the image importers.
 *
 *   shard_png export SHARDS OUT [LIMIT]   each split's first LIMIT records (0: all) as grey/RGB PNGs in
 *                                         OUT/<split>/<label>/<index>.png, label and index zero-padded so
 *                                         that name order is label order (an ImageFolder layout that
 *                                         `dptrain shard image-folder` imports back to the same labels)
 *   shard_png hashes SHARDS SPLIT [LIMIT] one line per record of SPLIT, "label xxh64-of-pixels", in
 *                                         shard order (sort them to compare sets of records)
 *   shard_png jpegs OUT N HxW CLASSES     N synthetic RGB JPEGs (quality 90) in OUT/cNNN/NNNNNNN.jpg,
 *                                         round-robin over CLASSES, for benchmarks
 * Exit status 0, or 1 with a message. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "dptrain/data.h"
#include "dptrain/fsutil.h"
#include "test_image_util.h"

static int fail(const char *what)
{
    fprintf(stderr, "shard_png: %s\n", what);
    return 1;
}

static int digits(long n)
{
    int d = 1;
    while (n >= 10)
        n /= 10, d++;
    return d;
}

/* Calls fn(label, pixels, index) on the first `limit` records of `split` (0: all). */
static int each_record(const char *dir, const dp_manifest *m, const char *split, long limit,
                       int (*fn)(void *ctx, unsigned label, const uint8_t *px, long i), void *ctx)
{
    long i = 0;
    for (int s = 0; s < m->nshards; s++) {
        const dp_manifest_shard *ms = &m->shards[s];
        if (strcmp(ms->split, split))
            continue;
        char path[4096];
        dp_shard_reader *r;
        if (dp_manifest_open_shard(dir, m, ms, path, sizeof path, &r) != DP_OK)
            return fail(dp_errmsg());
        for (;;) {
            if (limit > 0 && i >= limit)
                break;
            const void *rec;
            size_t len;
            int eof;
            if (dp_shard_reader_next(r, &rec, &len, &eof) != DP_OK) {
                dp_shard_reader_close(r);
                return fail(dp_errmsg());
            }
            if (eof)
                break;
            const uint8_t *b = rec;
            if (fn(ctx, b[0] | (unsigned)b[1] << 8, b + 2, i++)) {
                dp_shard_reader_close(r);
                return 1;
            }
        }
        dp_shard_reader_close(r);
    }
    return 0;
}

typedef struct export_ctx {
    const dp_shard_schema *s;
    char dir[4096];
    int ldig, idig;
} export_ctx;

static int export_one(void *p, unsigned label, const uint8_t *px, long i)
{
    export_ctx *e = p;
    char cls[4200], file[4300];
    snprintf(cls, sizeof cls, "%s/%0*u", e->dir, e->ldig, label);
    if (dp_mkdir_p(cls) != DP_OK)
        return fail(dp_errmsg());
    snprintf(file, sizeof file, "%s/%0*ld.png", cls, e->idig, i);
    const dp_shard_schema *s = e->s;
    return ti_write_png_chw(file, (int)s->image.channels, (int)s->image.height, (int)s->image.width, px) ? 1 : 0;
}

typedef struct hash_ctx {
    size_t bytes;
} hash_ctx;

static int hash_one(void *p, unsigned label, const uint8_t *px, long i)
{
    (void)i;
    printf("%u %016" PRIx64 "\n", label, (uint64_t)XXH64(px, ((hash_ctx *)p)->bytes, 0));
    return 0;
}

static int cmd_jpegs(const char *out, long n, const char *size, int classes)
{
    int h, w;
    if (sscanf(size, "%dx%d", &h, &w) != 2 || h < 1 || w < 1 || classes < 1)
        return fail("jpegs: want OUT N HxW CLASSES");
    uint8_t *px = malloc((size_t)h * w * 3);
    if (!px)
        return fail("out of memory");
    uint32_t st = 12345;
    for (long i = 0; i < n; i++) {
        char cls[4200], file[4300];
        int c = (int)(i % classes);
        snprintf(cls, sizeof cls, "%s/c%03d", out, c);
        if (i < classes && dp_mkdir_p(cls) != DP_OK) {
            free(px);
            return fail(dp_errmsg());
        }
        /* smooth gradients plus noise: compresses like a photo, not like flat colour */
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int k = 0; k < 3; k++) {
                    st = st * 1664525u + 1013904223u;
                    px[((size_t)y * w + x) * 3 + k] = (uint8_t)((x * 255 / w + y * (k + 1) * 97 / h + c * 40 + (st >> 28)) & 255);
                }
        snprintf(file, sizeof file, "%s/%07ld.jpg", cls, i);
        if (ti_write_jpeg(file, w, h, 3, px, 90)) {
            free(px);
            return 1;
        }
    }
    free(px);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 6 && !strcmp(argv[1], "jpegs"))
        return cmd_jpegs(argv[2], atol(argv[3]), argv[4], atoi(argv[5]));
    if (argc < 4 || (strcmp(argv[1], "export") && strcmp(argv[1], "hashes")))
        return fail("usage: shard_png export SHARDS OUT [LIMIT] | hashes SHARDS SPLIT [LIMIT] | jpegs OUT N HxW CLASSES");
    dp_manifest *m;
    if (dp_manifest_load(argv[2], &m) != DP_OK)
        return fail(dp_errmsg());
    if (m->schema.kind != DP_SCHEMA_IMAGE_U8) {
        dp_manifest_free(m);
        return fail("not an image_u8 shard set");
    }
    long limit = argc > 4 ? atol(argv[4]) : 0;
    int rc;
    if (!strcmp(argv[1], "hashes")) {
        hash_ctx h = {m->schema.record_size - 2};
        rc = each_record(argv[2], m, argv[3], limit, hash_one, &h);
    } else {
        rc = 0;
        long most = 0;
        for (int s = 0; s < m->nshards; s++)
            most += (long)m->shards[s].records;
        const char *splits[2] = {"train", "test"};
        for (int k = 0; k < 2 && !rc; k++) {
            export_ctx e = {.s = &m->schema, .ldig = digits((long)m->schema.image.classes - 1), .idig = digits(most)};
            snprintf(e.dir, sizeof e.dir, "%s/%s", argv[3], splits[k]);
            rc = each_record(argv[2], m, splits[k], limit, export_one, &e);
        }
    }
    dp_manifest_free(m);
    return rc;
}
