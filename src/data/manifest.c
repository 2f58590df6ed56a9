/* manifest.txt: the line-based description of a dataset directory (name,
 * schema, shards per split with record counts and payload crc32s), its
 * parser, its atomic writer and a content hash ranks can compare. Format in
 * shards/README.md. Parsing is strict: one unknown word is an error naming
 * the file and line, because a half-understood manifest trains on wrong data. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dptrain/fsutil.h"
#include "dptrain/text.h"
#include "data/shard_format.h"

#define MANIFEST_FILE "manifest.txt"
#define MANIFEST_HEAD "dptrain-manifest"
enum { MANIFEST_VERSION = 1, MANIFEST_MAX_BYTES = 16 << 20, MAX_WORDS = 8, MAX_SHARDS = 1 << 20 };

static const char *const image_keys[4] = {"channels", "height", "width", "classes"};

/* Names end up in paths and in the text format: keep them to a safe alphabet,
 * and never let a shard name climb out of the dataset directory. */
int dp_manifest_name_ok(const char *s, size_t cap, int lower_only)
{
    size_t n = strlen(s);
    if (n == 0 || n >= cap || s[0] == '.' || s[0] == '-')
        return 0;
    for (; *s; s++) {
        char c = *s;
        int ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
                 (!lower_only && ((c >= 'A' && c <= 'Z') || c == '.'));
        if (!ok)
            return 0;
    }
    return 1;
}

static int parse_u64(const char *s, uint64_t *v)
{
    if (!*s)
        return 0;
    uint64_t x = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || x > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
            return 0;
        x = x * 10 + (uint64_t)(*s - '0');
    }
    *v = x;
    return 1;
}

static int parse_crc(const char *s, uint32_t *v)
{
    if (strncmp(s, "0x", 2) != 0 || strlen(s) != 10)
        return 0;
    uint32_t x = 0;
    for (s += 2; *s; s++) {
        int d = (*s >= '0' && *s <= '9') ? *s - '0' : (*s >= 'a' && *s <= 'f') ? *s - 'a' + 10 : -1;
        if (d < 0)
            return 0;
        x = x << 4 | (uint32_t)d;
    }
    *v = x;
    return 1;
}

/* "key=value" with a known key; returns the key's index or -1. */
static int parse_kv(const char *w, const char *const *keys, int nkeys, uint32_t *val)
{
    const char *eq = strchr(w, '=');
    uint64_t v;
    if (!eq || !parse_u64(eq + 1, &v) || v > UINT32_MAX)
        return -1;
    for (int i = 0; i < nkeys; i++)
        if (strlen(keys[i]) == (size_t)(eq - w) && strncmp(w, keys[i], (size_t)(eq - w)) == 0) {
            *val = (uint32_t)v;
            return i;
        }
    return -1;
}

/* word[2..nw) as "key=value" over all nkeys keys, each exactly once, into vals; `kind` names the schema. */
static dp_status parse_params(const char *where, const char *kind, char **word, int nw, const char *const *keys,
                              int nkeys, uint32_t *vals)
{
    int seen[4] = {0};
    for (int i = 2; i < nw; i++) {
        uint32_t v;
        int k = parse_kv(word[i], keys, nkeys, &v);
        if (k < 0 || seen[k]++)
            return dp_errorf(DP_ERR_FORMAT, "%s: bad or repeated %s parameter '%s'", where, kind, DP_ESC(word[i]));
        vals[k] = v;
    }
    for (int k = 0; k < nkeys; k++)
        if (!seen[k])
            return dp_errorf(DP_ERR_FORMAT, "%s: %s schema lacks %s=", where, kind, keys[k]);
    return DP_OK;
}

