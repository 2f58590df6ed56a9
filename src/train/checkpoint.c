/* Checkpoint files (layout in docs/CHECKPOINT.md).
 *
 *   header (48 bytes, little-endian)          body (zstd, one frame)
 *   +---------+-----+----+------+------+---+  +-----+-----+------+-----+----
 *   |DPCKPT01 | ver | ns | body | comp |crc|  | tag | pad | size | data| ...
 *   +---------+-----+----+------+------+---+  +-----+-----+------+-----+----
 *
 * The reader trusts nothing: it checks the header crc, the file size against
 * the header's compressed size, the frame's content size against the header,
 * the body crc, every section's size against what is left, and each tag once. */
#include "dptrain/checkpoint.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "dptrain/fsutil.h"
#include "dptrain/infile.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "checkpoint.c writes little-endian fields with memcpy: port it for big-endian hosts"
#endif

#define CK_MAGIC "DPCKPT01"
#define CK_VERSION 1u
#define CK_HEADER 48
#define CK_MAX_BODY (1ull << 36) /* 64 GiB: beyond any model we train */
/* zstd's densest block (RLE: a few bytes for up to 128 KiB) caps what a frame
 * can decode to, so a body size past this ratio is a lie, caught before malloc. */
#define CK_MAX_RATIO 32768ull

static uint32_t crc(const void *p, size_t n)
{
    uLong c = crc32(0L, Z_NULL, 0);
    const unsigned char *b = p;
    while (n) { /* crc32 takes a uInt length */
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = crc32(c, b, k);
        b += k;
        n -= k;
    }
    return (uint32_t)c;
}

static void put32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static uint64_t pad8(uint64_t n) { return (n + 7) & ~7ull; }

dp_status dp_checkpoint_write_keep(const char *path, const dp_ck_section *s, int n, int keep)
{
    if (n < 0 || n > DP_CK_MAX_SECTIONS) return dp_errorf(DP_ERR_ARG, "%s: %d sections (max %d)", path, n, DP_CK_MAX_SECTIONS);
    uint64_t body_n = 0;
    for (int i = 0; i < n; i++) body_n += 16 + pad8(s[i].size);
    unsigned char *body = calloc(1, body_n ? body_n : 1);
    size_t bound = ZSTD_compressBound(body_n);
    unsigned char *file = malloc(CK_HEADER + bound);
    dp_status rc = DP_OK;
    if (!body || !file) {
        rc = dp_errorf(DP_ERR_NOMEM, "%s: cannot allocate %llu bytes for the checkpoint", path,
                       (unsigned long long)body_n);
        goto out;
    }
    unsigned char *p = body;
    for (int i = 0; i < n; i++) {
        put32(p, s[i].tag);
        put64(p + 8, s[i].size);
        if (s[i].size) memcpy(p + 16, s[i].data, s[i].size);
        p += 16 + pad8(s[i].size);
    }
    /* Level 1: parameters are near-incompressible floats; speed matters more. */
    size_t comp = ZSTD_compress(file + CK_HEADER, bound, body, body_n, 1);
    if (ZSTD_isError(comp)) {
        rc = dp_errorf(DP_ERR_IO, "%s: zstd: %s", path, ZSTD_getErrorName(comp));
        goto out;
    }
    memcpy(file, CK_MAGIC, 8);
    put32(file + 8, CK_VERSION);
    put32(file + 12, (uint32_t)n);
    put64(file + 16, body_n);
    put64(file + 24, comp);
    put32(file + 32, crc(body, body_n));
    put32(file + 36, 0);
    put32(file + 40, crc(file, 40));
    put32(file + 44, 0);
    rc = dp_write_file_keep(path, file, CK_HEADER + comp, keep);
out:
    free(body);
    free(file);
    return rc;
}

dp_status dp_checkpoint_write(const char *path, const dp_ck_section *s, int n)
{
    return dp_checkpoint_write_keep(path, s, n, 1);
}

static dp_status bad(const char *path, uint64_t off, const char *what)
{
    return dp_errorf(DP_ERR_FORMAT, "%s: offset %llu: %s", path, (unsigned long long)off, what);
}

