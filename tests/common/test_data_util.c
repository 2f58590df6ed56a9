/* Helpers shared by the data and DSI tests: temp dirs, whole-file edits for
 * damage tests, and synthetic image shards whose records encode their global
 * index (label = g % classes, first 4 pixel bytes = g little-endian). Declared
 * in test_data_util.h. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "dptrain/data.h"
#include "test_data_util.h"

void td_tmpdir(char *out, size_t cap)
{
    const char *base = getenv("TMPDIR");
    snprintf(out, cap, "%s/dptrain-data-XXXXXX", base && *base ? base : "/tmp");
    cr_assert_not_null(mkdtemp(out), "mkdtemp %s", out);
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

void td_rmtree(const char *dir)
{
    if (dir && *dir)
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void td_path(char *out, size_t cap, const char *dir, const char *name)
{
    cr_assert_lt((size_t)snprintf(out, cap, "%s/%s", dir, name), cap);
}

unsigned char *td_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

void td_write(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "create %s", path);
    cr_assert_eq(fwrite(buf, 1, len, f), len);
    fclose(f);
}

void td_append(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "ab");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(buf, 1, len, f), len);
    fclose(f);
}

void td_flip(const char *path, long off, unsigned char mask)
{
    size_t n;
    unsigned char *b = td_read(path, &n);
    cr_assert_lt((size_t)off, n);
    b[off] ^= mask;
    td_write(path, b, n);
    free(b);
}

void td_truncate(const char *path, long size) { cr_assert_eq(truncate(path, size), 0); }

/* Patches a little-endian field of a shard header and, if asked, recomputes
 * the header crc so only the field's own check can object. */
void td_patch(const char *path, long off, uint64_t v, int width, int fix_crc)
{
    size_t n;
    unsigned char *b = td_read(path, &n);
    for (int i = 0; i < width; i++)
        b[off + i] = (unsigned char)(v >> (8 * i));
    if (fix_crc) {
        uint32_t c = (uint32_t)crc32(0, b, 124);
        for (int i = 0; i < 4; i++)
            b[124 + i] = (unsigned char)(c >> (8 * i));
    }
    td_write(path, b, n);
    free(b);
}

void td_make_image(uint8_t *rec, long g, const dp_shard_schema *s)
{
    size_t px = (size_t)s->record_size - 2;
    uint32_t label = (uint32_t)(g % (long)s->image.classes);
    rec[0] = (uint8_t)label;
    rec[1] = (uint8_t)(label >> 8);
    for (size_t k = 0; k < px; k++)
        rec[2 + k] = k < 4 ? (uint8_t)((uint64_t)g >> (8 * k)) : (uint8_t)((g * 7 + (long)k / 3) & 0xff);
}

long td_image_index(const uint8_t *pixels)
{
    return (long)((uint32_t)pixels[0] | (uint32_t)pixels[1] << 8 | (uint32_t)pixels[2] << 16 |
                  (uint32_t)pixels[3] << 24);
}

/* Writes records first..first+n-1; returns the finished shard's facts. */
dp_shard_info td_write_images(const char *path, const dp_shard_schema *s, long first, long n,
                              size_t frame)
{
    dp_shard_writer *w = NULL;
    cr_assert_eq(dp_shard_writer_open(path, s, &w), DP_OK, "%s", dp_errmsg());
    if (frame)
        cr_assert_eq(dp_shard_writer_set_frame_size(w, frame), DP_OK, "%s", dp_errmsg());
    uint8_t *rec = malloc(s->record_size);
    for (long i = 0; i < n; i++) {
        td_make_image(rec, first + i, s);
        cr_assert_eq(dp_shard_writer_add(w, rec, s->record_size), DP_OK, "%s", dp_errmsg());
    }
    free(rec);
    dp_shard_info info;
    cr_assert_eq(dp_shard_writer_close(w, &info), DP_OK, "%s", dp_errmsg());
    return info;
}

/* A dataset dir with one split of image shards of the given sizes (global
 * indices run on across shards) and its manifest. */
void td_make_dataset(const char *dir, const char *split, const long *sizes, int nshards,
                     const dp_shard_schema *s)
{
    dp_manifest m = {0};
    snprintf(m.name, sizeof m.name, "synthetic");
    m.schema = *s;
    m.shards = calloc((size_t)nshards, sizeof *m.shards);
    long g = 0;
    for (int i = 0; i < nshards; i++) {
        dp_manifest_shard *ms = &m.shards[m.nshards++];
        snprintf(ms->split, sizeof ms->split, "%s", split);
        snprintf(ms->file, sizeof ms->file, "%s-%05d.dps", split, i);
        char path[512];
        td_path(path, sizeof path, dir, ms->file);
        dp_shard_info info = td_write_images(path, s, g, sizes[i], 1024);
        ms->records = info.record_count;
        ms->crc32 = info.payload_crc32;
        g += sizes[i];
    }
    cr_assert_eq(dp_manifest_save(dir, &m), DP_OK, "%s", dp_errmsg());
    free(m.shards);
}
