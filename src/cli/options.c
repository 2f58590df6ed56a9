/* The one flag parser, the one help printer, and the declarations of the flags commands share (options.h). */
#include "cli/options.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/compress.h"
#include "dptrain/optim.h"
#include "dptrain/comm.h"
#include "dptrain/task.h"
#include "dptrain/text.h"

#define HELP_COL 24 /* the column where help texts start */

/* ------------------------------------------------------------ shared declarations */

static const char *const sampler_names[] = {"shard", "global", NULL};  /* dp_sampler_kind */
static const char *const allreduce_names[] = {"ring", "mpi", "hier", "hier-rd", "rd", "auto", NULL}; /* dp_allreduce_algo order */
static const char *const progress_names[] = {"plain", "bar", NULL};    /* 0 plain lines, 1 bar (-1 auto) */

dp_status dp_cli_parse_schedule(const dp_cli_opt *o, const char *arg, void *field)
{
    (void)o;
    return dp_schedule_kind_parse(arg, field);
}

static dp_status parse_codec(const dp_cli_opt *o, const char *arg, void *field)
{
    (void)o;
    return dp_compress_parse(arg, field);
}

/* data */
const dp_cli_opt dp_cli_data = {.name = "data", .arg = "DIR", .help = "the data set: a directory as dptrain shard or dsi-prepare writes it",
                                .kind = DP_CLI_STR,
                                .cap = 512, .show_default = 1};
const dp_cli_opt dp_cli_limit = {.name = "limit", .arg = "N", .help = "train on the first N training images only, 0 = all",
                                 .kind = DP_CLI_LONG, .lo = 0, .hi = 0x1p40, .show_default = 1};
const dp_cli_opt dp_cli_batch = {.name = "batch", .arg = "B", .help = "batch size per rank", .kind = DP_CLI_INT, .lo = 1,
                                 .hi = DP_BATCH_MAX, .show_default = 1};
const dp_cli_opt dp_cli_eval_batch = {.name = "eval-batch", .arg = "B", .help = "evaluation batch size",
                                      .kind = DP_CLI_INT, .lo = 1, .hi = DP_BATCH_MAX, .show_default = 1};
/* optimisation */
const dp_cli_opt dp_cli_epochs = {.name = "epochs", .arg = "N", .help = "passes over the training images",
                                  .kind = DP_CLI_INT, .lo = 1, .hi = 100000, .show_default = 1};
const dp_cli_opt dp_cli_min_lr = {.name = "min-lr", .arg = "LR", .help = "floor of the cosine and cospow schedules",
                                  .kind = DP_CLI_FLOAT, .lo = 0, .hi = 100, .show_default = 1};
const dp_cli_opt dp_cli_lr_power = {.name = "lr-power", .arg = "P",
                                    .help = "cospow: the exponent order; larger falls faster early (1 is cosine)",
                                    .kind = DP_CLI_FLOAT, .lo = 1, .hi = 1e6, .show_default = 1};
const dp_cli_opt dp_cli_clip = {.name = "clip", .arg = "NORM", .help = "clip gradients to this global norm, 0 = off",
                                .kind = DP_CLI_FLOAT, .lo = 0, .hi = 1e9, .show_default = 1};
const dp_cli_opt dp_cli_seed = {.name = "seed", .arg = "S", .help = "seed of every random stream", .kind = DP_CLI_U64,
                                .lo = 0, .hi = 0x1p63, .show_default = 1};
/* data-parallel */
const dp_cli_opt dp_cli_sampler = {
    .name = "sampler", .arg = "NAME",
    .help = "shard: each rank trains on its own shards;\n"
            "global: every rank reads the whole split and takes its slice of each\n"
            "global batch, so P ranks x batch B equal 1 rank x batch P*B exactly",
    .kind = DP_CLI_CHOICE, .choices = sampler_names, .show_default = 1};