/* Reads and checks the open file f into ck; *comp and *body are the caller's to free, whatever the result. */
static dp_status read_checked(FILE *f, const char *path, dp_checkpoint *ck, unsigned char **comp_out,
                              unsigned char **body_out)
{
    unsigned char h[CK_HEADER];
    struct stat st;
    if (fstat(fileno(f), &st) != 0)
        return dp_errorf(DP_ERR_IO, "%s: stat: %s", path, strerror(errno));
    if ((uint64_t)st.st_size < CK_HEADER || fread(h, 1, CK_HEADER, f) != CK_HEADER)
        return bad(path, 0, "truncated header (file shorter than 48 bytes)");
    if (memcmp(h, CK_MAGIC, 8))
        return bad(path, 0, "bad magic: not a dptrain checkpoint");
    if (get32(h + 40) != crc(h, 40))
        return bad(path, 40, "header crc32 mismatch (header damaged)");
    if (get32(h + 8) != CK_VERSION) {
        char m[96];
        snprintf(m, sizeof m, "version %u (this build reads %u)", get32(h + 8), CK_VERSION);
        return bad(path, 8, m);
    }
    uint32_t ns = get32(h + 12);
    uint64_t body_n = get64(h + 16), comp_n = get64(h + 24);
    if (ns > DP_CK_MAX_SECTIONS)
        return bad(path, 12, "section count over the limit");
    if (body_n > CK_MAX_BODY)
        return bad(path, 16, "body size over the 64 GiB limit");
    if (comp_n != (uint64_t)st.st_size - CK_HEADER) {
        char m[128];
        snprintf(m, sizeof m, "file holds %llu body bytes, header says %llu (truncated or padded)",
                 (unsigned long long)(st.st_size - CK_HEADER), (unsigned long long)comp_n);
        return bad(path, 24, m);
    }
    if (body_n / CK_MAX_RATIO > comp_n)
        return bad(path, 16, "body size beyond zstd's largest ratio to the compressed size");
    unsigned char *comp = *comp_out = malloc(comp_n ? comp_n : 1);
    unsigned char *body = *body_out = malloc(body_n ? body_n : 1);
    if (!comp || !body)
        return dp_errorf(DP_ERR_NOMEM, "%s: cannot allocate %llu bytes", path, (unsigned long long)body_n);
    if (fread(comp, 1, comp_n, f) != comp_n)
        return dp_errorf(DP_ERR_IO, "%s: offset %d: short read", path, CK_HEADER);
    unsigned long long fcs = ZSTD_getFrameContentSize(comp, comp_n);
    if (fcs != body_n)
        return bad(path, CK_HEADER, "zstd frame content size differs from the header's body size");
    size_t got = ZSTD_decompress(body, body_n, comp, comp_n);
    if (ZSTD_isError(got) || got != body_n) {
        char m[160];
        snprintf(m, sizeof m, "zstd: %s", ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short body");
        return bad(path, CK_HEADER, m);
    }
    if (crc(body, body_n) != get32(h + 32))
        return bad(path, CK_HEADER, "body crc32 mismatch (data damaged)");
    uint64_t off = 0;
    for (uint32_t i = 0; i < ns; i++) {
        if (body_n - off < 16)
            return bad(path, CK_HEADER + off, "section header past the end of the body");
        uint64_t sz = get64(body + off + 8);
        if (sz > body_n - off - 16 || pad8(sz) > body_n - off - 16) /* the padding too: off stays <= body_n */
            return bad(path, CK_HEADER + off, "section size past the end of the body");
        uint32_t tag = get32(body + off);
        for (uint32_t k = 0; k < i; k++) /* dp_checkpoint_find would see only the first of two */
            if (ck->sections[k].tag == tag) {
                char m[96];
                snprintf(m, sizeof m, "section tag %u appears twice (sections %u and %u)", tag, k, i);
                return bad(path, CK_HEADER + off, m);
            }
        ck->sections[i] = (dp_ck_section){.tag = tag, .data = body + off + 16, .size = sz};
        off += 16 + pad8(sz);
    }
    ck->n = (int)ns;
    return DP_OK;
}

dp_status dp_checkpoint_read(const char *path, dp_checkpoint *ck)
{
    memset(ck, 0, sizeof *ck);
    FILE *f;
    dp_status orc = dp_fopen_regular(path, 0, &f);
    if (orc != DP_OK) return orc;
    unsigned char *comp = NULL, *body = NULL;
    dp_status rc = read_checked(f, path, ck, &comp, &body);
    fclose(f);
    free(comp);
    if (rc == DP_OK)
        ck->body = body;
    else
        free(body);
    return rc;
}

/* Only unreadable files are passed over: a readable checkpoint of another
 * configuration is the caller's error, not skipped. Gaps are passed over too:
 * .1 may be gone while .2 is kept (every number up to --keep-checkpoints' bound is tried). */
dp_status dp_checkpoint_read_newest(const char *path, const char *verb, dp_checkpoint *ck, char *used, size_t cap)
{
    snprintf(used, cap, "%s", path);
    dp_status rc = dp_checkpoint_read(used, ck);
    if (rc == DP_OK) return DP_OK;
    char first[1024];
    snprintf(first, sizeof first, "%s", dp_errmsg());
    for (int i = 1; i < 1000; i++) {
        snprintf(used, cap, "%s.%d", path, i);
        if (access(used, F_OK) != 0) continue; /* a gap a damaged file moved aside left (dptrain/rundir.h) */
        if (dp_checkpoint_read(used, ck) == DP_OK) {
            fprintf(stderr, "warning: %s; %s the older %s\n", first, verb, used);
            return DP_OK;
        }
        fprintf(stderr, "warning: %s\n", dp_errmsg());
    }
    snprintf(used, cap, "%s", path);
    return dp_errorf(rc, "%s", first);
}

const dp_ck_section *dp_checkpoint_find(const dp_checkpoint *ck, uint32_t tag)
{
    for (int i = 0; i < ck->n; i++)
        if (ck->sections[i].tag == tag) return &ck->sections[i];
    return NULL;
}

void dp_checkpoint_free(dp_checkpoint *ck)
{
    free(ck->body);
    memset(ck, 0, sizeof *ck);
}

int dp_checkpoint_config_diff(const char *saved, const char *now, int (*matters)(const char *key), char *key,
                              size_t kn)
{
    for (const char *a = saved; *a;) {
        size_t la = strcspn(a, "\n"), ka = strcspn(a, "=");
        if (ka < la) {
            snprintf(key, kn, "%.*s", (int)ka, a);
            int check = !matters || matters(key), found = 0;
            for (const char *b = now; *b && !found;) {
                size_t lb = strcspn(b, "\n");
                if (lb > ka && !memcmp(a, b, ka + 1)) {
                    found = 1;
                    if (check && (la != lb || memcmp(a, b, la))) return 1;
                }
                b += lb + (b[lb] == '\n');
            }
            if (!found && check) return 1;
        }
        a += la + (a[la] == '\n');
    }
    return 0;
}
