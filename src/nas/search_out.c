/* What a search leaves behind each epoch: the mixing weights (alpha.csv), the
 * genotype (genotype_epochN.json, genotype.json), and at the end pictures of
 * the cells. Rank 0 writes; every rank derives. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "dptrain/fsutil.h"
#include "nas/search_run.h"
#include "nas/strategy.h"

void nas_host_weights(const srch *s, float *w)
{
    const float *a = s->sn->alpha.data;
    int n = s->nops;
    for (int r = 0; r < s->rows; r++)
        s->strat->host_row(a + (size_t)r * (size_t)n, s->mask + (size_t)r * (size_t)n, s->temp, n,
                           w + (size_t)r * (size_t)n);
}

dp_status nas_derive(const srch *s, dp_genotype *g)
{
    float w[NAS_MAX_ROWS * DP_NAS_NUM_OPS];
    nas_host_weights(s, w);
    /* PC-DARTS: edges ranked by softmax(beta) x softmax(alpha); the betas follow the alphas in the registry */
    const float *beta = s->sn->betas[0] ? s->sn->betas[0]->data : NULL;
    return dp_nas_derive_types(w, beta, s->sn->ntypes, s->sn->cfg.per_layer, s->sn->cfg.ops, s->nops, g);
}

int nas_chosen(const srch *s, const dp_genotype *g, int t, int j)
{
    const int *op = dp_genotype_cops(g, t), *in = dp_genotype_cins(g, t);
    for (int k = 0; k < s->nops; k++)
        if (s->sn->cfg.ops[k] == op[j]) return (t * DP_NAS_EDGES + dp_nas_edge(j / 2, in[j])) * s->nops + k;
    return -1;
}

double nas_genotype_mflops(const srch *s, const dp_genotype *g)
{
    double f = 0;
    for (int t = 0; t < dp_genotype_cells(g); t++)
        for (int j = 0; j < 2 * DP_NAS_NODES; j++) {
            int i = nas_chosen(s, g, t, j);
            if (i >= 0) f += s->flops[i];
        }
    return f / 1e6 + s->fixed_mflops;
}

dp_status nas_csv_open(const srch *s, const char *name, FILE **f)
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s", s->cfg->run.out, name);
    return dp_open_output(path, s->cfg->run.resume, f); /* a resumed search appends to the rows it wrote */
}

dp_status nas_outputs_open(srch *s)
{
    if (!s->cfg->run.out[0]) return DP_OK;
    dp_status rc = nas_csv_open(s, "alpha.csv", &s->alpha_csv);
    if (rc != DP_OK) return rc;
    if (!s->cfg->run.resume) {
        fprintf(s->alpha_csv, "epoch,cell,edge");
        for (int k = 0; k < s->nops; k++) fprintf(s->alpha_csv, ",%s", dp_nas_op_name(s->sn->cfg.ops[k]));
        fprintf(s->alpha_csv, "\n");
    }
    return s->strat->open_outputs ? s->strat->open_outputs(s) : DP_OK;
}

void nas_outputs_close(srch *s)
{
    if (s->alpha_csv) fclose(s->alpha_csv);
    if (s->gold_csv) fclose(s->gold_csv);
    s->alpha_csv = s->gold_csv = NULL;
}

dp_status nas_epoch_outputs(srch *s, int epoch, dp_genotype *g, int *skips)
{
    dp_status rc = nas_derive(s, g);
    if (rc != DP_OK) return rc;
    *skips = dp_genotype_skips(g);
    if (s->d->rank != 0 || !s->cfg->run.out[0]) return DP_OK;
    float w[NAS_MAX_ROWS * DP_NAS_NUM_OPS];
    nas_host_weights(s, w);
    for (int r = 0; r < s->rows; r++) {
        const int t = r / DP_NAS_EDGES;
        if (s->sn->cfg.per_layer) fprintf(s->alpha_csv, "%d,cell%d,%d", epoch + 1, t, r % DP_NAS_EDGES);
        else fprintf(s->alpha_csv, "%d,%s,%d", epoch + 1, t ? "reduce" : "normal", r % DP_NAS_EDGES);
        for (int k = 0; k < s->nops; k++) fprintf(s->alpha_csv, ",%.6f", w[r * s->nops + k]);
        fprintf(s->alpha_csv, "\n");
    }
    fflush(s->alpha_csv);
    char path[700];
    snprintf(path, sizeof path, "%s/genotype_epoch%d.json", s->cfg->run.out, epoch + 1);
    rc = dp_genotype_save(g, path);
    snprintf(path, sizeof path, "%s/genotype.json", s->cfg->run.out);
    if (rc == DP_OK) rc = dp_genotype_save(g, path);
    return rc;
}

