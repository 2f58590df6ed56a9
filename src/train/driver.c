/* The one training loop (see dptrain/task.h): set-up and agreement, epochs
 * and steps, the non-finite policy, progress and metrics, checkpoints and
 * resume, for whichever task it drives.
 *
 * Reproducibility: a task keeps its shuffling streams at their epoch-start
 * state while an epoch runs, so a checkpoint taken mid-epoch regenerates the
 * same permutation and the driver skips the positions already taken. */
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "dptrain/fault.h"
#include "dptrain/floatscan.h"
#include "dptrain/optim.h"
#include "dptrain/rundir.h"
#include "dptrain/task.h"
#include "dptrain/train.h"

#define DRIVE_STATE_VERSION 4u
#define MAX_SKIP_RUN 50 /* skipped steps in a row before giving up */

static volatile sig_atomic_t stop_requested; /* the signal that asked (-1: a request without one) */
static int stop_signal; /* the signal that stopped the last dp_drive, as every rank agreed (0: none) */

void dp_drive_request_stop(int sig) { stop_requested = sig > 0 ? sig : -1; }

int dp_drive_stop_signal(void) { return stop_signal; }

/* A step whose statistics say some rank was asked to stop: which signal, the same on every rank (the highest
 * any rank received), so that rank 0 exits 128 + it even when only another rank was signalled. Once a run. */
static dp_status agree_stop_signal(dp_driver *d)
{
    long *all = calloc((size_t)d->size, sizeof *all);
    dp_status rc = all ? DP_OK : dp_errorf(DP_ERR_NOMEM, "no memory for %d ranks' stop requests", d->size);
    rc = dp_sync_all_ok(&d->sync, rc, "agreeing on the stop");
    if (rc == DP_OK) rc = dp_sync_allgather_long(&d->sync, stop_requested, all);
    for (int r = 0; rc == DP_OK && r < d->size; r++)
        if (all[r] > stop_signal) stop_signal = (int)all[r];
    free(all);
    return rc;
}

/* ------------------------------------------------------------ checkpoints */

/* The driver's parts (parameters, batch-norm buffers, every rank's error feedback), then the task's. */
static int parts(const dp_task_ops *ops, void *t, dp_driver *d, dp_ck_part *q)
{
    const dp_params *p = d->params;
    size_t residual = d->sync.state ? d->sync.state_n * sizeof(float) : 0; /* the compressor's (and DGC's velocity) */
    q[0] = (dp_ck_part){DP_CK_PARAMS, "parameters", p->data, p->n * sizeof(float), 0};
    q[1] = (dp_ck_part){DP_CK_BUFFERS, "buffers", p->buffers, p->nbuf * sizeof(float), 0};
    q[2] = (dp_ck_part){DP_CK_RESIDUAL, "error-feedback", d->sync.state, residual, 1};
    return 3 + ops->parts(t, d, q + 3);
}

/* Every rank's bytes of a per-rank part, to rank 0's *all (allocated there). */
static dp_status gather_part(dp_driver *d, const dp_ck_part *q, void **all)
{
    dp_status rc = DP_OK;
    if (d->rank == 0 && !(*all = malloc((size_t)d->size * q->bytes)))
        rc = dp_errorf(DP_ERR_NOMEM, "checkpoint: no memory for %d ranks' %s", d->size, q->what);
    rc = dp_sync_all_ok(&d->sync, rc, "checkpoint save");
    return rc == DP_OK ? dp_sync_gather0(&d->sync, q->data, q->bytes, *all) : rc;
}

static dp_status save(const dp_task_ops *ops, void *t, dp_driver *d)
{
    if (!d->o->run.out[0] || !ops->parts) return DP_OK;
    dp_sync_phase(&d->sync, "checkpoint save", (long)d->st.step);
    dp_ck_section s[DP_CK_MAX_SECTIONS];
    dp_ck_part q[DP_CK_MAX_SECTIONS];
    void *gathered[DP_CK_MAX_SECTIONS] = {0};
    int n = 0, nq = parts(ops, t, d, q);
    dp_status rc = DP_OK;
    s[n++] = (dp_ck_section){DP_CK_CONFIG, d->config_text, strlen(d->config_text)};
    s[n++] = (dp_ck_section){DP_CK_STATE, &d->st, sizeof d->st};
    for (int i = 0; i < nq && rc == DP_OK; i++) {
        if (!q[i].per_rank) s[n++] = (dp_ck_section){q[i].tag, q[i].data, q[i].bytes};
        else if (q[i].bytes) rc = gather_part(d, &q[i], &gathered[i]); /* an empty one is left out */
        if (gathered[i]) s[n++] = (dp_ck_section){q[i].tag, gathered[i], (size_t)d->size * q[i].bytes};
    }
    const dp_params *p = d->params;
    if (rc == DP_OK && d->rank == 0) {
        d->st.version = DRIVE_STATE_VERSION;
        d->st.layout = dp_params_layout_hash(p);
        d->st.n_params = p->n;
        d->st.n_buffers = p->nbuf;
        d->st.ranks = d->size;
        rc = dp_checkpoint_write_keep(d->ckpt, s, n, d->o->run.keep_checkpoints);
        if (rc != DP_OK) {
            char why[1024];
            snprintf(why, sizeof why, "%s", dp_errmsg());
            if (d->saved_step >= 0)
                rc = dp_errorf(rc, "checkpoint of step %lld not written (%s); %s still holds step %ld",
                               (long long)d->st.step, why, d->ckpt, d->saved_step);
            else
                rc = dp_errorf(rc, "checkpoint of step %lld not written (%s)", (long long)d->st.step, why);
        }
    }
    for (int i = 0; i < nq; i++) free(gathered[i]);
    rc = dp_sync_root_status(&d->sync, rc);
    if (rc == DP_OK) d->saved_step = (long)d->st.step;
    return rc;
}