const dp_cli_opt dp_cli_allreduce = {.name = "allreduce", .arg = "ring|mpi|hier|hier-rd|rd|auto",
                                     .help = "ring (ours) | mpi (MPI_Allreduce, the reference) | hier (ring in\n"
                                             "each node, ring across nodes) | hier-rd (recursive halving/doubling\n"
                                             "across nodes) | rd (flat halving/doubling) | auto (per bucket size,\n"
                                             "from --allreduce-table); nodes from MPI_Comm_split_type, or\n"
                                             "DP_RANKS_PER_NODE=R simulates nodes of R ranks",
                                     .kind = DP_CLI_CHOICE, .choices = allreduce_names, .show_default = 1};
const dp_cli_opt dp_cli_allreduce_table = {
    .name = "allreduce-table", .arg = "FILE",
    .help = "auto's decision table (dptrain tune-allreduce writes it); default:\n"
            "$DP_ALLREDUCE_TABLE, else a built-in rule",
    .kind = DP_CLI_STR, .cap = 512, .nonempty = 1};
const dp_cli_opt dp_cli_bucket_mb = {.name = "bucket-mb", .arg = "MB", .help = "gradient bucket size",
                                     .kind = DP_CLI_FLOAT, .lo = 1e-6, .hi = 4096, .show_default = 1};
const dp_cli_opt dp_cli_no_overlap = {.name = "no-overlap", .help = "allreduce after backward instead of during it",
                                      .kind = DP_CLI_OFF};
const dp_cli_opt dp_cli_check_replicas = {.name = "check-replicas", .arg = "N",
                                          .help = "compare a hash of the parameters across ranks every N steps, 0 = never",
                                          .kind = DP_CLI_LONG, .lo = 0, .hi = 0x1p40, .show_default = 1};
const dp_cli_opt dp_cli_codec = {
    .name = "codec", .arg = "NAME",
    .help = "gradient compression: none (default) | fp16 | bf16 | int8 (ring codecs)\n"
            "| topk:F (largest fraction F of each bucket) | powersgd:R (rank-R factors);\n"
            "int8, topk and powersgd keep error feedback, saved in the checkpoint",
    .kind = DP_CLI_CUSTOM, .parse = parse_codec};
const dp_cli_opt dp_cli_wire_zstd = {.name = "wire-zstd", .arg = "L",
                                     .help = "byte-shuffle + zstd level L on every message, 0 = off", .kind = DP_CLI_INT,
                                     .lo = 0, .hi = DP_CODEC_ZSTD_MAX, .show_default = 1};
static const char *const rank_times_names[] = {"off", "epoch", "step", NULL}; /* DP_RANK_TIMES_* */
const dp_cli_opt dp_cli_sync_every = {
    .name = "sync-every", .arg = "H",
    .help = "local SGD: each rank steps on its own gradients and the ranks average\n"
            "parameters and optimizer state every H steps (and at each epoch's end);\n"
            "1 = average gradients every step",
    .kind = DP_CLI_LONG, .lo = 1, .hi = 1000000, .show_default = 1};
const dp_cli_opt dp_cli_rank_times = {
    .name = "rank-times", .arg = "MODE",
    .help = "off | epoch | step: each rank's compute and wait per step, a summary of\n"
            "the slowest ranks at the end, per-epoch records in metrics.jsonl (step:\n"
            "one per step too)",
    .kind = DP_CLI_CHOICE, .choices = rank_times_names, .show_default = 1};
/* run */
const dp_cli_opt dp_cli_out = {.name = "out", .arg = "DIR",
                               .help = "run directory (created if missing; none: nothing saved); one run at a\n"
                                       "time (DIR/lock names its host and pid), and one holding a run's\n"
                                       "checkpoints or metrics needs --resume or --overwrite",
                               .kind = DP_CLI_STR, .cap = 512, .nonempty = 1};
const dp_cli_opt dp_cli_resume = {.name = "resume", .help = "continue the run in --out from its checkpoint\n"
                                                            "(the same flags and number of ranks)",
                                  .kind = DP_CLI_ON};
const dp_cli_opt dp_cli_overwrite = {.name = "overwrite",
                                     .help = "start over in an --out holding a run: its checkpoints and\n"
                                             "metrics.jsonl are removed",
                                     .kind = DP_CLI_ON};