void nas_draw_cells(srch *s, const dp_genotype *g)
{
    if (!s->cfg->run.out[0]) return;
    static const char *names[2] = {"normal", "reduction"};
    for (int t = 0; t < dp_genotype_cells(g); t++) {
        char dot[700], png[700], cmd[1600], name[32];
        if (g->layers > 0) snprintf(name, sizeof name, "cell%d_%s", t, names[dp_genotype_cell_reduces(g, t)]);
        else snprintf(name, sizeof name, "%s", names[t]);
        snprintf(dot, sizeof dot, "%s/%s.dot", s->cfg->run.out, name);
        snprintf(png, sizeof png, "%s/%s.png", s->cfg->run.out, name);
        if (dp_genotype_write_dot(g, t, dot) != DP_OK) {
            fprintf(stderr, "warning: %s\n", dp_errmsg());
            continue;
        }
        struct stat ps;
        if (lstat(png, &ps) == 0 && !S_ISREG(ps.st_mode)) { /* dot -o would write through a link */
            fprintf(stderr, "warning: %s: not a regular file: no picture drawn over it\n", png);
            continue;
        }
        /* graphviz is optional: without it the .dot files are the picture */
        snprintf(cmd, sizeof cmd, "command -v dot >/dev/null 2>&1 && dot -Tpng '%s' -o '%s'", dot, png);
        int st = system(cmd);
        if (!s->cfg->run.quiet)
            fprintf(stderr, "%s cell: %s%s\n", name, st == 0 ? png : dot,
                    st == 0 ? "" : " (install graphviz for a PNG)");
    }
}

void nas_retrain_figures(const srch *s, const dp_genotype *g, double *params, double *mflops)
{
    dp_model *m = NULL;
    *params = *mflops = -1;
    if (dp_darts_net_build(g, s->cfg->retrain_layers, s->cfg->retrain_channels, 0.0f, &s->net.in, &m) != DP_OK) return;
    *params = (double)m->params.n;
    *mflops = m->flops_per_sample / 1e6;
    dp_model_free(m);
}

int nas_param_free(const dp_genotype *g)
{
    return dp_genotype_normal_most(g, 1u << DP_NAS_MAX_POOL_3X3 | 1u << DP_NAS_AVG_POOL_3X3 | 1u << DP_NAS_SKIP_CONNECT);
}

/* alpha.csv's rows (epoch,cell,edge,w...) as the mean weight of each op over the edges of the normal and of
 * the reduction cells per epoch (cellN: layer N of `layers`), one .dat file each; returns the number of op
 * columns, 0 when the file does not read as alpha.csv */