static dp_status read_newest(const dp_driver *d, dp_checkpoint *ck, char *path, size_t cap)
{
    return dp_checkpoint_read_newest(d->ckpt, "resuming from", ck, path, cap);
}

/* The value of `key` in key=value lines, into out (NUL-terminated; "" when the key is absent): 1 if present. */
static int config_value(const char *text, const char *key, char *out, size_t n)
{
    size_t kn = strlen(key);
    out[0] = 0;
    for (const char *a = text; *a;) {
        size_t la = strcspn(a, "\n");
        if (la > kn && !memcmp(a, key, kn) && a[kn] == '=') {
            snprintf(out, n, "%.*s", (int)(la - kn - 1), a + kn + 1);
            return 1;
        }
        a += la + (a[la] == '\n');
    }
    return 0;
}

/* What the user changes to change a key: the driver's keys, then the task's table, else the flag of the same
 * name. A key holding several values ("w=0.025/0.001/...") names one flag per '/'-separated value. */
static const char *const driver_flags[] = {
    "layout=the model (its parameter layout)", "shape=--data (the images' shape and classes)",
    "norm=--data (the manifest's mean and std)", "model_json=--model (the description's content)",
    "genotype=--arch (the genotype file's content)", "init=--init (the file's content)",
    "overlap=--no-overlap", NULL};

static const char *flags_of(const char *const *table, const char *key)
{
    size_t kn = strlen(key);
    for (int i = 0; table && table[i]; i++)
        if (!strncmp(table[i], key, kn) && table[i][kn] == '=') return table[i] + kn + 1;
    return NULL;
}

/* Names the flag behind a differing key, with both values (the first differing one of a '/' list). */
static void name_flag(const dp_task_info *info, const char *key, const char *was, const char *now, char *out,
                      size_t n)
{
    const char *flags = flags_of(info->key_flags, key);
    if (!flags) flags = flags_of(driver_flags, key);
    char dflt[80];
    if (!flags) { /* --the-key */
        snprintf(dflt, sizeof dflt, "--%s", key);
        for (char *c = dflt; *c; c++) if (*c == '_') *c = '-';
        flags = dflt;
    }
    /* the component (and its flag) where the values part */
    int nflags = 1;
    for (const char *c = flags; *c; c++) nflags += *c == '/';
    int k = 0;
    const char *a = was, *b = now, *f = flags;
    if (nflags > 1 && was[0] && now[0]) /* a key one side lacks: both whole, below */
        for (;; k++) {
            size_t la = strcspn(a, "/"), lb = strcspn(b, "/");
            if (la != lb || memcmp(a, b, la) || !a[la] || !b[lb] || k == nflags - 1) {
                size_t lf = strcspn(f, "/");
                snprintf(out, n, "%.*s is %.*s in this run, %.*s in the checkpoint", (int)lf, f, (int)lb, b,
                         (int)la, a);
                return;
            }
            a += la + 1, b += lb + 1, f += strcspn(f, "/") + (f[strcspn(f, "/")] == '/');
        }
    /* a file's content (a genotype, a description) is named, not printed whole */
    int wn = (int)strlen(was), nn = (int)strlen(now), cut = 48;
    snprintf(out, n, "%s is %.*s%s in this run, %.*s%s in the checkpoint", flags, nn ? cut : 6, nn ? now : "(none)",
             nn > cut ? "..." : "", wn ? cut : 6, wn ? was : "(none)", wn > cut ? "..." : "");
}

/* Rank 0: the configuration against this run's: the data set by its manifest's hash, then every key a resume
 * must keep, named by its flag. */
static dp_status check_config(dp_driver *d, const dp_task_info *info, const char *path, const char *saved)
{
    char was[512], now[512], key[64];
    if (config_value(d->config_text, "manifest", now, sizeof now)) {
        if (!config_value(saved, "manifest", was, sizeof was)) {
            /* written before checkpoints named their data: resumable, but unchecked, and said so */
            fprintf(stderr, "warning: %s names no data set (an older checkpoint): %s is not checked against "
                    "the data it was written with\n", path, d->o->run.data);
        } else if (strcmp(was, now)) {
            char data[512];
            config_value(saved, "data", data, sizeof data);
            return dp_errorf(DP_ERR_ARG, "%s: --resume on other data: the manifest of --data %s hashes to %s, the "
                             "checkpoint was written on %s with manifest hash %s (shards added, removed, reordered "
                             "or changed)", path, d->o->run.data, now, data[0] ? data : "a shard set", was);
        }
    }
    /* the keys the checkpoint lacks first: a flag that changes the layout is named, not the layout's hash */
    int differs = 0;
    for (const char *b = d->config_text; info->implied && !differs && *b;) {
        size_t lb = strcspn(b, "\n"), kb = strcspn(b, "=");
        if (kb < lb && kb < sizeof key) {
            snprintf(key, sizeof key, "%.*s", (int)kb, b);
            if (!config_value(saved, key, was, sizeof was) && (!info->resume_key || info->resume_key(key))) {
                const char *v = flags_of(info->implied, key);
                differs = !v || strlen(v) != lb - kb - 1 || memcmp(v, b + kb + 1, lb - kb - 1);
            }
        }
        b += lb + (b[lb] == '\n');
    }
    if (!differs) differs = dp_checkpoint_config_diff(saved, d->config_text, info->resume_key, key, sizeof key);
    if (!differs) return DP_OK;
    char what[1400];
    config_value(saved, key, was, sizeof was);
    config_value(d->config_text, key, now, sizeof now);
    name_flag(info, key, was, now, what, sizeof what);
    return dp_errorf(DP_ERR_ARG, "%s: --resume with a different configuration: %s (field '%s' differs; resume "
                     "with the flags the run was started with)", path, what, key);
}