static dp_status parse_schema(const char *where, char **word, int nw, dp_shard_schema *s)
{
    static const char *const vector_keys[2] = {"features", "classes"};
    uint32_t vals[4] = {0};
    dp_status rc;
    if (nw >= 2 && strcmp(word[1], "image_u8") == 0) {
        if ((rc = parse_params(where, "image", word, nw, image_keys, 4, vals)) != DP_OK)
            return rc;
        *s = dp_shard_schema_image(vals[0], vals[1], vals[2], vals[3]);
    } else if (nw >= 2 && strcmp(word[1], "vector_f32") == 0) {
        if ((rc = parse_params(where, "vector", word, nw, vector_keys, 2, vals)) != DP_OK)
            return rc;
        *s = dp_shard_schema_vector(vals[0], vals[1]);
    } else if (nw >= 2 && strcmp(word[1], "tokens") == 0) {
        static const char *const keys[1] = {"vocab_size"};
        if (nw != 3 || parse_kv(word[2], keys, 1, &vals[0]) != 0)
            return dp_errorf(DP_ERR_FORMAT, "%s: expected 'schema tokens vocab_size=N'", where);
        *s = dp_shard_schema_tokens(vals[0]);
    } else {
        return dp_errorf(DP_ERR_FORMAT, "%s: unknown schema '%s' (want image_u8, vector_f32 or tokens)", where,
                         DP_ESC(nw >= 2 ? word[1] : ""));
    }
    return dp_shard_schema_check(s, DP_ERR_FORMAT, where);
}

/* Class names may hold any byte but NUL (a class is often a folder name): in
 * the text every byte outside '!'..'~', and '%' and '#', is written %XX, so a
 * name is always one word and never starts a comment. */
static int class_byte_plain(unsigned char c) { return c > ' ' && c < 0x7f && c != '%' && c != '#'; }

