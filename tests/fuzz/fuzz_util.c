/* Scratch files and input cutting for the fuzz harnesses; see fuzz_util.h. */
#define _GNU_SOURCE
#include "fuzz_util.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

static char g_dir[512];

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void rm_dir(void)
{
    if (g_dir[0]) nftw(g_dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

const char *fuzz_dir(void)
{
    if (!g_dir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(g_dir, sizeof g_dir, "%s/dp-fuzz-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(g_dir)) {
            perror(g_dir);
            abort();
        }
        atexit(rm_dir);
    }
    return g_dir;
}

const char *fuzz_write(const char *name, const void *data, size_t n, int slot)
{
    static char path[8][600];
    char *p = path[slot & 7];
    snprintf(p, sizeof path[0], "%s/%s", fuzz_dir(), name);
    FILE *f = fopen(p, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) {
        perror(p);
        abort();
    }
    return p;
}

int fuzz_split(const uint8_t *data, size_t n, const uint8_t **part, size_t *len, int max)
{
    static const char cut[] = FUZZ_CUT;
    const size_t cl = sizeof cut - 1;
    int k = 0;
    size_t at = 0;
    while (k < max - 1) {
        const uint8_t *hit = n - at >= cl ? memmem(data + at, n - at, cut, cl) : NULL;
        if (!hit) break;
        part[k] = data + at;
        len[k++] = (size_t)(hit - (data + at));
        at = (size_t)(hit - data) + cl;
    }
    part[k] = data + at;
    len[k++] = n - at;
    for (int i = k; i < max; i++) part[i] = data + n, len[i] = 0;
    return k;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

uint8_t *fuzz_fix_shard(const uint8_t *data, size_t n)
{
    enum { HDR = 128, CRC_AT = 124 };
    if (n < HDR) return NULL;
    uint8_t *c = malloc(n);
    if (!c) abort();
    memcpy(c, data, n);
    put32(c + CRC_AT, (uint32_t)crc32(0, c, CRC_AT));
    return c;
}

uint8_t *fuzz_fix_checkpoint(const uint8_t *data, size_t n)
{
    enum { HDR = 48 };
    if (n < HDR) return NULL;
    uint8_t *c = malloc(n);
    if (!c) abort();
    memcpy(c, data, n);
    /* Only small bodies are decoded here: the reader's own limits are what
     * the fuzzer is after, not the harness's memory. */
    unsigned long long body = ZSTD_getFrameContentSize(c + HDR, n - HDR);
    if (body != ZSTD_CONTENTSIZE_ERROR && body != ZSTD_CONTENTSIZE_UNKNOWN && body <= (1u << 20)) {
        void *b = malloc(body ? body : 1);
        if (!b) abort();
        size_t got = ZSTD_decompress(b, body, c + HDR, n - HDR);
        if (!ZSTD_isError(got) && got == body) put32(c + 32, (uint32_t)crc32(0, b, (uInt)body));
        free(b);
    }
    put32(c + 40, (uint32_t)crc32(0, c, 40));
    return c;
}

void fuzz_note(dp_status rc)
{
    static int verbose = -1;
    if (verbose < 0) verbose = getenv("FUZZ_VERBOSE") != NULL;
    if (verbose) fprintf(stderr, "  %s%s%s\n", dp_status_name(rc), rc ? ": " : "", rc ? dp_errmsg() : "");
}

void fuzz_expect_named(dp_status rc, const char *name)
{
    fuzz_note(rc);
    if ((rc == DP_ERR_FORMAT || rc == DP_ERR_IO) && !strstr(dp_errmsg(), name)) {
        fprintf(stderr, "rejection without the file name '%s': %s\n", name, dp_errmsg());
        abort();
    }
}

void fuzz_checkpoint_twice(const char *name, const uint8_t *data, size_t n, void (*read)(const char *path))
{
    read(fuzz_write(name, data, n, 0));
    uint8_t *fixed = fuzz_fix_checkpoint(data, n);
    if (fixed && memcmp(fixed, data, n) != 0) read(fuzz_write(name, fixed, n, 0));
    free(fixed);
}