/* Bounds no run reaches, far below where a step count could overflow. */
#define STEP_MAX (1ll << 40)

/* Rank 0: every field of the state against this run: a checkpoint with valid checksums can still hold values no
 * run of this configuration writes (forged, or written by a buggy build), and nothing after trusts them. */
static dp_status check_fields(const dp_driver *d, const char *path, const dp_drive_state *st)
{
    const dp_run_config *r = &d->o->run;
    const dp_params *p = d->params;
    const char *field = NULL;
    char range[160] = "";
#define FIELD(cond, name, ...) \
    if (!field && !(cond)) field = name, snprintf(range, sizeof range, __VA_ARGS__)
    FIELD(st->n_params == p->n, "n_params", "this model has %zu", p->n);
    FIELD(st->n_buffers == p->nbuf, "n_buffers", "this model has %zu", p->nbuf);
    FIELD(st->epoch <= (uint32_t)r->epochs, "epoch", "[0, --epochs %d]", r->epochs);
    FIELD(st->step >= 0 && st->step <= STEP_MAX, "step", "[0, %lld]", STEP_MAX);
    FIELD(st->pos >= 0 && st->pos <= STEP_MAX, "pos", "[0, %lld]", STEP_MAX); /* the epoch's length: checked at its start */
    FIELD(st->ep_seen >= 0, "ep_seen", ">= 0");
    FIELD(st->ep_correct >= 0 && st->ep_correct <= st->ep_seen, "ep_correct", "[0, ep_seen %lld]",
          (long long)st->ep_seen);
    FIELD(isfinite(st->train_time) && st->train_time >= 0, "train_time", "finite, >= 0");
    FIELD(isfinite(st->loss_scale) && st->loss_scale > 0 && st->loss_scale <= r->loss_scale, "loss_scale",
          "(0, --loss-scale %g]", r->loss_scale);
    FIELD(st->skipped >= 0 && st->skipped <= st->step, "skipped", "[0, step %lld]", (long long)st->step);
    FIELD(st->skip_run >= 0 && st->skip_run <= MAX_SKIP_RUN && st->skip_run <= st->skipped, "skip_run",
          "[0, %d] and <= skipped", MAX_SKIP_RUN);
    FIELD(st->clean_steps >= 0 && st->clean_steps <= st->step, "clean_steps", "[0, step %lld]", (long long)st->step);
#undef FIELD
    if (!field) return DP_OK;
    return dp_errorf(DP_ERR_FORMAT, "%s: state field '%s' out of range for this run (must be %s)", path, field, range);
}

/* Rank 0: the configuration and the position, checked before any part is read. */
static dp_status check_state(dp_driver *d, const dp_task_info *info, const char *path, const dp_checkpoint *ck)
{
    const dp_ck_section *cfg = dp_checkpoint_find(ck, DP_CK_CONFIG), *s = dp_checkpoint_find(ck, DP_CK_STATE);
    if (!cfg || !s) return dp_errorf(DP_ERR_FORMAT, "%s: a section is missing (config, state)", path);
    dp_drive_state st;
    if (s->size != sizeof st)
        return dp_errorf(DP_ERR_FORMAT, "%s: state section has %llu bytes, expected %zu", path,
                         (unsigned long long)s->size, sizeof st);
    memcpy(&st, s->data, sizeof st);
    if (st.version != DRIVE_STATE_VERSION)
        return dp_errorf(DP_ERR_FORMAT, "%s: state version %u (this build reads %u)", path, st.version,
                         DRIVE_STATE_VERSION);
    if (st.ranks != d->size)
        return dp_errorf(DP_ERR_ARG, "%s: written by a run of %d ranks, this run has %d (resume with -np %d)", path,
                         st.ranks, d->size, st.ranks);
    if (cfg->size >= DP_CONFIG_TEXT_CAP || memchr(cfg->data, 0, cfg->size))
        return dp_errorf(DP_ERR_FORMAT, "%s: the config section (%llu bytes) is not a configuration text", path,
                         (unsigned long long)cfg->size);
    char *saved = strndup(cfg->data, cfg->size);
    if (!saved) return dp_errorf(DP_ERR_NOMEM, "%s: no memory for the configuration", path);
    dp_status rc = check_config(d, info, path, saved);
    free(saved);
    if (rc != DP_OK) return rc;
    const dp_params *p = d->params;
    if (st.layout != dp_params_layout_hash(p))
        return dp_errorf(DP_ERR_FORMAT, "%s: parameter layout differs from this model's (%zu parameters)", path, p->n);
    rc = check_fields(d, path, &st);
    if (rc != DP_OK) return rc;
    d->st = st;
    return DP_OK;
}

