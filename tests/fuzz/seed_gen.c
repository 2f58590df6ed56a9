/* Writes the fuzz seed corpus with the library's own writers, so seeds are
 * real files in every field a mutator then bends:
 *   build-fz/tests/fuzz/fuzz_seed_gen tests/fuzz/corpus
 * Each seed stays a few KB; multi-file seeds (dataset dirs, Debian lists) are
 * packed with FUZZ_CUT in the order the harness expects. Files are only
 * (re)written, never deleted, so hand-made seeds in the same dirs survive. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "dptrain/checkpoint.h"
#include "dptrain/data.h"
#include "dptrain/dsi.h"
#include "dptrain/dsi_train.h"
#include "dptrain/nas.h"
#include "fuzz_util.h"

static const char *g_root;

#define CHECK(call)                                                                                 \
    do {                                                                                            \
        dp_status rc_ = (call);                                                                     \
        if (rc_ != DP_OK) {                                                                         \
            fprintf(stderr, "seed_gen: %s: %s\n", #call, dp_errmsg());                              \
            exit(1);                                                                                \
        }                                                                                           \
    } while (0)

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    rewind(f);
    char *b = malloc((size_t)len + 1);
    if (!b || fread(b, 1, (size_t)len, f) != (size_t)len) exit(1);
    fclose(f);
    *n = (size_t)len;
    return b;
}

/* corpus/<target>/<name> = the concatenation of the given files and texts. */
typedef struct piece {
    const char *path; /* a file to copy, or NULL */
    const char *text; /* else this text */
} piece;

static void emit(const char *target, const char *name, const piece *p, int n)
{
    char dir[1024], path[1200];
    snprintf(dir, sizeof dir, "%s/%s", g_root, target);
    mkdir(g_root, 0755);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    for (int i = 0; i < n; i++) {
        if (i) fputs(FUZZ_CUT, f);
        if (p[i].path) {
            size_t len;
            char *b = slurp(p[i].path, &len);
            fwrite(b, 1, len, f);
            free(b);
        } else {
            fputs(p[i].text, f);
        }
    }
    if (fclose(f) != 0) exit(1);
}

static const char *tmp(const char *name)
{
    static char path[8][600];
    static int k;
    char *p = path[k++ & 7];
    snprintf(p, sizeof path[0], "%s/%s", fuzz_dir(), name);
    return p;
}

/* An image shard of n records of c x h x w, frames of `frame` bytes. */
static void image_shard(const char *path, int n, int c, int h, int w, size_t frame)
{
    dp_shard_schema s = dp_shard_schema_image((uint32_t)c, (uint32_t)h, (uint32_t)w, 10);
    dp_shard_writer *wr;
    CHECK(dp_shard_writer_open(path, &s, &wr));
    CHECK(dp_shard_writer_set_frame_size(wr, frame));
    uint8_t rec[2 + 3 * 16 * 16];
    for (int i = 0; i < n; i++) {
        rec[0] = (uint8_t)(i % 10), rec[1] = 0;
        for (int j = 0; j < c * h * w; j++) rec[2 + j] = (uint8_t)(i * 7 + j * 13);
        CHECK(dp_shard_writer_add(wr, rec, s.record_size));
    }
    CHECK(dp_shard_writer_close(wr, NULL));
}

static void token_shard(const char *path, int n, uint32_t vocab)
{
    dp_shard_schema s = dp_shard_schema_tokens(vocab);
    dp_shard_writer *wr;
    CHECK(dp_shard_writer_open(path, &s, &wr));
    CHECK(dp_shard_writer_set_frame_size(wr, 1024));
    uint32_t rec[64];
    for (int i = 0; i < n; i++) {
        int len = 1 + i % 40;
        for (int j = 0; j < len; j++) rec[j] = (uint32_t)(i * 31 + j) % vocab;
        CHECK(dp_shard_writer_add(wr, rec, (size_t)len * 4));
    }
    CHECK(dp_shard_writer_close(wr, NULL));
}

