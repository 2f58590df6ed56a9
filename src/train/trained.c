/* A trained run out of its run directory (dptrain/trained.h): the newest
 * checkpoint that verifies, its configuration read back, its model rebuilt
 * the way the trainer built it (classify.c's build_model) and its parameter
 * and buffer sections loaded into the model's flat buffers.
 *
 *   run_dir/checkpoint.dpc (or .1, .2 ...)
 *     config  -> dp_train_config_parse -> model=, genotype=, model_json=, shape=
 *     state   -> layout hash, parameter and buffer counts
 *     params, buffers -> m->params.data, m->params.buffers */
#include "dptrain/trained.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dptrain/checkpoint.h"
#include "dptrain/image_task.h"
#include "dptrain/nas.h"
#include "dptrain/netdesc.h"
#include "dptrain/task.h"
#include "dptrain/text.h"

/* The genotype's JSON as the trainer stored it (key "genotype"): genotype.c
 * reads genotypes from files only, so the text goes through a private temp file. */
static dp_status genotype_from_text(const char *json, size_t len, const char *source, dp_genotype *g)
{
    const char *dir = getenv("TMPDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/dptrain-genotype-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0) return dp_errorf(DP_ERR_IO, "%s: genotype: temp file %s: %s", source, path, strerror(errno));
    int ok = write(fd, json, len) == (ssize_t)len;
    close(fd);
    dp_status rc = ok ? dp_genotype_load(path, g) : dp_errorf(DP_ERR_IO, "%s: genotype: write %s", source, path);
    unlink(path);
    if (rc != DP_OK) return dp_errorf(rc, "%s: the genotype= of its configuration: %s", source, dp_errmsg());
    return DP_OK;
}

/* The input shape: the checkpoint's shape= key, or (a run written before it) the data set's manifest. */
static dp_status input_shape(const char *text, const char *source, const char *data, dp_model_shape *shape)
{
    size_t len = 0;
    const char *v = dp_config_find(text, "shape", &len);
    if (v) {
        char buf[64];
        int used = 0;
        snprintf(buf, sizeof buf, "%.*s", (int)(len < sizeof buf ? len : sizeof buf - 1), v);
        if (sscanf(buf, "%d,%d,%d,%d%n", &shape->c, &shape->h, &shape->w, &shape->classes, &used) != 4 ||
            buf[used] || shape->c < 1 || shape->h < 1 || shape->w < 1 || shape->classes < 2)
            return dp_errorf(DP_ERR_FORMAT, "%s: configuration: shape=%s is not C,H,W,CLASSES", source,
                             DP_ESC(buf));
        return DP_OK;
    }
    uint64_t hash;
    if (!data[0] || dp_image_shape(data, shape, &hash) != DP_OK)
        return dp_errorf(DP_ERR_FORMAT, "%s: configuration has no shape= and its data set '%s' cannot say it", source,
                         data);
    return DP_OK;
}

/* The norm= key (dp_image_norm_format): shape.c mean/std pairs, or none. */
static dp_status read_norm(const char *text, const char *source, dp_trained *t)
{
    size_t len = 0;
    const char *v = dp_config_find(text, "norm", &len);
    if (!v) return DP_OK;
    int c = t->shape.c;
    t->mean = malloc((size_t)c * sizeof *t->mean);
    t->std = malloc((size_t)c * sizeof *t->std);
    if (!t->mean || !t->std) return dp_errorf(DP_ERR_NOMEM, "%s: norm: out of memory", source);
    const char *p = v, *end = v + len;
    for (int ch = 0; ch < c; ch++) {
        char *e1 = NULL, *e2 = NULL;
        t->mean[ch] = strtof(p, &e1);
        if (e1 == p || e1 >= end || *e1 != '/') goto bad;
        t->std[ch] = strtof(e1 + 1, &e2);
        if (e2 == e1 + 1 || e2 > end || !(t->std[ch] > 0) || (ch < c - 1 ? *e2 != ',' : e2 != end)) goto bad;
        p = e2 + 1;
    }
    return DP_OK;
bad:;
    char text80[81];
    snprintf(text80, sizeof text80, "%.*s", (int)(len > 80 ? 80 : len), v);
    return dp_errorf(DP_ERR_FORMAT, "%s: configuration: norm=%s is not %d mean/std pairs", source, DP_ESC(text80), c);
}

/* The model as classify.c's build_model makes it: a description, a genotype's network, or a name. */
static dp_status build_model(const char *text, const char *source, const dp_train_config *cfg,
                             const dp_model_shape *shape, dp_model **m)
{
    size_t len = 0;
    const char *v = dp_config_find(text, "model_json", &len);
    if (v) { /* a description from a file: its canonical JSON is in the checkpoint */
        char *json = strndup(v, len), what[1200];
        if (!json) return dp_errorf(DP_ERR_NOMEM, "%s: model_json: out of memory", source);
        snprintf(what, sizeof what, "%s: configuration model_json=", source);
        dp_status rc = dp_netdesc_build(json, what, shape, m);
        free(json);
        return rc;
    }
    if ((v = dp_config_find(text, "genotype", &len))) {
        dp_genotype g;
        dp_status rc = genotype_from_text(v, len, source, &g);
        return rc == DP_OK ? dp_darts_net_build(&g, cfg->layers, cfg->channels, cfg->drop_path, shape, m) : rc;
    }
    dp_status rc = dp_model_build(cfg->model, shape, m);
    return rc == DP_OK ? DP_OK : dp_errorf(rc, "%s: configuration model=%s: %s", source, cfg->model, dp_errmsg());
}

/* The params and buffers sections into m's flat buffers, checked against the state section's layout. */
static dp_status load_sections(const dp_checkpoint *ck, const char *path, dp_model *m)
{
    const dp_ck_section *st = dp_checkpoint_find(ck, DP_CK_STATE);
    dp_drive_state s;
    if (!st) return dp_errorf(DP_ERR_FORMAT, "%s: the state section is missing", path);
    if (st->size != sizeof s)
        return dp_errorf(DP_ERR_FORMAT, "%s: the state section has %llu bytes, this build reads %zu", path,
                         (unsigned long long)st->size, sizeof s);
    memcpy(&s, st->data, sizeof s);
    const dp_params *p = &m->params;
    if (s.layout != dp_params_layout_hash(p) || s.n_params != p->n || s.n_buffers != p->nbuf)
        return dp_errorf(DP_ERR_FORMAT,
                         "%s: state section: parameter layout %016llx (%llu parameters, %llu buffers) differs from "
                         "the rebuilt %s's %016llx (%zu, %zu)", path, (unsigned long long)s.layout,
                         (unsigned long long)s.n_params, (unsigned long long)s.n_buffers, m->name,
                         (unsigned long long)dp_params_layout_hash(p), p->n, p->nbuf);
    const struct { uint32_t tag; const char *what; float *dst; size_t n; } part[] = {
        {DP_CK_PARAMS, "parameters", p->data, p->n}, {DP_CK_BUFFERS, "buffers", p->buffers, p->nbuf}};
    for (int i = 0; i < 2; i++) {
        const dp_ck_section *x = dp_checkpoint_find(ck, part[i].tag);
        if (!x) return dp_errorf(DP_ERR_FORMAT, "%s: the %s section is missing", path, part[i].what);
        if (x->size != part[i].n * sizeof(float))
            return dp_errorf(DP_ERR_FORMAT, "%s: the %s section has %llu bytes, the model needs %zu", path,
                             part[i].what, (unsigned long long)x->size, part[i].n * sizeof(float));
        if (part[i].n) memcpy(part[i].dst, x->data, part[i].n * sizeof(float));
    }
    return DP_OK;
}

dp_status dp_trained_load(const char *run_dir, dp_trained *out)
{
    memset(out, 0, sizeof *out);
    struct stat sb;
    if (stat(run_dir, &sb) != 0) return dp_errorf(DP_ERR_IO, "%s: run directory: %s", run_dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) return dp_errorf(DP_ERR_IO, "%s: not a run directory", run_dir);
    char ckpt[1024], path[1100];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.dpc", run_dir);
    snprintf(path, sizeof path, "%s.1", ckpt);
    if (access(ckpt, F_OK) != 0 && access(path, F_OK) != 0)
        return dp_errorf(DP_ERR_IO, "%s: no checkpoint in the run directory (checkpoint.dpc missing: was it a "
                         "`dptrain train --out %s` run?)", run_dir, run_dir);
    dp_checkpoint ck;
    dp_status rc = dp_checkpoint_read_newest(ckpt, "loading", &ck, path, sizeof path);
    if (rc != DP_OK) return rc;
    const dp_ck_section *cs = dp_checkpoint_find(&ck, DP_CK_CONFIG);
    char *text = cs ? strndup(cs->data, cs->size) : NULL;
    if (!cs) rc = dp_errorf(DP_ERR_FORMAT, "%s: the config section is missing", path);
    else if (!text) rc = dp_errorf(DP_ERR_NOMEM, "%s: config section: out of memory", path);
    if (rc == DP_OK) rc = dp_train_config_parse(text, path, &out->cfg);
    if (rc == DP_OK) {
        snprintf(out->data, sizeof out->data, "%s", out->cfg.run.data);
        rc = input_shape(text, path, out->data, &out->shape);
    }
    if (rc == DP_OK) rc = read_norm(text, path, out);
    if (rc == DP_OK) rc = build_model(text, path, &out->cfg, &out->shape, &out->model);
    if (rc == DP_OK) rc = load_sections(&ck, path, out->model);
    free(text);
    dp_checkpoint_free(&ck);
    if (rc != DP_OK) dp_trained_free(out);
    return rc;
}

void dp_trained_free(dp_trained *t)
{
    if (!t) return;
    dp_model_free(t->model);
    free(t->mean);
    free(t->std);
    memset(t, 0, sizeof *t);
}