/* Rank 0: every section is one this run reads (each once: the reader refuses a tag twice). */
static dp_status check_known(const dp_checkpoint *ck, const char *path, const dp_ck_part *q, int nq)
{
    for (int i = 0; i < ck->n; i++) {
        uint32_t tag = ck->sections[i].tag;
        int known = tag == DP_CK_CONFIG || tag == DP_CK_STATE;
        for (int k = 0; k < nq && !known; k++) known = q[k].tag == tag;
        if (!known)
            return dp_errorf(DP_ERR_FORMAT, "%s: section %d has tag %u, which this run does not read", path, i, tag);
    }
    return DP_OK;
}

/* Rank 0: part q from ck, written into its bytes, or for a per-rank part kept in *all. */
static dp_status restore_part(const dp_driver *d, const dp_checkpoint *ck, const char *path, const dp_ck_part *q,
                              const void **all)
{
    const dp_ck_section *x = dp_checkpoint_find(ck, q->tag);
    uint64_t want = q->per_rank ? (uint64_t)d->size * q->bytes : q->bytes;
    if (!x && !want) return DP_OK; /* an empty per-rank part is not written */
    if (!x) return dp_errorf(DP_ERR_FORMAT, "%s: the %s section is missing", path, q->what);
    if (x->size != want)
        return dp_errorf(DP_ERR_FORMAT, "%s: the %s section has %llu bytes, this run needs %llu", path, q->what,
                         (unsigned long long)x->size, (unsigned long long)want);
    if (q->per_rank) *all = x->data;
    else if (want) memcpy(q->data, x->data, want);
    return DP_OK;
}

/* Rank 0: --resume of a run that has done all its epochs; the error carries its last epoch's figures. */
static dp_status finished(const dp_driver *d, const char *path)
{
    char last[400] = "";
    int has = dp_rundir_last_record(d->o->run.out, "\"kind\":\"epoch\"", last, sizeof last);
    return dp_errorf(DP_ERR_ARG, "%s: this run is complete (%u of %d epochs, step %lld): nothing to resume%s%s; "
                     "raise --epochs to train on, or start over with --overwrite", path, d->st.epoch, d->o->run.epochs,
                     (long long)d->st.step, has ? "; its last epoch in metrics.jsonl: " : "", last);
}

static dp_status resume(const dp_task_ops *ops, void *t, dp_driver *d, const dp_task_info *info)
{
    if (!ops->parts) return dp_errorf(DP_ERR_ARG, "%s has no checkpoints to --resume from", ops->name);
    dp_sync_phase(&d->sync, "loading the checkpoint", 0);
    dp_checkpoint ck;
    memset(&ck, 0, sizeof ck);
    dp_ck_part q[DP_CK_MAX_SECTIONS];
    const void *all[DP_CK_MAX_SECTIONS] = {0};
    int nq = parts(ops, t, d, q);
    dp_status rc = DP_OK;
    if (d->rank == 0) {
        char path[1100];
        rc = read_newest(d, &ck, path, sizeof path);
        if (rc == DP_OK) rc = dp_rundir_set_aside(d->ckpt, path);
        if (rc == DP_OK) rc = check_state(d, info, path, &ck);
        if (rc == DP_OK && (int)d->st.epoch >= d->o->run.epochs) rc = finished(d, path);
        if (rc == DP_OK) rc = check_known(&ck, path, q, nq);
        for (int i = 0; i < nq && rc == DP_OK; i++) rc = restore_part(d, &ck, path, &q[i], &all[i]);
        if (rc == DP_OK) d->saved_step = (long)d->st.step;
    }
    rc = dp_sync_root_status(&d->sync, rc);
    if (rc == DP_OK) rc = dp_sync_bcast(&d->sync, &d->st, sizeof d->st);
    for (int i = 0; i < nq && rc == DP_OK; i++)
        if (!q[i].per_rank) rc = dp_sync_bcast(&d->sync, q[i].data, q[i].bytes);
        else if (q[i].bytes) rc = dp_sync_scatter0(&d->sync, all[i], q[i].bytes, q[i].data);
    if (rc == DP_OK && ops->restored) rc = ops->restored(t, d);
    dp_checkpoint_free(&ck);
    if (rc == DP_OK && !d->o->run.quiet && d->rank == 0)
        fprintf(stderr, "resumed %s at epoch %u, step %lld\n", d->ckpt, d->st.epoch + 1, (long long)d->st.step);
    return rc;
}

/* ------------------------------------------------------------ set-up */

/* Rank 0, at start-up: the run directory must hold a checkpoint being written
 * next to the newest one kept, or the first save would fail hours in. */