static void shards_and_manifests(void)
{
    image_shard(tmp("a.dps"), 12, 1, 4, 4, 1024);
    emit("shard", "image_1x4x4", &(piece){tmp("a.dps"), NULL}, 1);
    image_shard(tmp("b.dps"), 150, 1, 8, 8, 1024); /* several frames */
    emit("shard", "image_frames", &(piece){tmp("b.dps"), NULL}, 1);
    image_shard(tmp("c.dps"), 0, 3, 2, 2, 1024);
    emit("shard", "image_empty", &(piece){tmp("c.dps"), NULL}, 1);
    token_shard(tmp("d.dps"), 60, 1000);
    emit("shard", "tokens", &(piece){tmp("d.dps"), NULL}, 1);

    /* An image dataset: train = s0 + s1, test = s2. */
    dp_manifest m = {.schema = dp_shard_schema_image(1, 4, 4, 10), .nshards = 3};
    snprintf(m.name, sizeof m.name, "fuzz-images");
    dp_manifest_shard sh[3] = {{"train", "s0.dps", 7, 0}, {"train", "s1.dps", 5, 0}, {"test", "s2.dps", 4, 0}};
    const char *files[3] = {tmp("s0.dps"), tmp("s1.dps"), tmp("s2.dps")};
    for (int i = 0; i < 3; i++) {
        dp_shard_schema s = m.schema;
        dp_shard_writer *wr;
        CHECK(dp_shard_writer_open(files[i], &s, &wr));
        uint8_t rec[18] = {0};
        for (uint64_t r = 0; r < sh[i].records; r++) {
            rec[0] = (uint8_t)(r % 10);
            rec[2] = (uint8_t)r;
            CHECK(dp_shard_writer_add(wr, rec, sizeof rec));
        }
        dp_shard_info info;
        CHECK(dp_shard_writer_close(wr, &info));
        sh[i].crc32 = info.payload_crc32;
    }
    m.shards = sh;
    CHECK(dp_manifest_save(fuzz_dir(), &m));
    emit("manifest", "images", &(piece){tmp("manifest.txt"), NULL}, 1);
    piece set[4] = {{tmp("manifest.txt"), NULL}, {files[0], NULL}, {files[1], NULL}, {files[2], NULL}};
    emit("image_set", "two_splits", set, 4);

    dp_manifest t = {.schema = dp_shard_schema_tokens(4096), .nshards = 1};
    snprintf(t.name, sizeof t.name, "fuzz-tokens");
    dp_manifest_shard ts = {"train", "train-00000.dps", 123, 0xdeadbeef};
    t.shards = &ts;
    CHECK(dp_manifest_save(fuzz_dir(), &t));
    emit("manifest", "tokens", &(piece){tmp("manifest.txt"), NULL}, 1);
}

/* What the dataset writer adds: a vector_f32 set with mean/std and %XX-escaped class names, its shards
 * renamed s0..s2 for the image_set harness. */
static void writer_seeds(void)
{
    char dir[700];
    snprintf(dir, sizeof dir, "%s/w", fuzz_dir());
    dp_shard_schema s = dp_shard_schema_vector(3, 2);
    dp_dataset_writer *w;
    CHECK(dp_dataset_writer_open(dir, "fuzz-vectors", &s, 0, &w));
    const char *names[2] = {"a b/c", "100%"};
    CHECK(dp_dataset_writer_classes(w, 2, names));
    for (int split = 0; split < 2; split++) {
        int n = split ? 3 : 9;
        CHECK(dp_dataset_writer_split(w, split ? "test" : "train", (uint64_t)n, 2 - split));
        for (int i = 0; i < n; i++) {
            float x[3] = {(float)i, 0.5f * (float)i - 2.0f, 1000.0f + (float)(i % 3)};
            CHECK(dp_dataset_writer_add(w, (uint32_t)(i & 1), x));
        }
    }
    CHECK(dp_dataset_writer_commit(w, NULL));
    dp_manifest *m;
    CHECK(dp_manifest_load(dir, &m));
    char from[3][900];
    for (int i = 0; i < m->nshards; i++) {
        snprintf(from[i], sizeof from[i], "%s/%s", dir, m->shards[i].file);
        snprintf(m->shards[i].file, sizeof m->shards[i].file, "s%d.dps", i);
    }
    CHECK(dp_manifest_save(dir, m));
    char manp[800];
    snprintf(manp, sizeof manp, "%s/manifest.txt", dir);
    emit("manifest", "vectors_stats_names", &(piece){manp, NULL}, 1);
    piece set[4] = {{manp, NULL}, {from[0], NULL}, {from[1], NULL}, {from[2], NULL}};
    emit("image_set", "vectors", set, 4);
    dp_manifest_free(m);
}

