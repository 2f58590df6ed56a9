/* The parts of `dptrain eval` and `predict` that are alike (cli/trained_cli.h). */
#include "cli/trained_cli.h"
#include "dptrain/fsutil.h"

#include <cblas.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

const dp_cli_opt dp_trained_cli_run = {.name = "run", .arg = "DIR",
                                       .help = "the run directory (`dptrain train --out DIR`)", .kind = DP_CLI_STR,
                                       .cap = 512};
const dp_cli_opt dp_trained_cli_data = {.name = "data", .arg = "DIR",
                                        .help = "shard set (default: the one the run trained on)", .kind = DP_CLI_STR,
                                        .cap = 512};

const dp_cli_opt dp_trained_cli_split = {.name = "split", .arg = "NAME", .help = "the split of the data set", .kind = DP_CLI_STR,
                                         .cap = 16, .show_default = 1};
const dp_cli_opt dp_trained_cli_limit = {.name = "limit", .arg = "N", .help = "its first N images only, 0 = all",
                                         .kind = DP_CLI_LONG, .lo = 0, .hi = 0x1p40, .show_default = 1};

void dp_trained_cli_defaults(dp_trained_cli *c)
{
    memset(c, 0, sizeof *c);
    c->eval_batch = 500;
    c->threads = 1;
}

dp_status dp_trained_cli_check(const dp_trained_cli *c)
{
    DP_CHECK(c->run[0], "--run DIR is required (the --out DIR of a `dptrain train` run)");
    return DP_OK;
}

static dp_status open_here(dp_trained_cli *c, int data_needed, dp_trained *t)
{
    dp_status rc = dp_trained_load(c->run, t);
    if (rc != DP_OK || !data_needed) return rc;
    if (!c->data[0]) snprintf(c->data, sizeof c->data, "%s", t->data);
    if (!c->data[0]) return dp_errorf(DP_ERR_ARG, "%s: the checkpoint does not name its data set: give --data DIR", c->run);
    return dp_trained_check_data(t, c->data);
}

dp_status dp_trained_cli_open(dp_trained_cli *c, MPI_Comm comm, int data_needed, dp_sync *sync, dp_trained *t)
{
    static const dp_params none;
    dp_sync_opts so = {.algo = DP_ALLREDUCE_RING, .bucket_bytes = 1u << 22, .overlap = 0};
    openblas_set_num_threads(c->threads);
    memset(t, 0, sizeof *t);
    dp_status rc = dp_sync_init(sync, comm, &none, &so);
    if (rc != DP_OK) return rc;
    rc = sync->rank == 0 ? open_here(c, data_needed, t) : DP_OK;
    dp_status mine = rc;
    rc = dp_sync_root_status(sync, rc);
    if (rc != DP_OK) /* every rank stops here; rank 0 says why */
        return sync->rank == 0 ? dp_errorf(mine, "%s", dp_errmsg()) : dp_errorf(DP_ERR_MPI, "rank 0: %s", dp_errmsg());
    if (sync->rank != 0) rc = open_here(c, data_needed, t);
    return dp_sync_all_ok(sync, rc, "loading the run");
}

/* gnuplot's path on PATH, or 0 */
static int have_gnuplot(void)
{
    const char *path = getenv("PATH");
    char dir[4096];
    for (const char *p = path ? path : ""; *p;) {
        size_t n = strcspn(p, ":");
        snprintf(dir, sizeof dir, "%.*s/gnuplot", (int)n, p);
        if (n && access(dir, X_OK) == 0) return 1;
        p += n + (p[n] == ':');
    }
    return 0;
}

/* a gnuplot string literal: double quotes and backslashes do not survive in one */
static void gp_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) fputc(*s == '"' || *s == '\\' ? '\'' : *s, f);
    fputc('"', f);
}

dp_status dp_confusion_png(const char *png, const double *cm, int nc, char (*names)[DP_CLASS_NAME_MAX],
                           const char *title)
{
    char dat[600];
    snprintf(dat, sizeof dat, "%s.dat", png);
    FILE *f = NULL;
    dp_status rc = dp_open_output(dat, 0, &f); /* never written through a link planted there */
    if (rc != DP_OK) return rc;
    fprintf(f, "# confusion matrix of %s: predicted true count share_of_true_class\n", title);
    for (int k = 0; k < nc; k++) {
        double n = 0;
        for (int j = 0; j < nc; j++) n += cm[(size_t)k * nc + j];
        for (int j = 0; j < nc; j++)
            fprintf(f, "%d %d %.0f %.6f\n", j, k, cm[(size_t)k * nc + j], n > 0 ? cm[(size_t)k * nc + j] / n : 0.0);
        fprintf(f, "\n");
    }
    if (fclose(f) != 0) return dp_errorf(DP_ERR_IO, "%s: %s", dat, strerror(errno));
    if (!have_gnuplot()) {
        fprintf(stderr, "warning: gnuplot is not installed (apt-get install gnuplot-nox): no %s; the matrix is in %s\n",
                png, dat);
        return DP_OK;
    }
    FILE *g = popen("gnuplot", "w");
    if (!g) return dp_errorf(DP_ERR_IO, "gnuplot: %s", strerror(errno));
    int side = 240 + 48 * nc > 2400 ? 2400 : 240 + 48 * nc;
    fprintf(g, "set terminal pngcairo size %d,%d noenhanced\nset output ", side + 120, side);
    gp_string(g, png);
    fprintf(g, "\nset title ");
    gp_string(g, title);
    fprintf(g, "\nset xlabel \"predicted class\"\nset ylabel \"true class\"\nset cblabel \"share of the true class\"\n"
               "set xrange [-0.5:%d.5]\nset yrange [%d.5:-0.5]\nset cbrange [0:1]\nset size ratio -1\n"
               "set palette defined (0 \"white\", 1 \"#08306b\")\nset xtics rotate by 45 right (",
            nc - 1, nc - 1);
    for (int k = 0; k < nc; k++) {
        fprintf(g, "%s", k ? ", " : "");
        gp_string(g, names[k]);
        fprintf(g, " %d", k);
    }
    fprintf(g, ")\nset ytics (");
    for (int k = 0; k < nc; k++) {
        fprintf(g, "%s", k ? ", " : "");
        gp_string(g, names[k]);
        fprintf(g, " %d", k);
    }
    fprintf(g, ")\nplot ");
    gp_string(g, dat);
    fprintf(g, " using 1:2:4 with image notitle");
    if (nc <= 30) { /* counts written on the cells while they stay legible */
        fprintf(g, ", ");
        gp_string(g, dat);
        fprintf(g, " using 1:2:(sprintf(\"%%d\", $3)):($4 > 0.5 ? 0xffffff : 0) with labels tc rgb variable notitle");
    }
    fprintf(g, "\n");
    int st = pclose(g);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return dp_errorf(DP_ERR_IO, "%s: gnuplot failed (exit status %d)", png, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    return DP_OK;
}