static dp_status check_out_space(const dp_driver *d)
{
    const dp_run_opts *o = d->o;
    if (d->rank != 0 || !o->run.out[0]) return DP_OK;
    struct statvfs fs;
    if (statvfs(o->run.out, &fs) != 0) return dp_errorf(DP_ERR_IO, "%s: statvfs: %s", o->run.out, strerror(errno));
    double floats = (double)d->params->n + (double)d->params->nbuf + d->ckpt_floats +
                    (double)d->size * (double)d->sync.state_n;
    double need = 2.0 * (floats * 4.0 + 65536.0), avail = (double)fs.f_bavail * (double)fs.f_frsize;
    if (avail < need)
        return dp_errorf(DP_ERR_IO, "%s: %.1f MiB free, a checkpoint needs about %.1f MiB (the one kept and the one "
                         "being written): free space or choose another --out", o->run.out, avail / 1048576.0,
                         need / 1048576.0);
    if (avail < need / 2.0 * (o->run.keep_checkpoints + 1) && !o->run.quiet)
        fprintf(stderr, "warning: %s: %.1f MiB free holds fewer than the %d checkpoints --keep-checkpoints asks for\n",
                o->run.out, avail / 1048576.0, o->run.keep_checkpoints);
    return DP_OK;
}

static dp_status setup(const dp_task_ops *ops, void *t, dp_driver *d, MPI_Comm comm)
{
    const dp_run_opts *o = d->o;
    openblas_set_num_threads(o->run.threads);
    if (comm != MPI_COMM_NULL) {
        MPI_Comm_rank(comm, &d->rank);
        MPI_Comm_size(comm, &d->size);
    }
    if (o->run.out[0])
        snprintf(d->ckpt, sizeof d->ckpt, "%s/%s", o->run.out, ops->ckpt_name ? ops->ckpt_name : "checkpoint.dpc");
    /* The watchdog before the first file is read (a description, a genotype): from here every wait
     * on other ranks and every file operation is watched, so a rank stuck loading its data, or
     * all of them stuck opening a file, is reported like one stuck in a step */
    dp_watchdog *wd = NULL;
    dp_status rc_wd = comm != MPI_COMM_NULL ? dp_watchdog_create(comm, o->run.watchdog_s, &wd) : DP_OK;
    dp_watchdog_phase(wd, "building the model", 0);
    /* The model first: its layout is part of what the ranks compare, and
     * the comparison must come before anything that could fail on one rank only. */
    dp_task_info info = {.config_text = d->config_text, .config_cap = sizeof d->config_text};
    dp_status rc_build = ops->build(t, d, &info);
    static const dp_params none;
    d->params = rc_build == DP_OK && info.params ? info.params : &none;
    dp_status rc = dp_sync_init(&d->sync, comm, d->params, &info.sync);
    d->sync.wd = wd; /* dp_sync_free frees it */
    if (rc == DP_OK) rc = rc_wd;
    if (rc != DP_OK) return rc;
    /* the same answer on every rank: the flags are agreed below */
    if (o->run.sync_every > 1 && !ops->local_sgd)
        return dp_errorf(DP_ERR_ARG, "--sync-every %ld: %s has no local SGD (train has; use --sync-every 1)",
                         o->run.sync_every, ops->name);
    d->local_sgd = o->run.sync_every > 1 && d->size > 1;
    rc = dp_rank_times_init(&d->times, o->run.rank_times, d->rank, d->size);
    if (rc != DP_OK) return rc;
    dp_fault_context(d->rank, 0);
    /* A rank that failed to build must not leave the others waiting. */
    char what[64];
    snprintf(what, sizeof what, "building the %s model", ops->name);
    rc = dp_sync_all_ok(&d->sync, rc_build, what);
    if (rc != DP_OK) return rc;
    size_t len = strlen(d->config_text);
    snprintf(d->config_text + len, sizeof d->config_text - len, "ranks=%d\nlayout=%016llx\n", d->size,
             (unsigned long long)dp_params_layout_hash(d->params));
    if (o->run.sync_every > 1) { /* only then: the text (and every checkpoint) of a run without it is unchanged */
        len = strlen(d->config_text);
        snprintf(d->config_text + len, sizeof d->config_text - len, "sync_every=%ld\n", o->run.sync_every);
    }
    rc = dp_sync_agree(&d->sync, d->config_text);
    if (rc != DP_OK) return rc;

    dp_sync_phase(&d->sync, "loading the data", 0);
    dp_fault_point("load");
    rc = ops->load(t, d);
    if (rc != DP_OK) return rc;
    dp_sync_phase(&d->sync, "opening the run directory", 0);
    /* locked before anything is written into it; rank 0 alone writes there */
    rc = d->rank == 0 && o->run.out[0]
             ? dp_rundir_open(o->run.out, d->ckpt, o->run.resume, o->run.overwrite, &d->lock_fd)
             : DP_OK;
    if (rc == DP_OK)
        rc = dp_report_open(&d->rep, d->rank == 0 ? o->run.out : NULL, o->run.progress, o->run.quiet || d->rank != 0);
    if (rc == DP_OK && ops->parts) rc = check_out_space(d);
    rc = dp_sync_all_ok(&d->sync, rc, "opening the run directory");
    if (rc != DP_OK) return rc;
    d->st.loss_scale = o->run.loss_scale;
    d->saved_step = -1;
    if (o->run.resume) {
        rc = resume(ops, t, d, &info);
    } else { /* replicas start from rank 0's parameters */
        rc = dp_sync_bcast(&d->sync, d->params->data, d->params->n * sizeof(float));
        if (rc == DP_OK) rc = dp_sync_bcast(&d->sync, d->params->buffers, d->params->nbuf * sizeof(float));
    }
    if (rc != DP_OK) return rc;
    d->first_step = (long)d->st.step;
    return ops->start ? ops->start(t, d) : DP_OK;
}