/* IDX files as LeCun writes them: big-endian dims, unsigned bytes. */
static void idx_seeds(void)
{
    uint8_t img[16 + 3 * 5 * 5], lab[8 + 3];
    memcpy(img, "\0\0\x08\x03\0\0\0\x03\0\0\0\x05\0\0\0\x05", 16);
    for (int i = 0; i < 75; i++) img[16 + i] = (uint8_t)(i * 3);
    memcpy(lab, "\0\0\x08\x01\0\0\0\x03\x07\x02\x01", 11);
    FILE *f = fopen(tmp("img.idx"), "wb");
    fwrite(img, 1, sizeof img, f);
    fclose(f);
    emit("idx", "images_plain", &(piece){tmp("img.idx"), NULL}, 1);
    f = fopen(tmp("lab.idx"), "wb");
    fwrite(lab, 1, sizeof lab, f);
    fclose(f);
    emit("idx", "labels_plain", &(piece){tmp("lab.idx"), NULL}, 1);
    gzFile gz = gzopen(tmp("img.gz"), "wb");
    gzwrite(gz, img, sizeof img);
    gzclose(gz);
    emit("idx", "images_gz", &(piece){tmp("img.gz"), NULL}, 1);
    gz = gzopen(tmp("lab.gz"), "wb");
    gzwrite(gz, lab, sizeof lab);
    gzclose(gz);
    emit("idx", "labels_gz", &(piece){tmp("lab.gz"), NULL}, 1);
}

static void checkpoint_seeds(void)
{
    static const char cfg[] = "model=mlp\nbatch=32\n";
    float params[37];
    for (int i = 0; i < 37; i++) params[i] = (float)i * 0.25f;
    uint8_t odd[13] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13};
    dp_ck_section s[] = {{DP_CK_CONFIG, cfg, sizeof cfg - 1}, {DP_CK_STATE, odd, 1}, {DP_CK_PARAMS, params, sizeof params},
                         {DP_CK_BUFFERS, odd, 13}, {DP_CK_OPTIM, params, 0}};
    CHECK(dp_checkpoint_write(tmp("a.dpc"), s, 5));
    emit("checkpoint", "five_sections", &(piece){tmp("a.dpc"), NULL}, 1);
    CHECK(dp_checkpoint_write(tmp("b.dpc"), s, 0));
    emit("checkpoint", "empty", &(piece){tmp("b.dpc"), NULL}, 1);
}

static void member_seed(void)
{
    dp_dsi_docids ids;
    CHECK(dp_dsi_docids_atomic(3, &ids));
    dp_dsi_model_config mc = {.buckets = 64, .embed = 4, .hidden = 8, .layers = 1, .dropout = 0.1f};
    dp_dsi_model *m;
    CHECK(dp_dsi_model_build(&mc, &ids, &m));
    dp_dsi_tok_config tok;
    dp_dsi_tok_defaults(&tok);
    tok.buckets = 64;
    char *names[3] = {"pkg-a", "pkg-b", "pkg-c"};
    CHECK(dp_dsi_member_save(tmp("model.dsi"), m, &tok, names, "members=1\n"));
    dp_dsi_model_free(m);
    emit("dsi_member", "atomic_3docs", &(piece){tmp("model.dsi"), NULL}, 1);
}

static void genotype_seed(void)
{
    dp_genotype g;
    for (int k = 0; k < 2 * DP_NAS_NODES; k++) {
        g.normal_op[k] = DP_NAS_SEP_CONV_3X3 + k % 3;
        g.normal_in[k] = k % 2 ? k / 2 + 1 : 0;
        g.reduce_op[k] = k % 2 ? DP_NAS_SKIP_CONNECT : DP_NAS_SEP_CONV_5X5;
        g.reduce_in[k] = k % 2;
    }
    CHECK(dp_genotype_save(&g, tmp("g.json")));
    emit("genotype", "darts_like", &(piece){tmp("g.json"), NULL}, 1);
}