static int alpha_means(const char *csv, int layers, FILE *dat[2])
{
    FILE *f = fopen(csv, "r");
    if (!f) return 0;
    char line[2048];
    int nops = 0;
    if (fgets(line, sizeof line, f) && !strncmp(line, "epoch,cell,edge,", 16)) {
        fprintf(dat[0], "epoch");
        fprintf(dat[1], "epoch");
        for (char *tok = strtok(line + 16, ",\n"); tok && nops < DP_NAS_NUM_OPS; tok = strtok(NULL, ",\n"), nops++)
            fprintf(dat[0], " %s", tok), fprintf(dat[1], " %s", tok);
        fprintf(dat[0], "\n"), fprintf(dat[1], "\n");
    }
    double sum[2][DP_NAS_NUM_OPS] = {{0}};
    int cur = -1, rows[2] = {0, 0};
    for (int more = nops > 0; more;) {
        int epoch = -1, edge = 0, off = 0, t = 0;
        char cell[16];
        more = fgets(line, sizeof line, f) != NULL;
        if (more && sscanf(line, "%d,%15[a-z0-9],%d,%n", &epoch, cell, &edge, &off) < 3) continue;
        t = more && (!strcmp(cell, "reduce") ||
                     (!strncmp(cell, "cell", 4) && dp_nas_layer_reduces(atoi(cell + 4), layers)));
        if (epoch != cur && cur >= 0) { /* the previous epoch is complete */
            for (int c = 0; c < 2; c++) {
                if (!rows[c]) continue;
                fprintf(dat[c], "%d", cur);
                for (int k = 0; k < nops; k++) fprintf(dat[c], " %.6f", sum[c][k] / rows[c]);
                fprintf(dat[c], "\n");
            }
            memset(sum, 0, sizeof sum);
            rows[0] = rows[1] = 0;
        }
        if (!more) break;
        cur = epoch;
        char *p = line + off;
        for (int k = 0; k < nops && p; k++) {
            sum[t][k] += strtod(p, NULL);
            p = strchr(p, ',');
            if (p) p++;
        }
        rows[t]++;
    }
    fclose(f);
    return nops;
}

void nas_plot_alpha(srch *s)
{
    const char *out = s->cfg->run.out;
    if (!out[0] || system("command -v gnuplot >/dev/null 2>&1") != 0) return; /* gnuplot is optional */
    static const char *cells[2] = {"normal", "reduce"};
    char csv[700], dat[2][700], png[2][700], gp[700];
    FILE *df[2] = {NULL, NULL};
    snprintf(csv, sizeof csv, "%s/alpha.csv", out);
    snprintf(gp, sizeof gp, "%s/alpha_plot.gp", out);
    int ok = 1;
    for (int t = 0; t < 2; t++) {
        snprintf(dat[t], sizeof dat[t], "%s/alpha_%s.dat", out, cells[t]);
        snprintf(png[t], sizeof png[t], "%s/alpha_%s.png", out, cells[t]);
        struct stat ps;
        if (lstat(png[t], &ps) == 0 && !S_ISREG(ps.st_mode)) ok = 0; /* never written through a link */
        if (ok && dp_open_output(dat[t], 0, &df[t]) != DP_OK) ok = 0;
    }
    int nops = ok ? alpha_means(csv, s->sn->cfg.layers, df) : 0;
    for (int t = 0; t < 2; t++)
        if (df[t]) fclose(df[t]);
    FILE *g = NULL;
    if (nops > 0 && dp_open_output(gp, 0, &g) == DP_OK) {
        fprintf(g, "set terminal pngcairo size 900,560 noenhanced\nset key outside right\nset grid\n"
                   "set xlabel \"epoch\"\nset ylabel \"mean mixing weight over the %s\"\n",
                s->sn->cfg.per_layer ? "cells' edges" : "14 edges");
        for (int t = 0; t < 2; t++)
            fprintf(g, "set output \"%s\"\nset title \"%s cell%s: alpha over the search\"\n"
                       "plot for [i=2:%d] \"%s\" using 1:i with linespoints title columnheader(i)\n",
                    png[t], cells[t], s->sn->cfg.per_layer ? "s, each its own" : "", nops + 1, dat[t]);
        fclose(g);
        char cmd[800];
        snprintf(cmd, sizeof cmd, "gnuplot '%s' >/dev/null 2>&1", gp);
        int st = system(cmd);
        if (!s->cfg->run.quiet)
            fprintf(stderr, "alpha over the search: %s%s\n", st == 0 ? png[0] : gp,
                    st == 0 ? " and alpha_reduce.png" : " (gnuplot failed)");
    }
}