const dp_cli_opt dp_cli_threads = {.name = "threads", .arg = "N", .help = "OpenBLAS threads per rank",
                                   .kind = DP_CLI_INT, .lo = 1, .hi = DP_THREADS_MAX, .show_default = 1};
const dp_cli_opt dp_cli_progress = {.name = "progress", .arg = "bar|plain",
                                    .help = "progress display (default: bar on a terminal)", .kind = DP_CLI_CHOICE,
                                    .choices = progress_names};
const dp_cli_opt dp_cli_quiet = {.name = "quiet", .help = "no progress output", .kind = DP_CLI_ON};
/* faults */
const dp_cli_opt dp_cli_watchdog = {
    .name = "watchdog", .arg = "SECONDS",
    .help = "a collective without progress for this long: print what every rank is doing\n"
            "and abort the job, 0 = off",
    .kind = DP_CLI_DOUBLE, .lo = 0, .hi = 86400, .show_default = 1};

/* ------------------------------------------------------------ parser */

static long to_long(double d) { return d >= 0x1p63 ? LONG_MAX : d <= -0x1p63 ? LONG_MIN : (long)d; }

/* strtol and strtod skip leading white space but stop at trailing: " 7" and "7 " are refused alike */
static int padded(const char *s) { return isspace((unsigned char)s[0]) != 0; }

dp_status dp_cli_long(const char *flag, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || padded(s))
        return dp_errorf(DP_ERR_ARG, "%s: '%s' is not an integer", flag, DP_ESC(s));
    if (v < lo || v > hi) return dp_errorf(DP_ERR_ARG, "%s: %ld is out of range [%ld, %ld]", flag, v, lo, hi);
    *out = v;
    return DP_OK;
}

static dp_status parse_double(const char *flag, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || padded(s))
        return dp_errorf(DP_ERR_ARG, "%s: '%s' is not a number", flag, DP_ESC(s));
    if (v < lo || v > hi) return dp_errorf(DP_ERR_ARG, "%s: %g is out of range [%g, %g]", flag, v, lo, hi);
    *out = v;
    return DP_OK;
}

/* "--name", or a short option's "-k" as it is */
static const char *flag_name(const dp_cli_opt *o, char *buf, size_t n)
{
    snprintf(buf, n, "%s%s", o->name[0] == '-' ? "" : "--", o->name);
    return buf;
}

/* the field's size fits the kind (a binding to the wrong field is a programming error, caught at once) */
static int size_ok(const dp_cli_bind *b)
{
    switch (b->opt->kind) {
    case DP_CLI_INT: case DP_CLI_ON: case DP_CLI_OFF: case DP_CLI_CHOICE: return b->size == sizeof(int);
    case DP_CLI_LONG: return b->size == sizeof(long);
    case DP_CLI_U64: return b->size == sizeof(uint64_t);
    case DP_CLI_FLOAT: return b->size == sizeof(float) || b->size == sizeof(double);
    case DP_CLI_DOUBLE: return b->size == sizeof(double);
    case DP_CLI_STR: return b->size >= b->opt->cap;
    case DP_CLI_CUSTOM: return b->opt->parse != NULL;
    }
    return 0;
}

static dp_status choice(const char *flag, const char *s, const char *const *names, int *out)
{
    for (int i = 0; names[i]; i++)
        if (!strcmp(s, names[i])) {
            *out = i;
            return DP_OK;
        }
    char list[256] = "";
    for (int i = 0; names[i]; i++) {
        size_t n = strlen(list);
        snprintf(list + n, sizeof list - n, "%s%s", i == 0 ? "" : names[i + 1] ? ", " : " or ", names[i]);
    }
    return dp_errorf(DP_ERR_ARG, "%s: '%s' is not %s", flag, s, list);
}

