/* Command-line flags declared once: a declaration (dp_cli_opt) says a flag's name, its placeholder, its help
 * text, how its value is parsed and range-checked; a command binds declarations to the fields of its
 * configuration (dp_cli_bind), and one parser and one help printer work from those bindings, so --help
 * cannot drift from what is parsed. The flags every command shares are declared here, each once; a
 * command's own flags are declared in its file with the same type. */
#ifndef DP_CLI_OPTIONS_H
#define DP_CLI_OPTIONS_H

#include <stddef.h>
#include <stdio.h>

#include "dptrain/status.h"

typedef enum dp_cli_kind {
    DP_CLI_INT,    /* int field, range [lo, hi] */
    DP_CLI_LONG,   /* long field, range [lo, hi] */
    DP_CLI_U64,    /* uint64_t field, range [lo, hi] (hi at most LONG_MAX) */
    DP_CLI_FLOAT,  /* float field (or a double field given the float's value), range [lo, hi], finite */
    DP_CLI_DOUBLE, /* double field, range [lo, hi], finite */
    DP_CLI_STR,    /* char[cap] field */
    DP_CLI_ON,     /* switch: the int field becomes 1 */
    DP_CLI_OFF,    /* switch: the int field becomes 0 */
    DP_CLI_CHOICE, /* the int field gets the value's index in choices */
    DP_CLI_CUSTOM, /* parse(opt, value, field) does it all */
} dp_cli_kind;

typedef struct dp_cli_opt dp_cli_opt;
typedef dp_status (*dp_cli_parse_fn)(const dp_cli_opt *opt, const char *arg, void *field);

struct dp_cli_opt {
    const char *name;            /* "batch" for --batch; "-k" for the short option -k */
    const char *arg;             /* placeholder in --help ("B"); NULL for a switch */
    const char *help;            /* help text; '\n' starts a continuation line */
    dp_cli_kind kind;
    double lo, hi;               /* numeric kinds: the accepted range */
    unsigned long cap;           /* DP_CLI_STR: capacity with the NUL */
    int nonempty;                /* DP_CLI_STR: an empty value is refused */
    const char *const *choices;  /* DP_CLI_CHOICE: NULL-terminated names, index = value */
    dp_cli_parse_fn parse;       /* DP_CLI_CUSTOM */
    int show_default;            /* --help appends "(default V)", V read from the bound field */
};

/* One line of a command's flags: a declaration bound to a field, or (opt == NULL) a group heading. */
typedef struct dp_cli_bind {
    const dp_cli_opt *opt;
    void *field;
    size_t size; /* sizeof the field: checked against the kind */
    const char *heading;
} dp_cli_bind;

#define DP_CLI_BIND(o, f) {&(o), &(f), sizeof(f), NULL}
#define DP_CLI_HEADING(text) {NULL, NULL, 0, (text)}
#define DP_CLI_END {NULL, NULL, 0, NULL}

/* Parses argv[1..] into the bound fields (getopt_long; -h/--help sets *help and stops). Errors name the
 * flag: "--batch: 0 is out of range [1, 65536]", "unknown or incomplete flag '--x' (see dptrain CMD --help)",
 * "unexpected argument 'x'". */
dp_status dp_cli_parse(const char *cmd, int argc, char **argv, const dp_cli_bind *binds, int *help);

/* dp_cli_parse for commands with positional arguments: those are left, in their order, at argv[*first_pos ..
 * argc) (getopt_long moves them behind the flags), for the caller to check. */
dp_status dp_cli_parse_pos(const char *cmd, int argc, char **argv, const dp_cli_bind *binds, int *help, int *first_pos);

/* A number of the flag `flag` ("--batch"), range-checked: for a command's own parse functions. */
dp_status dp_cli_long(const char *flag, const char *s, long lo, long hi, long *out);

/* header, then each heading and bound flag ("  --name ARG" padded, its help, its default), then
 * "  -h, --help", then footer (may be NULL). */
void dp_cli_help(FILE *f, const char *header, const dp_cli_bind *binds, const char *footer);

/* DP_CLI_CUSTOM's parse of a --schedule name into a dp_sched_kind. */
dp_status dp_cli_parse_schedule(const dp_cli_opt *o, const char *arg, void *field);

/* The shared declarations, by group. */
/* data */
extern const dp_cli_opt dp_cli_data, dp_cli_limit, dp_cli_batch, dp_cli_eval_batch;
/* optimisation */
extern const dp_cli_opt dp_cli_epochs, dp_cli_min_lr, dp_cli_lr_power, dp_cli_clip, dp_cli_seed;
/* data-parallel */
extern const dp_cli_opt dp_cli_sync_every, dp_cli_rank_times;
extern const dp_cli_opt dp_cli_sampler, dp_cli_allreduce, dp_cli_allreduce_table, dp_cli_bucket_mb, dp_cli_no_overlap, dp_cli_check_replicas,
    dp_cli_codec, dp_cli_wire_zstd;
/* run */
extern const dp_cli_opt dp_cli_out, dp_cli_resume, dp_cli_overwrite, dp_cli_threads, dp_cli_progress, dp_cli_quiet;
/* faults */
extern const dp_cli_opt dp_cli_watchdog;

#endif