static void put_class_name(FILE *f, const char *name)
{
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (class_byte_plain(*p))
            fputc(*p, f);
        else
            fprintf(f, "%%%02X", *p);
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Decodes an escaped name into out[DP_MANIFEST_CLASS_MAX]; 0 if malformed, empty or too long. */
static int get_class_name(const char *w, char *out)
{
    size_t n = 0;
    for (; *w; w++) {
        unsigned char c = (unsigned char)*w;
        if (c == '%') {
            int hi = hexval(w[1]), lo = hi < 0 ? -1 : hexval(w[2]);
            if (lo < 0 || (hi == 0 && lo == 0))
                return 0;
            c = (unsigned char)(hi << 4 | lo);
            w += 2;
        } else if (!class_byte_plain(c)) {
            return 0;
        }
        if (n + 1 >= DP_MANIFEST_CLASS_MAX)
            return 0;
        out[n++] = (char)c;
    }
    out[n] = '\0';
    return n > 0;
}

static int class_name_ok(const char *s)
{
    size_t n = s ? strnlen(s, DP_MANIFEST_CLASS_MAX) : 0;
    return n > 0 && n < DP_MANIFEST_CLASS_MAX;
}

/* "mean v..." / "std v...": the values after the keyword, one per channel (feature). */
static dp_status parse_stats(const char *where, const char *key, char **save, double **out, int *n)
{
    if (*out)
        return dp_errorf(DP_ERR_FORMAT, "%s: second '%s' line", where, key);
    size_t cap = 0;
    for (char *w; (w = strtok_r(NULL, " \t", save)) != NULL;) {
        char *end;
        errno = 0;
        double v = strtod(w, &end);
        if (end == w || *end || errno || !isfinite(v))
            return dp_errorf(DP_ERR_FORMAT, "%s: %s value %d: '%s' is not a finite number", where, key, *n + 1,
                             DP_ESC(w));
        if (*n == DP_VECTOR_MAX_FEATURES)
            return dp_errorf(DP_ERR_FORMAT, "%s: more than %d %s values", where, DP_VECTOR_MAX_FEATURES, key);
        if ((size_t)*n == cap) {
            size_t ncap = cap ? 2 * cap : 16;
            double *p = realloc(*out, ncap * sizeof *p);
            if (!p)
                return dp_errorf(DP_ERR_NOMEM, "%s: out of memory", where);
            *out = p;
            cap = ncap;
        }
        (*out)[(*n)++] = v;
    }
    if (*n == 0)
        return dp_errorf(DP_ERR_FORMAT, "%s: '%s' line without values", where, key);
    return DP_OK;
}

/* "class <index> <escaped name>": grows m->class_names to index + 1 (*cap entries, NULL-filled). */
static dp_status parse_class(const char *where, char **word, int nw, dp_manifest *m, int *cap)
{
    uint64_t idx;
    char name[DP_MANIFEST_CLASS_MAX];
    if (nw != 3 || !parse_u64(word[1], &idx) || idx >= 65536)
        return dp_errorf(DP_ERR_FORMAT, "%s: expected 'class <index 0..65535> <name>'", where);
    if (!get_class_name(word[2], name))
        return dp_errorf(DP_ERR_FORMAT, "%s: bad class name '%s' (1..%d bytes, %%XX escapes, no %%00)", where,
                         DP_ESC(word[2]), DP_MANIFEST_CLASS_MAX - 1);
    if ((int)idx >= *cap) {
        int ncap = (int)idx + 1 > 2 * *cap ? (int)idx + 1 : 2 * *cap;
        char **p = realloc(m->class_names, (size_t)ncap * sizeof *p);
        if (!p)
            return dp_errorf(DP_ERR_NOMEM, "%s: out of memory", where);
        memset(p + *cap, 0, (size_t)(ncap - *cap) * sizeof *p);
        m->class_names = p;
        *cap = ncap;
    }
    if (m->class_names[idx])
        return dp_errorf(DP_ERR_FORMAT, "%s: class %" PRIu64 " named twice", where, idx);
    if (!(m->class_names[idx] = strdup(name)))
        return dp_errorf(DP_ERR_NOMEM, "%s: out of memory", where);
    return DP_OK;
}

/* Channels (features) the stats must cover, and the schema's classes; 0 for tokens. */
static void schema_counts(const dp_shard_schema *s, int *channels, int *classes)
{
    *channels = s->kind == DP_SCHEMA_TOKENS ? 0 : (int)s->param[0];
    *classes = s->kind == DP_SCHEMA_TOKENS ? 0 : (int)s->param[3];
}

/* The optional lines against the schema, once every line is read. */
static dp_status check_extras(const char *path, dp_manifest *m, int nmean, int nstd)
{
    int ncls = 0; /* highest named class + 1 */
    for (int i = 0; i < m->nclass_names; i++)
        if (m->class_names[i])
            ncls = i + 1;
    int channels, classes;
    schema_counts(&m->schema, &channels, &classes);
    if ((m->mean != NULL) != (m->std != NULL))
        return dp_errorf(DP_ERR_FORMAT, "%s: a 'mean' line needs a 'std' line and the other way round", path);
    if (m->mean) {
        if (nmean != channels || nstd != channels)
            return dp_errorf(DP_ERR_FORMAT, "%s: 'mean' has %d values and 'std' %d, the schema has %d channels",
                             path, nmean, nstd, channels);
        for (int i = 0; i < nstd; i++)
            if (!(m->std[i] > 0))
                return dp_errorf(DP_ERR_FORMAT, "%s: std value %d is %g, not positive", path, i + 1, m->std[i]);
        m->nstats = channels;
    }
    if (m->class_names) {
        if (ncls > classes)
            return dp_errorf(DP_ERR_FORMAT, "%s: class %d named, the schema has %d classes", path, ncls - 1, classes);
        for (int i = 0; i < classes; i++)
            if (i >= ncls || !m->class_names[i])
                return dp_errorf(DP_ERR_FORMAT, "%s: class %d has no 'class' line (name all or none)", path, i);
        m->nclass_names = classes; /* the entries past it are NULL */
    }
    return DP_OK;
}

/* Shard file names seen so far: open addressing over shard indices, so a
 * manifest of a million shards is checked for repeats in linear time (a
 * pairwise scan would let a hostile 16 MiB manifest run for hours). */
typedef struct name_set {
    int *slot; /* shard index + 1, 0 = empty */
    size_t cap;
} name_set;

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static size_t name_hash(const char *s)
{
    const uint64_t h = fnv(0xcbf29ce484222325ull, s, strlen(s));
    return (size_t)(h ^ h >> 29);
}

/* 1 if m->shards[i].file is already in the set, else inserts it; -1 on no memory. */
static int name_seen(name_set *ns, const dp_manifest *m, int i)
{
    if ((size_t)(i + 1) * 2 > ns->cap) {
        size_t cap = ns->cap ? 2 * ns->cap : 64;
        int *slot = calloc(cap, sizeof *slot);
        if (!slot)
            return -1;
        for (size_t k = 0; k < ns->cap; k++) {
            if (!ns->slot[k])
                continue;
            size_t h = name_hash(m->shards[ns->slot[k] - 1].file) & (cap - 1);
            while (slot[h])
                h = (h + 1) & (cap - 1);
            slot[h] = ns->slot[k];
        }
        free(ns->slot);
        ns->slot = slot;
        ns->cap = cap;
    }
    size_t h = name_hash(m->shards[i].file) & (ns->cap - 1);
    for (; ns->slot[h]; h = (h + 1) & (ns->cap - 1))
        if (strcmp(m->shards[ns->slot[h] - 1].file, m->shards[i].file) == 0)
            return 1;
    ns->slot[h] = i + 1;
    return 0;
}

static dp_status parse_shard(const char *where, char **word, int nw, dp_manifest *m, size_t *cap,
                             name_set *names)
{
    dp_manifest_shard sh;
    memset(&sh, 0, sizeof sh);
    if (nw != 5)
        return dp_errorf(DP_ERR_FORMAT, "%s: expected 'shard <split> <file> <records> <crc32>'", where);
    if (!dp_manifest_name_ok(word[1], sizeof sh.split, 1))
        return dp_errorf(DP_ERR_FORMAT, "%s: bad split name '%s' (a-z 0-9 _ -, < %zu chars)", where,
                         DP_ESC(word[1]), sizeof sh.split);
    if (!dp_manifest_name_ok(word[2], sizeof sh.file, 0))
        return dp_errorf(DP_ERR_FORMAT, "%s: bad shard file name '%s' (A-Z a-z 0-9 . _ -, no '/')",
                         where, DP_ESC(word[2]));
    if (!parse_u64(word[3], &sh.records))
        return dp_errorf(DP_ERR_FORMAT, "%s: bad record count '%s'", where, DP_ESC(word[3]));
    if (!parse_crc(word[4], &sh.crc32))
        return dp_errorf(DP_ERR_FORMAT, "%s: bad crc32 '%s' (want 0x and 8 lowercase hex digits)",
                         where, DP_ESC(word[4]));
    strcpy(sh.split, word[1]);
    strcpy(sh.file, word[2]);
    if (m->nshards == MAX_SHARDS)
        return dp_errorf(DP_ERR_FORMAT, "%s: more than %d shards", where, MAX_SHARDS);
    if ((size_t)m->nshards == *cap) {
        size_t ncap = *cap ? 2 * *cap : 16;
        dp_manifest_shard *p = realloc(m->shards, ncap * sizeof *p);
        if (!p)
            return dp_errorf(DP_ERR_NOMEM, "%s: out of memory", where);
        m->shards = p;
        *cap = ncap;
    }
    m->shards[m->nshards] = sh;
    int seen = name_seen(names, m, m->nshards);
    if (seen < 0)
        return dp_errorf(DP_ERR_NOMEM, "%s: out of memory", where);
    if (seen)
        return dp_errorf(DP_ERR_FORMAT, "%s: shard file '%s' listed twice", where, sh.file);
    m->nshards++;
    return DP_OK;
}

/* Parses the manifest text read from path (cut up in place) into m; names is the caller's to free. */
static dp_status parse_manifest(const char *path, char *text, dp_manifest *m, name_set *names)
{
    dp_status rc;
    size_t cap = 0;
    int have_head = 0, have_name = 0, have_schema = 0, lineno = 0, nmean = 0, nstd = 0;
    char where[4200];
    for (char *line = text, *next; line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        else if (*line == '\0' && lineno > 0)
            break; /* the empty piece after a final newline is not a line */
        lineno++;
        snprintf(where, sizeof where, "%s:%d", path, lineno);
        size_t len = strlen(line);
        if (len && line[len - 1] == '\r')
            line[--len] = '\0';
        line += strspn(line, " \t");
        if (line[0] == '#')
            continue;
        char *word[MAX_WORDS + 1], *save = NULL;
        int nw = 0;
        char *first = strtok_r(line, " \t", &save);
        if (!first)
            continue;
        if (have_head && (strcmp(first, "mean") == 0 || strcmp(first, "std") == 0)) {
            int is_mean = first[0] == 'm';
            if ((rc = parse_stats(where, first, &save, is_mean ? &m->mean : &m->std, is_mean ? &nmean : &nstd)) != DP_OK)
                return rc;
            continue;
        }
        for (char *w = first; w; w = strtok_r(NULL, " \t", &save)) {
            if (nw == MAX_WORDS)
                return dp_errorf(DP_ERR_FORMAT, "%s: more than %d words", where, MAX_WORDS);
            word[nw++] = w;
        }
        if (!have_head) {
            if (nw != 2 || strcmp(word[0], MANIFEST_HEAD) != 0 || strcmp(word[1], "1") != 0)
                return dp_errorf(DP_ERR_FORMAT, "%s: expected '%s %d' as the first line", where,
                                 MANIFEST_HEAD, MANIFEST_VERSION);
            have_head = 1;
        } else if (strcmp(word[0], "name") == 0) {
            if (have_name++ || nw != 2 || !dp_manifest_name_ok(word[1], sizeof m->name, 0))
                return dp_errorf(DP_ERR_FORMAT, "%s: expected one 'name <A-Za-z0-9._->' line", where);
            strcpy(m->name, word[1]);
        } else if (strcmp(word[0], "schema") == 0) {
            if (have_schema++)
                return dp_errorf(DP_ERR_FORMAT, "%s: second 'schema' line", where);
            if ((rc = parse_schema(where, word, nw, &m->schema)) != DP_OK)
                return rc;
        } else if (strcmp(word[0], "shard") == 0) {
            if ((rc = parse_shard(where, word, nw, m, &cap, names)) != DP_OK)
                return rc;
        } else if (strcmp(word[0], "split-rule") == 0) {
            if (m->split_rule[0] || nw != 2 || !dp_manifest_name_ok(word[1], sizeof m->split_rule, 1))
                return dp_errorf(DP_ERR_FORMAT, "%s: expected one 'split-rule <a-z0-9_->' line", where);
            strcpy(m->split_rule, word[1]);
        } else if (strcmp(word[0], "class") == 0) {
            if ((rc = parse_class(where, word, nw, m, &m->nclass_names)) != DP_OK)
                return rc;
        } else {
            return dp_errorf(DP_ERR_FORMAT, "%s: unknown keyword '%s'", where, DP_ESC(word[0]));
        }
    }
    const char *missing = !have_head ? "the 'dptrain-manifest 1' line"
                        : !have_name ? "a 'name' line"
                        : !have_schema ? "a 'schema' line"
                        : m->nshards == 0 ? "any 'shard' line" : NULL;
    if (missing)
        return dp_errorf(DP_ERR_FORMAT, "%s:%d: end of file without %s", path,
                         lineno > 0 ? lineno : 1, missing);
    return check_extras(path, m, nmean, nstd);
}

dp_status dp_manifest_load(const char *dir, dp_manifest **out)
{
    *out = NULL;
    char path[4096];
    dp_status rc = dp_path_join(path, sizeof path, dir, MANIFEST_FILE);
    if (rc != DP_OK)
        return rc;
    char *text = NULL;
    if ((rc = dp_read_text(path, MANIFEST_MAX_BYTES, &text)) != DP_OK)
        return rc;
    dp_manifest *m = calloc(1, sizeof *m);
    if (!m) {
        free(text);
        return dp_errorf(DP_ERR_NOMEM, "%s: out of memory", path);
    }
    name_set names = {0};
    rc = parse_manifest(path, text, m, &names);
    free(text);
    free(names.slot);
    if (rc != DP_OK)
        dp_manifest_free(m);
    else
        *out = m;
    return rc;
}

/* The optional lines: stats of the train split (per channel), class names. */
static dp_status save_extras(FILE *f, const char *path, const dp_manifest *m)
{
    int channels, classes;
    schema_counts(&m->schema, &channels, &classes);
    if (m->nstats) {
        if (m->nstats != channels || !m->mean || !m->std)
            return dp_errorf(DP_ERR_ARG, "%s: %d stats for %d channels", path, m->nstats, channels);
        for (int i = 0; i < m->nstats; i++)
            if (!isfinite(m->mean[i]) || !(m->std[i] > 0) || !isfinite(m->std[i]))
                return dp_errorf(DP_ERR_ARG, "%s: channel %d: mean %g, std %g", path, i, m->mean[i], m->std[i]);
        fprintf(f, "# per-%s mean and standard deviation of the train split%s\n",
                m->schema.kind == DP_SCHEMA_VECTOR_F32 ? "feature" : "channel",
                m->schema.kind == DP_SCHEMA_VECTOR_F32 ? "" : " (pixels on [0, 1])");
        for (int k = 0; k < 2; k++) {
            const double *v = k ? m->std : m->mean;
            fputs(k ? "std" : "mean", f);
            for (int i = 0; i < m->nstats; i++)
                fprintf(f, " %.4g", v[i]);
            fputc('\n', f);
        }
    }
    if (m->split_rule[0]) {
        if (!dp_manifest_name_ok(m->split_rule, sizeof m->split_rule, 1))
            return dp_errorf(DP_ERR_ARG, "%s: bad split rule '%.*s'", path, (int)sizeof m->split_rule, m->split_rule);
        fprintf(f, "split-rule %s\n", m->split_rule);
    }
    if (m->class_names) {
        if (m->nclass_names != classes)
            return dp_errorf(DP_ERR_ARG, "%s: %d class names for %d classes", path, m->nclass_names, classes);
        fprintf(f, "# class <label> <name, %%XX-escaped>\n");
        for (int i = 0; i < classes; i++) {
            if (!class_name_ok(m->class_names[i]))
                return dp_errorf(DP_ERR_ARG, "%s: class %d: missing, empty or longer than %d bytes", path, i,
                                 DP_MANIFEST_CLASS_MAX - 1);
            fprintf(f, "class %d ", i);
            put_class_name(f, m->class_names[i]);
            fputc('\n', f);
        }
    }
    return DP_OK;
}

dp_status dp_manifest_save(const char *dir, const dp_manifest *m)
{
    char path[4096];
    dp_status rc = dp_path_join(path, sizeof path, dir, MANIFEST_FILE);
    if (rc != DP_OK)
        return rc;
    if (!dp_manifest_name_ok(m->name, sizeof m->name, 0))
        return dp_errorf(DP_ERR_ARG, "%s: bad dataset name '%s'", path, DP_ESC(m->name));
    if ((rc = dp_shard_schema_check(&m->schema, DP_ERR_ARG, path)) != DP_OK)
        return rc;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return dp_errorf(DP_ERR_NOMEM, "%s: out of memory", path);
    fprintf(f, "# dptrain dataset manifest; format in shards/README.md\n%s %d\nname %s\n",
            MANIFEST_HEAD, MANIFEST_VERSION, m->name);
    if (m->schema.kind == DP_SCHEMA_IMAGE_U8)
        fprintf(f, "schema image_u8 channels=%" PRIu32 " height=%" PRIu32 " width=%" PRIu32
                " classes=%" PRIu32 "\n", m->schema.image.channels, m->schema.image.height,
                m->schema.image.width, m->schema.image.classes);
    else if (m->schema.kind == DP_SCHEMA_VECTOR_F32)
        fprintf(f, "schema vector_f32 features=%" PRIu32 " classes=%" PRIu32 "\n", m->schema.vector.features,
                m->schema.vector.classes);
    else
        fprintf(f, "schema tokens vocab_size=%" PRIu32 "\n", m->schema.tokens.vocab_size);
    if ((rc = save_extras(f, path, m)) != DP_OK) {
        fclose(f);
        free(text);
        return rc;
    }
    fprintf(f, "# shard <split> <file> <records> <payload crc32>, in global record order\n");
    for (int i = 0; i < m->nshards && rc == DP_OK; i++) {
        const dp_manifest_shard *s = &m->shards[i];
        if (!dp_manifest_name_ok(s->split, sizeof s->split, 1) || !dp_manifest_name_ok(s->file, sizeof s->file, 0))
            rc = dp_errorf(DP_ERR_ARG, "%s: shard %d: bad split '%.*s' or file '%.*s'", path, i,
                           (int)sizeof s->split, s->split, (int)sizeof s->file, s->file);
        else
            fprintf(f, "shard %s %s %" PRIu64 " 0x%08" PRIx32 "\n", s->split, s->file, s->records,
                    s->crc32);
    }
    if (fclose(f) != 0 && rc == DP_OK)
        rc = dp_errorf(DP_ERR_NOMEM, "%s: out of memory", path);
    if (rc == DP_OK)
        rc = dp_write_file_atomic(path, text, len);
    free(text);
    return rc;
}

/* Strings are hashed with their NUL and integers as little-endian bytes, so
 * the hash depends on content only, not on host or text layout. */
uint64_t dp_manifest_hash(const dp_manifest *m)
{
    uint8_t b[8];
    uint64_t h = 0xcbf29ce484222325ull;
    h = fnv(h, MANIFEST_HEAD, sizeof MANIFEST_HEAD);
    h = fnv(h, m->name, strlen(m->name) + 1);
    dp_put_u32(b, m->schema.kind);
    h = fnv(h, b, 4);
    dp_put_u32(b, m->schema.record_size);
    h = fnv(h, b, 4);
    for (int i = 0; i < 4; i++) {
        dp_put_u32(b, m->schema.param[i]);
        h = fnv(h, b, 4);
    }
    dp_put_u32(b, (uint32_t)m->nshards);
    h = fnv(h, b, 4);
    for (int i = 0; i < m->nshards; i++) {
        const dp_manifest_shard *s = &m->shards[i];
        h = fnv(h, s->split, strnlen(s->split, sizeof s->split));
        h = fnv(h, "", 1);
        h = fnv(h, s->file, strnlen(s->file, sizeof s->file));
        h = fnv(h, "", 1);
        dp_put_u64(b, s->records);
        h = fnv(h, b, 8);
        dp_put_u32(b, s->crc32);
        h = fnv(h, b, 4);
    }
    if (m->nstats > 0) {
        h = fnv(h, "stats", sizeof "stats");
        dp_put_u32(b, (uint32_t)m->nstats);
        h = fnv(h, b, 4);
        for (int i = 0; i < 2 * m->nstats; i++) {
            double v = i < m->nstats ? m->mean[i] : m->std[i - m->nstats];
            uint64_t u;
            memcpy(&u, &v, sizeof u);
            dp_put_u64(b, u);
            h = fnv(h, b, 8);
        }
    }
    if (m->split_rule[0]) {
        h = fnv(h, "split-rule", sizeof "split-rule");
        h = fnv(h, m->split_rule, strnlen(m->split_rule, sizeof m->split_rule) + 1);
    }
    if (m->class_names) {
        h = fnv(h, "classes", sizeof "classes");
        for (int i = 0; i < m->nclass_names; i++)
            h = fnv(h, m->class_names[i], strlen(m->class_names[i]) + 1);
    }
    return h;
}

dp_status dp_manifest_remove(const char *dir)
{
    char path[4096];
    dp_status rc = dp_path_join(path, sizeof path, dir, MANIFEST_FILE);
    if (rc != DP_OK)
        return rc;
    if (unlink(path) == 0)
        return dp_fsync_parent_dir(path);
    if (errno == ENOENT || errno == ENOTDIR)
        return DP_OK;
    return dp_errorf(DP_ERR_IO, "%s: unlink: %s", path, strerror(errno));
}

dp_status dp_manifest_open_shard(const char *dir, const dp_manifest *m, const dp_manifest_shard *ms,
                                 char *path, size_t cap, dp_shard_reader **out)
{
    dp_status rc = dp_path_join(path, cap, dir, ms->file);
    if (rc != DP_OK || (rc = dp_shard_reader_open(path, out)) != DP_OK)
        return rc;
    const dp_shard_info *h = dp_shard_reader_info(*out);
    const uint32_t *k = h->schema.param;
    if (!dp_shard_schema_equal(&h->schema, &m->schema))
        rc = dp_errorf(DP_ERR_FORMAT, "%s: offset 16: schema %" PRIu32 " (parameters %" PRIu32 ", %" PRIu32 ", %"
                       PRIu32 ", %" PRIu32 ") differs from manifest.txt", path, h->schema.kind, k[0], k[1], k[2], k[3]);
    else if (h->record_count != ms->records)
        rc = dp_errorf(DP_ERR_FORMAT, "%s: offset 40: record count %" PRIu64
                       " differs from manifest.txt (%" PRIu64 ")", path, h->record_count, ms->records);
    else if (h->payload_crc32 != ms->crc32)
        rc = dp_errorf(DP_ERR_FORMAT, "%s: offset 72: payload crc32 0x%08" PRIx32
                       " differs from manifest.txt (0x%08" PRIx32 ")", path, h->payload_crc32, ms->crc32);
    if (rc != DP_OK) {
        dp_shard_reader_close(*out);
        *out = NULL;
    }
    return rc;
}

void dp_manifest_free(dp_manifest *m)
{
    if (!m)
        return;
    free(m->shards);
    free(m->mean);
    free(m->std);
    if (m->class_names) {
        /* a parse may stop with fewer names than classes: the array is NULL-filled to its end */
        for (int i = 0; i < m->nclass_names; i++)
            free(m->class_names[i]);
    }
    free(m->class_names);
    free(m);
}