/* ------------------------------------------------------------ steps */

/* The parameter (or buffer) whose range of the flat buffer holds index i. */
static const char *param_at(const dp_params *p, size_t i)
{
    for (int k = 0; k < p->count; k++)
        if (!p->items[k]->is_buffer && i >= p->items[k]->offset && i < p->items[k]->offset + (size_t)p->items[k]->t.n)
            return p->items[k]->name;
    return "?";
}

/* Error-feedback residuals are kept in scaled units: they follow the scale. */
static void set_loss_scale(dp_driver *d, double scale)
{
    if (d->sync.residual) {
        float f = (float)(scale / d->st.loss_scale);
        for (size_t i = 0; i < d->sync.state_n; i++) /* state is the residual (and DGC's velocity) */
            d->sync.residual[i] = isfinite(d->sync.residual[i]) ? d->sync.residual[i] * f : 0.0f;
    }
    d->st.loss_scale = scale;
    d->st.clean_steps = 0;
}

/* A NaN/Inf loss or gradient, seen alike by every rank (the loss through the
 * statistics allreduce, gradients after the allreduce). stop: an error naming
 * the step and the first non-finite tensor. skip: the update is dropped and the
 * loss scale halved (GradScaler's backoff). */
static dp_status nonfinite_step(const dp_task_ops *ops, dp_driver *d, const char *what, int *skipped)
{
    const dp_run_opts *o = d->o;
    long step = (long)d->st.step + 1;
    if (o->run.on_nonfinite == DP_NONFINITE_STOP)
        return dp_errorf(DP_ERR_NONFINITE, "%s%sstep %ld (epoch %u): %s; %s", o->label, o->label[0] ? ", " : "",
                         step, d->st.epoch + 1, what,
                         ops->nonfinite_hint ? ops->nonfinite_hint : "lower --lr, add --clip, or --on-nonfinite skip");
    if (++d->st.skip_run > MAX_SKIP_RUN)
        return dp_errorf(DP_ERR_NONFINITE, "step %ld (epoch %u): %d steps in a row were not finite (last: %s); giving up",
                         step, d->st.epoch + 1, MAX_SKIP_RUN + 1, what);
    double old = d->st.loss_scale;
    set_loss_scale(d, old > 0x1p-24 ? old * 0.5 : old);
    d->st.skipped++;
    if (d->rank == 0 && !o->run.quiet)
        fprintf(stderr, "step %ld: %s: update skipped, loss scale %g -> %g\n", step, what, old, d->st.loss_scale);
    dp_report_json(&d->rep, "{\"kind\":\"skip\",\"step\":%ld,\"loss_scale\":%g,\"why\":\"%s\"}", step,
                   d->st.loss_scale, what);
    *skipped = 1;
    return DP_OK;
}

/* Local SGD (--sync-every H): the task's step took this rank's own gradient. Nothing waits on the other ranks
 * until a sync step: every H-th and an epoch's last (--stop-after and --checkpoint-every are multiples of H,
 * and a signal is learnt from the statistics summed at a sync, so checkpoints, evaluation and stops always
 * see averaged replicas, and a resumed run syncs where one never stopped does). There the window's
 * statistics are summed and the task's update ends by averaging parameters and optimizer state. A rank
 * whose loss or gradient is not finite drops its own update and the job stops at the sync (hence
 * --on-nonfinite stop only). */
static dp_status local_step(const dp_task_ops *ops, void *t, dp_driver *d, long next, double *stats)
{
    const dp_run_opts *o = d->o;
    const dp_params *p = d->params;
    long step = (long)d->st.step + 1;
    d->sync_now = step % o->run.sync_every == 0 || next >= d->steps; /* --stop-after, --checkpoint-every: multiples */
    int bad = stats[DP_STAT_NONFINITE] > 0 || d->nonfinite[0] ||
              dp_grad_unscale_check(p->grad, p->n, (float)(1.0 / d->st.loss_scale)) < p->n;
    stats[DP_STAT_NONFINITE] = bad;
    for (int i = 0; i < DP_NSTATS; i++) d->win[i] += stats[i];
    dp_status rc = DP_OK;
    if (d->sync_now) {
        memcpy(stats, d->win, sizeof d->win);
        memset(d->win, 0, sizeof d->win);
        rc = dp_sync_sum(&d->sync, stats, DP_NSTATS);
        if (rc == DP_OK && stats[DP_STAT_STOP] > 0 && !stop_signal) rc = agree_stop_signal(d);
        if (rc == DP_OK && stats[DP_STAT_NONFINITE] > 0)
            rc = dp_errorf(DP_ERR_NONFINITE, "%s%sstep %ld (epoch %u): %.0f non-finite local step(s) since the last "
                           "parameter average (--sync-every %ld); %s", o->label, o->label[0] ? ", " : "", step,
                           d->st.epoch + 1, stats[DP_STAT_NONFINITE], o->run.sync_every,
                           ops->nonfinite_hint ? ops->nonfinite_hint : "lower --lr or add --clip");
    } else {
        memset(stats, 0, DP_NSTATS * sizeof *stats); /* counted at the sync */
        if (bad) return DP_OK;
    }
    if (rc != DP_OK) return rc;
    d->st.skip_run = 0;
    rc = ops->update(t, d);
    dp_fault_point("step");
    return rc;
}