static dp_status parse_one(const dp_cli_bind *b, const char *a)
{
    const dp_cli_opt *o = b->opt;
    char flag[80];
    flag_name(o, flag, sizeof flag);
    dp_status rc = DP_OK;
    int i = 0;
    long l = 0;
    double d = 0;
    float f = 0;
    switch (o->kind) {
    case DP_CLI_INT:
        rc = dp_cli_long(flag, a, to_long(o->lo), to_long(o->hi), &l);
        i = (int)l;
        if (rc == DP_OK) memcpy(b->field, &i, sizeof i);
        break;
    case DP_CLI_LONG:
        rc = dp_cli_long(flag, a, to_long(o->lo), to_long(o->hi), &l);
        if (rc == DP_OK) memcpy(b->field, &l, sizeof l);
        break;
    case DP_CLI_U64:
        rc = dp_cli_long(flag, a, to_long(o->lo), to_long(o->hi), &l);
        if (rc == DP_OK) {
            uint64_t u = (uint64_t)l;
            memcpy(b->field, &u, sizeof u);
        }
        break;
    case DP_CLI_FLOAT:
        rc = parse_double(flag, a, o->lo, o->hi, &d);
        f = (float)d;
        d = f; /* a double field holds the float's value, as these flags always read a float */
        if (rc == DP_OK) memcpy(b->field, b->size == sizeof f ? (void *)&f : (void *)&d, b->size);
        break;
    case DP_CLI_DOUBLE:
        rc = parse_double(flag, a, o->lo, o->hi, &d);
        if (rc == DP_OK) memcpy(b->field, &d, sizeof d);
        break;
    case DP_CLI_STR:
        if (strlen(a) >= o->cap) rc = dp_errorf(DP_ERR_ARG, "%s: value longer than %lu characters", flag, o->cap - 1);
        else if (o->nonempty && !a[0]) rc = dp_errorf(DP_ERR_ARG, "%s: an empty value (leave the flag out instead)", flag);
        else memcpy(b->field, a, strlen(a) + 1);
        break;
    case DP_CLI_ON:
    case DP_CLI_OFF:
        i = o->kind == DP_CLI_ON;
        memcpy(b->field, &i, sizeof i);
        break;
    case DP_CLI_CHOICE:
        rc = choice(flag, a, o->choices, &i);
        if (rc == DP_OK) memcpy(b->field, &i, sizeof i);
        break;
    case DP_CLI_CUSTOM: rc = o->parse(o, a, b->field); break;
    }
    return rc;
}

/* The parser; first_pos NULL: an argument that is not a flag is an error, else its index (after getopt_long has
 * moved such arguments behind the flags, in their order) lands in *first_pos. */
static dp_status parse(const char *cmd, int argc, char **argv, const dp_cli_bind *binds, int *help, int *first_pos)
{
    int n = 0;
    for (const dp_cli_bind *b = binds; b->opt || b->heading; b++) {
        if (!b->opt) continue;
        if (!size_ok(b)) return dp_errorf(DP_ERR_ARG, "internal: %s is bound to a field of the wrong size", b->opt->name);
        n++;
    }
    struct option *opts = calloc((size_t)n + 2, sizeof *opts);
    const dp_cli_bind **which = calloc((size_t)n + 1, sizeof *which);
    if (!opts || !which) {
        free(opts);
        free(which);
        return dp_errorf(DP_ERR_NOMEM, "flags: out of memory");
    }
    n = 0;
    int nlong = 0;
    char shorts[32] = "h"; /* short options (name "-k"): getopt returns the letter */
    size_t ns = 1;
    for (const dp_cli_bind *b = binds; b->opt || b->heading; b++) {
        if (!b->opt) continue;
        if (b->opt->name[0] == '-' && ns + 3 <= sizeof shorts) {
            shorts[ns++] = b->opt->name[1];
            if (b->opt->arg) shorts[ns++] = ':';
            shorts[ns] = '\0';
        } else {
            opts[nlong++] = (struct option){b->opt->name, b->opt->arg ? required_argument : no_argument, NULL, 256 + n};
        }
        which[n++] = b;
    }
    opts[nlong] = (struct option){"help", no_argument, NULL, 'h'};
    dp_status rc = DP_OK;
    int ch;
    optind = first_pos ? 0 : 1; /* 0: a full restart, the permutation state included */
    opterr = 0;
    while (rc == DP_OK && (ch = getopt_long(argc, argv, shorts, opts, NULL)) != -1) {
        if (ch == 'h') {
            *help = 1;
            break;
        }
        int k = ch >= 256 ? ch - 256 : -1;
        for (int s = 0; k < 0 && s < n; s++)
            if (which[s]->opt->name[0] == '-' && which[s]->opt->name[1] == ch) k = s;
        if (k >= 0 && k < n) rc = parse_one(which[k], optarg);
        else
            rc = dp_errorf(DP_ERR_ARG, "unknown or incomplete flag '%s' (see dptrain %s --help)", argv[optind - 1], cmd);
    }
    free(opts);
    free(which);
    if (first_pos) *first_pos = optind;
    else if (rc == DP_OK && !*help && optind < argc) rc = dp_errorf(DP_ERR_ARG, "unexpected argument '%s'", argv[optind]);
    return rc;
}