static void text_seeds(void)
{
    emit("costs", "table", &(piece){NULL, "# op C H W stride ms\nsep_conv_3x3 16 32 32 1 0.512\n"
                                          "max_pool_3x3 16 32 32 2 0.0400\nskip_connect 32 16 16 1 0\n"}, 1);
    emit("dsi_pairs", "plain", &(piece){NULL, "how to install vim\tvim\nvim editor\tvim\n"
                                              "how to install vim\tvim\r\nweb server\tnginx\n\nlight editor\tnano\n"}, 1);
    piece plain[2] = {{NULL, "text editor\tvim\nweb server\tnginx\nsmall editor\tnano\nvi clone\tvim\n"},
                      {NULL, "vim\tVi IMproved, a highly configurable text editor\nnginx\tsmall, powerful web server\n"
                             "nano\tsmall friendly\ttext editor\n"}};
    emit("dsi_tsv", "plain", plain, 2);
    piece orcas[2] = {{NULL, "1\tcheap flights\tD1\thttp://a.example/\n2\tflight deals\tD1\thttp://a.example/\n"
                             "3\tweather today\tD2\thttp://b.example/\n"},
                      {NULL, "D2\tweather forecast for the week\n"}};
    emit("dsi_tsv", "orcas", orcas, 2);
    piece deb[2] = {
        {NULL, "Package: vim\nVersion: 2:9.0\nDescription: Vi IMproved - enhanced vi editor\n"
               " Vim is an almost compatible version of the UNIX editor Vi.\n .\n"
               " Many new features have been added: multi level undo, syntax\n highlighting. Also:\n"
               "  * command line history\n  * filename completion\nDescription-md5: 59e8b8f7757db8b53566d5d119872de8\n\n"
               "Package: nano\nDescription: small, friendly text editor inspired by Pico\n"
               "Description-md5: 0b7a3c3bc9d1f1ac8d4a5a1c0b3c0d5e\nPackage: hello\nDescription: example package\n"},
        {NULL, "Package: vim\nDescription-md5: 59e8b8f7757db8b53566d5d119872de8\n"
               "Description-en: Vi IMproved - enhanced vi editor\n Vim is a text editor! It is fast.\n\n"
               "Package: other\nDescription-md5: ffff\nDescription-en: not wanted\n"}};
    emit("debian", "two_files", deb, 2);
}

/* A real dsi-prepare output dir, its shards renamed s0.dps.. for the harness. */
static void dataset_seed(void)
{
    const char *q = tmp("queries.tsv");
    FILE *f = fopen(q, "w");
    static const char *const docs[5] = {"vim", "nano", "nginx", "apache2", "curl"};
    static const char *const words[8] = {"editor", "server", "web", "text", "fast", "small", "http", "tool"};
    for (int i = 0; i < 40; i++)
        fprintf(f, "%s %s %s q%d\t%s\n", words[i % 8], words[(i * 3) % 8], docs[i % 5], i, docs[i % 5]);
    fclose(f);
    dp_dsi_prepare_config c;
    dp_dsi_prepare_defaults(&c);
    c.tok.buckets = 256;
    c.tok.max_tokens = 16;
    c.index_examples = 1;
    snprintf(c.queries, sizeof c.queries, "%s", q);
    snprintf(c.out, sizeof c.out, "%s", tmp("ds"));
    dp_dsi_prepare_stats st;
    CHECK(dp_dsi_prepare(&c, &st));
    dp_manifest *m;
    CHECK(dp_manifest_load(c.out, &m));
    if (m->nshards > 3) {
        fprintf(stderr, "seed_gen: prepare wrote %d shards, the harness takes 3\n", m->nshards);
        exit(1);
    }
    static char from[3][1200];
    for (int i = 0; i < m->nshards; i++) {
        snprintf(from[i], sizeof from[i], "%s/%s", c.out, m->shards[i].file);
        snprintf(m->shards[i].file, sizeof m->shards[i].file, "s%d.dps", i);
    }
    CHECK(dp_manifest_save(c.out, m));
    char tokp[1200], docp[1200], manp[1200];
    snprintf(tokp, sizeof tokp, "%s/tokenizer.txt", c.out);
    snprintf(docp, sizeof docp, "%s/docs.tsv", c.out);
    snprintf(manp, sizeof manp, "%s/manifest.txt", c.out);
    piece p[6] = {{tokp, NULL}, {docp, NULL}, {manp, NULL}};
    for (int i = 0; i < m->nshards; i++) p[3 + i].path = from[i];
    emit("dsi_dataset", "prepared", p, 3 + m->nshards);
    dp_manifest_free(m);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR (tests/fuzz/corpus)\n", argv[0]);
        return 2;
    }
    g_root = argv[1];
    shards_and_manifests();
    writer_seeds();
    idx_seeds();
    checkpoint_seeds();
    member_seed();
    genotype_seed();
    text_seeds();
    dataset_seed();
    puts("seed_gen: done");
    return 0;
}