/* One optimizer step over positions [pos, *next). */
static dp_status one_step(const dp_task_ops *ops, void *t, dp_driver *d, long *next, double *stats)
{
    const dp_run_opts *o = d->o;
    memset(stats, 0, DP_NSTATS * sizeof *stats);
    d->nonfinite[0] = 0;
    dp_fault_context(d->rank, (long)d->st.step + 1);
    dp_sync_phase(&d->sync, "forward/backward", (long)d->st.step + 1);
    dp_status rc = ops->step(t, d, (long)d->st.pos, next, stats);
    if (rc != DP_OK) return rc;
    stats[DP_STAT_STOP] = stop_requested ? 1 : 0;
    if (d->local_sgd) return local_step(ops, t, d, *next, stats);
    rc = dp_sync_sum(&d->sync, stats, DP_NSTATS);
    if (rc == DP_OK && stats[DP_STAT_STOP] > 0 && !stop_signal) rc = agree_stop_signal(d);
    if (rc != DP_OK) return rc;
    const dp_params *p = d->params;
    size_t n = p->n, bad = n;
    char *why = d->nonfinite;
    if (!why[0] && stats[DP_STAT_NONFINITE] > 0)
        snprintf(why, sizeof d->nonfinite, "the loss is not finite on %.0f rank(s)", stats[DP_STAT_NONFINITE]);
    if (!why[0] && (bad = dp_grad_unscale_check(p->grad, n, (float)(1.0 / d->st.loss_scale))) < n)
        snprintf(why, sizeof d->nonfinite,
                 "non-finite gradient after the allreduce, first in '%s' (element %zu of the flat buffer)",
                 param_at(p, bad), bad);
    if (why[0]) {
        int skipped = 0;
        rc = nonfinite_step(ops, d, why, &skipped);
        if (rc != DP_OK || skipped) return rc;
    }
    d->st.skip_run = 0;
    if (++d->st.clean_steps >= o->run.loss_scale_growth && d->st.loss_scale < o->run.loss_scale) {
        set_loss_scale(d, d->st.loss_scale * 2); /* back toward --loss-scale, never above it */
        if (d->rank == 0 && !o->run.quiet)
            fprintf(stderr, "step %ld: %ld clean steps, loss scale %g -> %g\n", (long)d->st.step + 1,
                    o->run.loss_scale_growth, d->st.loss_scale / 2, d->st.loss_scale);
        dp_report_json(&d->rep, "{\"kind\":\"loss_scale\",\"step\":%ld,\"loss_scale\":%g}", (long)d->st.step + 1,
                       d->st.loss_scale);
    }
    rc = ops->update(t, d);
    dp_fault_point("step");
    return rc;
}

static dp_status stopped(dp_driver *d)
{
    dp_report_end_bar(&d->rep);
    if (!d->o->run.quiet && d->rank == 0)
        fprintf(stderr, "stopped after step %lld: checkpoint %s\n", (long long)d->st.step, d->ckpt);
    d->stopped = 1;
    /* the times of the steps taken, the stopped epoch's part as one epoch */
    dp_status rc = dp_rank_times_flush(&d->times, &d->sync, &d->rep, d->st.epoch, 1);
    if (rc == DP_OK && d->rank == 0) dp_rank_times_print(&d->times, stderr);
    return rc;
}

static double lr_at(const dp_task_ops *ops, void *t, long step) { return ops->lr ? ops->lr(t, step) : 0; }