dp_status dp_cli_parse(const char *cmd, int argc, char **argv, const dp_cli_bind *binds, int *help)
{
    return parse(cmd, argc, argv, binds, help, NULL);
}

dp_status dp_cli_parse_pos(const char *cmd, int argc, char **argv, const dp_cli_bind *binds, int *help, int *first_pos)
{
    *first_pos = argc;
    return parse(cmd, argc, argv, binds, help, first_pos);
}

/* ------------------------------------------------------------ help */

/* " (default V)" from the field's value now; nothing for an empty string or a value outside the choices */
static void print_default(FILE *f, const dp_cli_bind *b)
{
    const dp_cli_opt *o = b->opt;
    int i;
    long l;
    uint64_t u;
    float x;
    double d;
    switch (o->kind) {
    case DP_CLI_INT: memcpy(&i, b->field, sizeof i), fprintf(f, " (default %d)", i); break;
    case DP_CLI_LONG: memcpy(&l, b->field, sizeof l), fprintf(f, " (default %ld)", l); break;
    case DP_CLI_U64: memcpy(&u, b->field, sizeof u), fprintf(f, " (default %llu)", (unsigned long long)u); break;
    case DP_CLI_FLOAT:
        if (b->size == sizeof x) {
            memcpy(&x, b->field, sizeof x);
            d = x;
        } else {
            memcpy(&d, b->field, sizeof d);
        }
        fprintf(f, " (default %g)", d);
        break;
    case DP_CLI_DOUBLE: memcpy(&d, b->field, sizeof d), fprintf(f, " (default %g)", d); break;
    case DP_CLI_STR:
        if (((const char *)b->field)[0]) fprintf(f, " (default %s)", (const char *)b->field);
        break;
    case DP_CLI_CHOICE: {
        memcpy(&i, b->field, sizeof i);
        int k = 0;
        while (o->choices[k]) k++;
        if (i >= 0 && i < k) fprintf(f, " (default %s)", o->choices[i]);
        break;
    }
    default: break;
    }
}

static void print_flag(FILE *f, const char *lhs, const char *help)
{
    int w = fprintf(f, "  %s", lhs);
    if (!help || !*help) return;
    fprintf(f, "%*s", w < HELP_COL ? HELP_COL - w : 1, "");
    for (const char *p = help; *p; p++) {
        fputc(*p, f);
        if (*p == '\n') fprintf(f, "%*s", HELP_COL, "");
    }
}

void dp_cli_help(FILE *f, const char *header, const dp_cli_bind *binds, const char *footer)
{
    if (header) fputs(header, f);
    for (const dp_cli_bind *b = binds; b->opt || b->heading; b++) {
        if (!b->opt) {
            fprintf(f, "%s\n", b->heading);
            continue;
        }
        char lhs[128], flag[80];
        snprintf(lhs, sizeof lhs, "%s%s%s", flag_name(b->opt, flag, sizeof flag), b->opt->arg ? " " : "",
                 b->opt->arg ? b->opt->arg : "");
        print_flag(f, lhs, b->opt->help);
        if (b->opt->show_default) print_default(f, b);
        fputc('\n', f);
    }
    print_flag(f, "-h, --help", "this text");
    fputc('\n', f);
    if (footer) fputs(footer, f);
}