static dp_status run_epochs(const dp_task_ops *ops, void *t, dp_driver *d)
{
    const dp_run_opts *o = d->o;
    double stats[DP_NSTATS], win[3] = {0, 0, 0};
    d->t_start = dp_now();
    for (; (int)d->st.epoch < o->run.epochs; d->st.epoch++) {
        d->steps = ops->epoch_begin(t, d);
        if (d->st.pos > d->steps)
            return dp_errorf(DP_ERR_FORMAT, "%s: position %lld is past the epoch's %ld steps", d->ckpt,
                             (long long)d->st.pos, d->steps);
        if (d->st.step > (int64_t)o->run.epochs * d->steps) /* a resumed step count no run of these epochs reaches */
            return dp_errorf(DP_ERR_FORMAT, "%s: state field 'step' out of range for this run: %lld, more than the "
                             "run's %lld steps (%d epochs of %ld)", d->ckpt, (long long)d->st.step,
                             (long long)o->run.epochs * d->steps, o->run.epochs, d->steps);
        if (d->st.pos == 0) d->st.ep_loss_sum = 0, d->st.ep_correct = d->st.ep_seen = 0;
        double t_ep = dp_now(), step_s = 0;
        long seen0 = (long)d->st.ep_seen, pos0 = (long)d->st.pos, steps = d->steps;
        int stop_at_end = 0; /* agreed by every rank: from the statistics or --stop-after */
        while (d->st.pos < steps) {
            double t0 = dp_now(), w0 = d->sync.comm_wait_s + d->sync.coll_wait_s;
            long next = steps;
            dp_status rc = one_step(ops, t, d, &next, stats);
            if (rc != DP_OK) return rc;
            double dt = dp_now() - t0, wait = d->sync.comm_wait_s + d->sync.coll_wait_s - w0;
            if (dp_rank_times_record(&d->times, (long)d->st.step + 1, dt - wait, wait) &&
                (rc = dp_rank_times_flush(&d->times, &d->sync, &d->rep, d->st.epoch, 0)) != DP_OK)
                return rc;
            d->st.train_time += dt;
            d->session_train_s += dt;
            step_s += dt;
            d->st.step++;
            d->st.pos = next;
            d->st.ep_loss_sum += stats[DP_STAT_LOSS];
            d->st.ep_correct += (int64_t)stats[DP_STAT_CORRECT];
            d->st.ep_seen += (int64_t)stats[DP_STAT_SEEN];
            d->session_seen += stats[DP_STAT_SEEN];
            double now = dp_now(), sps = (double)((long)d->st.ep_seen - seen0) / (now - t_ep + 1e-9);
            double seen = (double)(d->st.ep_seen ? d->st.ep_seen : 1);
            double eta = (double)(steps - next) * (now - t_ep) / (double)(next - pos0);
            dp_report_progress(&d->rep, now, (int)d->st.epoch + 1, o->run.epochs, next, steps, d->st.ep_loss_sum / seen,
                               (double)d->st.ep_correct / seen, sps, eta);
            for (int i = 0; i < 3; i++) win[i] += stats[i];
            if (o->log_every && d->st.step % o->log_every == 0 && win[2] > 0) {
                /* the mean over the last log_every steps, so curves show the trend, not an epoch average */
                dp_report_json(&d->rep,
                               "{\"kind\":\"step\",\"epoch\":%u,\"step\":%lld,\"loss\":%.6f,\"acc\":%.6f,\"lr\":%.6g,"
                               "\"samples_per_s\":%.1f,\"comm_wait_s\":%.4f}",
                               d->st.epoch + 1, (long long)d->st.step, win[0] / win[2], win[1] / win[2],
                               lr_at(ops, t, (long)d->st.step - 1), sps, d->sync.comm_wait_s);
                win[0] = win[1] = win[2] = 0;
            }
            if (o->run.check_replicas && d->st.step % o->run.check_replicas == 0 && (!d->local_sgd || d->sync_now) &&
                (rc = dp_sync_check_replicas(&d->sync, d->params, (long)d->st.step)) != DP_OK)
                return rc;
            if (ops->after_step && (rc = ops->after_step(t, d)) != DP_OK) return rc;
            /* DP_STAT_STOP counts ranks asked to stop: all ranks see the same sum */
            int stop = stats[DP_STAT_STOP] > 0 || (o->run.stop_after && d->st.step >= o->run.stop_after);
            int periodic = o->run.checkpoint_every && d->st.step % o->run.checkpoint_every == 0;
            if (d->st.pos < steps) {
                if ((stop || periodic) && (rc = save(ops, t, d)) != DP_OK) return rc;
                if (stop) return stopped(d);
            } else {
                stop_at_end = stop; /* finish the epoch's bookkeeping, then stop below */
            }
        }
        dp_report_end_bar(&d->rep);
        dp_status rc = dp_rank_times_flush(&d->times, &d->sync, &d->rep, d->st.epoch, 1);
        if (rc != DP_OK) return rc;
        dp_epoch ep = {d->st.ep_loss_sum, (double)d->st.ep_correct, (double)d->st.ep_seen,
                       (double)(d->st.ep_seen - seen0), t_ep, step_s};
        rc = ops->epoch_end(t, d, &ep);
        if (rc != DP_OK) return rc;
        d->st.pos = 0;
        d->st.epoch++;
        rc = save(ops, t, d);
        d->st.epoch--;
        if (rc != DP_OK) return rc;
        if (d->finish_early) { /* the task's own end (before a stop asked for the same epoch: nothing is left) */
            d->st.epoch++;
            break;
        }
        int last = (int)d->st.epoch + 1 >= o->run.epochs;
        if (!last && (stop_at_end || o->stop_after_epochs == (int)d->st.epoch + 1)) {
            d->st.epoch++;
            return stopped(d);
        }
    }
    if (d->rank == 0) dp_rank_times_print(&d->times, stderr);
    stop_signal = 0; /* a signal during the last step: the run ended all the same */
    return ops->finish ? ops->finish(t, d) : DP_OK;
}

dp_status dp_drive(const dp_task_ops *ops, void *t, const dp_run_opts *o, MPI_Comm comm, dp_driver *d)
{
    memset(d, 0, sizeof *d);
    d->o = o;
    d->comm = comm;
    d->size = 1;
    d->lock_fd = -1;
    stop_requested = 0;
    stop_signal = 0;
    dp_status rc = setup(ops, t, d, comm);
    if (rc == DP_OK) rc = run_epochs(ops, t, d);
    return rc;
}

void dp_drive_free(dp_driver *d)
{
    dp_report_close(&d->rep);
    dp_rank_times_free(&d->times);
    dp_sync_free(&d->sync);
    dp_rundir_unlock(&d->lock_fd);
}
