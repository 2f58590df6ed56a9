/* allreduce_model: predicts allreduce times and data-parallel step times from measured
 * alpha-beta-gamma parameters (bench_alphabeta --out) for N nodes x R ranks per node.
 * The formulas, their sources and assumptions: allreduce_model.c.
 *
 *   allreduce_model time  [PARAMS] --nodes N --rpn R [--bytes 4K,1M,64M]
 *   allreduce_model scale [PARAMS] --compute FILE [--gbit 10,25,100] [--rpn 1,8,32,64]
 *                         [--max-nodes 4096] [--bucket-mb 4] [--csv FILE] [--at 64,256,1024,4096]
 *   allreduce_model check [PARAMS] --nodes N --rpn R --measured CSV
 *   PARAMS: --params FILE (repeatable: later files replace earlier keys), --alpha-intra S,
 *           --beta-intra S_PER_B, --alpha-inter S, --beta-inter S_PER_B, --gbit G (time: the
 *           inter link's rate, beta_inter = 8/(G*1e9) s/byte), --gamma S_PER_B (both gammas),
 *           --seg-bytes B, --placement block|cyclic, --node-gbs G (GB/s all ranks of a node move
 *           through shared memory at once; 0 = only beta_intra limits)
 *
 * scale: weak scaling (the per-rank batch fixed), nodes 1, 2, 4, ... max-nodes, for every
 * model line of the compute file, every rate and every ranks-per-node count. The inter link
 * has beta = 8/(G*1e9) s/byte and alpha = --alpha-inter (default 10 us, an assumed figure
 * for MPI over TCP or RoCE on a datacentre network, not a measurement: the virtual cluster's
 * alpha is that of veth pairs on one loaded host). T1 is the one-rank step time (the compute
 * file's), TP the predicted step time at P ranks; efficiency = T1/TP. Every algorithm is run
 * for all buckets, and `auto` takes the cheapest of dptrain's own (ring, hier, hier-rd, rd)
 * per bucket. Last, a markdown table of dptrain's algorithms and auto at the --at node counts
 * (the README's). The intra link is the measured one at every ranks-per-node count (its
 * per-flow beta does not grow with R unless --node-gbs is given).
 *
 * check: the model against a bench_allreduce --csv of a run on N x R ranks: for every row,
 * the predicted time of the algorithm the row ran (ring/SEG: our ring with that segment;
 * hier, hier-rd, rd: ours; MPI_Allreduce: the Open MPI algorithm its mpi_alg column names:
 * ring and segmented_ring -> mpi-ring, rabenseifner, recursive_doubling, basic_linear/
 * nonoverlapping -> tree) against the measured median, and the error (predicted -
 * measured)/measured; rows off by more than 25% are marked, and a summary per algorithm
 * follows. auto and codec rows are listed as skipped (auto's choice is not in the CSV, a
 * codec's bytes are not float32's).
 *
 * Compute file: one model per line, '#' comments, whitespace-separated:
 *   NAME PARAMS T_COMPUTE_S BWD_FRAC T_UPDATE_S TAIL_PARAMS [SOURCE...]
 * PARAMS float gradients cut into --bucket-mb buckets; TAIL_PARAMS a further allreduce after
 * the step (DARTS's architecture gradient), 0 for none. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allreduce_model.h"

#define MAXLIST 32
#define MAXMODELS 16

static const char *me = "allreduce_model";

static void die(const char *fmt, const char *a)
{
    fprintf(stderr, "%s: ", me);
    fprintf(stderr, fmt, a);
    fputc('\n', stderr);
    exit(2);
}

static double num(const char *flag, const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno == ERANGE || !isfinite(v) || v < 0) {
        fprintf(stderr, "%s: %s '%s': want a finite number >= 0\n", me, flag, s);
        exit(2);
    }
    double k = 1;
    if (*end == 'K' || *end == 'k') k = 1024, end++;
    else if (*end == 'M' || *end == 'm') k = 1048576, end++;
    else if (*end == 'G' || *end == 'g') k = 1073741824.0, end++;
    if (*end != '\0') {
        fprintf(stderr, "%s: %s '%s': trailing '%s'\n", me, flag, s, end);
        exit(2);
    }
    return v * k;
}

static long whole(const char *flag, const char *s)
{
    double v = num(flag, s);
    if (v != floor(v) || v < 1 || v > 1e9) {
        fprintf(stderr, "%s: %s '%s': want a whole number >= 1\n", me, flag, s);
        exit(2);
    }
    return (long)v;
}

static int list(const char *flag, const char *s, double *out)
{
    int n = 0;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (n == MAXLIST) die("too many values in '%s'", s);
        out[n++] = num(flag, tok);
    }
    if (0 == n) die("empty list '%s'", s);
    return n;
}

typedef struct model {
    char name[32], source[160];
    am_step st;
} model;

static int read_compute(const char *path, model *m, double bucket_bytes)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "%s: %s: cannot open: %s\n", me, path, strerror(errno));
        exit(2);
    }
    char line[512];
    int n = 0, ln = 0;
    while (fgets(line, sizeof line, f)) {
        ln++;
        char *s = line + strspn(line, " \t");
        if (*s == '#' || *s == '\n' || *s == '\0') continue;
        if (n == MAXMODELS) {
            fprintf(stderr, "%s: %s:%d: more than %d models\n", me, path, ln, MAXMODELS);
            exit(2);
        }
        double params, tc, bf, tu, tail;
        int used = 0;
        model *x = &m[n];
        if (6 != sscanf(s, "%31s %lf %lf %lf %lf %lf %n", x->name, &params, &tc, &bf, &tu, &tail, &used) ||
            !(params >= 1) || !(tc > 0) || !(bf >= 0 && bf <= 1) || !(tu >= 0) || !(tail >= 0)) {
            fprintf(stderr, "%s: %s:%d: want NAME PARAMS(>=1) T_COMPUTE_S(>0) BWD_FRAC(0..1) "
                    "T_UPDATE_S(>=0) TAIL_PARAMS(>=0) [SOURCE]\n", me, path, ln);
            exit(2);
        }
        snprintf(x->source, sizeof x->source, "%s", s + used);
        x->source[strcspn(x->source, "\n")] = '\0';
        x->st = (am_step){.t_compute = tc, .bwd_frac = bf, .t_update = tu, .grad_bytes = 4 * params,
                          .bucket_bytes = bucket_bytes, .tail_bytes = 4 * tail};
        n++;
    }
    fclose(f);
    if (0 == n) {
        fprintf(stderr, "%s: %s: no model lines\n", me, path);
        exit(2);
    }
    return n;
}

static void need_links(const am_params *p, long rpn, long nodes)
{
    if (rpn > 1 && !(p->intra.beta > 0)) {
        fprintf(stderr, "%s: %ld ranks per node need the intra-node link: give --params FILE from a "
                "bench_alphabeta run with >= 2 ranks on a node, or --alpha-intra/--beta-intra\n", me, rpn);
        exit(2);
    }
    if (nodes > 1 && !(p->inter.beta > 0)) {
        fprintf(stderr, "%s: %ld nodes need the inter-node link: give --params FILE from a bench_alphabeta "
                "run across nodes, or --beta-inter/--gbit (and --alpha-inter)\n", me, nodes);
        exit(2);
    }
}

static void print_params(const am_params *p, FILE *o);

/* which model algorithm a bench_allreduce row ran; -1: none (auto: its choice is not in the
 * CSV; codec variants: bytes on the wire differ) */
static int row_algo(const char *name, const char *mpi_alg)
{
    if (0 == strncmp(name, "ring/", 5)) return AM_RING;
    if (0 == strcmp(name, "hier")) return AM_HIER;
    if (0 == strcmp(name, "hier-rd")) return AM_HIER_RD;
    if (0 == strcmp(name, "rd")) return AM_RD;
    if (0 == strcmp(name, "MPI_Allreduce")) {
        if (strstr(mpi_alg, "ring")) return AM_MPI_RING;
        if (strstr(mpi_alg, "rabenseifner")) return AM_RABENSEIFNER;
        if (strstr(mpi_alg, "recursive_doubling")) return AM_RECDOUBLING;
        if (strstr(mpi_alg, "basic_linear") || strstr(mpi_alg, "nonoverlapping")) return AM_TREE;
    }
    return -1;
}

static int check(am_params *p, const am_topo *t, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "%s: %s: cannot open: %s\n", me, path, strerror(errno));
        return 2;
    }
    char line[2048];
    const char *want[] = {"bytes", "name", "seg_bytes", "t_med_us", "ranks", "mpi_alg"};
    int col[6] = {-1, -1, -1, -1, -1, -1}, ln = 1;
    if (!fgets(line, sizeof line, f)) {
        fprintf(stderr, "%s: %s: empty\n", me, path);
        fclose(f);
        return 2;
    }
    line[strcspn(line, "\r\n")] = '\0';
    int c = 0;
    for (char *tok = strtok(line, ","); tok; tok = strtok(NULL, ","), c++)
        for (int k = 0; k < 6; k++)
            if (0 == strcmp(tok, want[k])) col[k] = c;
    for (int k = 0; k < 6; k++)
        if (col[k] < 0) {
            fprintf(stderr, "%s: %s: no column '%s' (want a bench_allreduce --csv)\n", me, path, want[k]);
            fclose(f);
            return 2;
        }
    print_params(p, stdout);
    printf("# %ld nodes x %ld ranks per node; measured: %s\n", t->nodes, t->rpn, path);
    printf("%12s %-18s %-13s %12s %12s %8s\n", "bytes", "variant", "model", "measured_us", "predicted_us", "error");
    int n = 0, within = 0, skipped = 0, an[AM_NALGO] = {0}, aw[AM_NALGO] = {0};
    double worst = 0, seg0 = p->seg_bytes, aworst[AM_NALGO] = {0};
    while (fgets(line, sizeof line, f)) {
        ln++;
        line[strcspn(line, "\r\n")] = '\0';
        char *field[64] = {0};
        int nf = 0;
        for (char *q = line; nf < 64;) { /* strtok would merge empty fields */
            field[nf++] = q;
            char *comma = strchr(q, ',');
            if (!comma) break;
            *comma = '\0';
            q = comma + 1;
        }
        int ok = 1;
        for (int k = 0; k < 6; k++) ok &= col[k] < nf;
        char *end;
        double bytes = ok ? strtod(field[col[0]], &end) : 0, seg = ok ? strtod(field[col[2]], NULL) : 0;
        double meas = ok ? strtod(field[col[3]], NULL) * 1e-6 : 0;
        long ranks = ok ? strtol(field[col[4]], NULL, 10) : 0;
        if (!ok || !(bytes > 0) || !(meas > 0)) {
            fprintf(stderr, "%s: %s:%d: not a bench_allreduce row\n", me, path, ln);
            fclose(f);
            return 2;
        }
        if (ranks != t->nodes * t->rpn) {
            fprintf(stderr, "%s: %s:%d: a run on %ld ranks, but --nodes x --rpn is %ld\n", me, path, ln, ranks,
                    t->nodes * t->rpn);
            fclose(f);
            return 2;
        }
        int a = row_algo(field[col[1]], field[col[5]]);
        if (a < 0) {
            printf("%12.0f %-18s %-13s %12.2f %12s %8s\n", bytes, field[col[1]], "(skipped)", meas * 1e6, "-", "-");
            skipped++;
            continue;
        }
        p->seg_bytes = 0 == strncmp(field[col[1]], "ring", 4) && seg >= 4 ? seg : seg0;
        double pred = am_allreduce_time(p, t, (am_algo)a, bytes), err = (pred - meas) / meas;
        p->seg_bytes = seg0;
        n++;
        within += fabs(err) <= 0.25;
        if (fabs(err) > fabs(worst)) worst = err;
        an[a]++, aw[a] += fabs(err) <= 0.25;
        if (fabs(err) > fabs(aworst[a])) aworst[a] = err;
        printf("%12.0f %-18s %-13s %12.2f %12.2f %+7.0f%%%s\n", bytes, field[col[1]], am_algo_name((am_algo)a),
               meas * 1e6, pred * 1e6, 100 * err, fabs(err) > 0.25 ? "  > 25%" : "");
    }
    fclose(f);
    for (int a = 0; a < AM_NALGO; a++)
        if (an[a]) printf("# %-13s %2d rows: %2d within 25%%, worst %+.0f%%\n", am_algo_name((am_algo)a), an[a], aw[a],
                          100 * aworst[a]);
    printf("# %d rows compared: %d within 25%%, worst %+.0f%%; %d skipped\n", n, within, 100 * worst, skipped);
    return 0;
}

static void print_params(const am_params *p, FILE *o)
{
    fprintf(o, "# intra: alpha %.3g s beta %.3g s/B (%.2f GB/s a flow) | inter: alpha %.3g s beta %.3g s/B (%.3g Gbit/s "
            "a flow with %g flows per NIC: %.3g Gbit/s a NIC)\n", p->intra.alpha, p->intra.beta,
            p->intra.beta > 0 ? 1e-9 / p->intra.beta : 0, p->inter.alpha, p->inter.beta,
            p->inter.beta > 0 ? 8e-9 / p->inter.beta : 0, p->inter_flows,
            p->inter.beta > 0 ? 8e-9 * p->inter_flows / p->inter.beta : 0);
    if (p->have_ring)
        fprintf(o, "# flat ring step measured on %g x %g: alpha %.3g s beta %.3g s/B (%.3g Gbit/s)\n", p->ring_nodes,
                p->ring_rpn, p->ring.alpha, p->ring.beta, p->ring.beta > 0 ? 8e-9 / p->ring.beta : 0);
    fprintf(o, "# gamma: %.3g s/B (<= %.0f B), %.3g s/B (larger) | ring segment %.0f B | rd chunk %.0f B | node shared "
            "memory %s%.3g GB/s\n", p->gamma_cache, p->cache_bytes, p->gamma_mem, p->seg_bytes, p->chunk_bytes,
            p->node_bw > 0 ? "" : "unlimited ", p->node_bw / 1e9);
}

int main(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "time") && strcmp(argv[1], "scale") && strcmp(argv[1], "check"))) {
        fprintf(stderr, "usage: %s time|scale|check [options]   (see the header of benchmarks/allreduce_model_main.c)\n",
                me);
        return 2;
    }
    int scale = 0 == strcmp(argv[1], "scale"), checking = 0 == strcmp(argv[1], "check");
    const char *measured = NULL;
    am_params p;
    am_params_init(&p);
    am_topo topo = {.nodes = 1, .rpn = 1, .placement = AM_BLOCK};
    double bytes[MAXLIST], gbit[MAXLIST], rpns[MAXLIST], at[MAXLIST] = {64, 256, 1024, 4096};
    int nbytes = 0, ngbit = 0, nrpn = 0, nat = 4;
    double max_nodes = 4096, bucket_mb = 4, alpha_inter = -1;
    const char *compute = NULL, *csv = NULL;
    char err[512];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) die("%s needs a value", a);
        i++;
        if (!strcmp(a, "--params")) {
            if (am_params_read(v, &p, err, sizeof err)) {
                fprintf(stderr, "%s: %s\n", me, err);
                return 2;
            }
        } else if (!strcmp(a, "--alpha-intra")) p.intra.alpha = num(a, v), p.have_intra = 1;
        else if (!strcmp(a, "--beta-intra")) p.intra.beta = num(a, v), p.have_intra = 1;
        else if (!strcmp(a, "--alpha-inter")) alpha_inter = p.inter.alpha = num(a, v), p.have_inter = 1;
        else if (!strcmp(a, "--beta-inter")) p.inter.beta = num(a, v), p.have_inter = 1;
        else if (!strcmp(a, "--gamma")) p.gamma_cache = p.gamma_mem = num(a, v);
        else if (!strcmp(a, "--node-gbs")) p.node_bw = num(a, v) * 1e9;
        else if (!strcmp(a, "--seg-bytes")) {
            p.seg_bytes = num(a, v);
            if (p.seg_bytes < 4) die("--seg-bytes '%s': at least one float (4)", v);
        } else if (!strcmp(a, "--placement")) {
            if (!strcmp(v, "block")) topo.placement = AM_BLOCK;
            else if (!strcmp(v, "cyclic")) topo.placement = AM_CYCLIC;
            else die("--placement '%s': block or cyclic", v);
        } else if (!strcmp(a, "--gbit")) ngbit = list(a, v, gbit);
        else if (!scale && !strcmp(a, "--nodes")) topo.nodes = whole(a, v);
        else if (!scale && !strcmp(a, "--rpn")) topo.rpn = whole(a, v);
        else if (!scale && !strcmp(a, "--bytes")) nbytes = list(a, v, bytes);
        else if (scale && !strcmp(a, "--rpn")) {
            nrpn = list(a, v, rpns);
            for (int r = 0; r < nrpn; r++)
                if (rpns[r] != floor(rpns[r]) || rpns[r] < 1 || rpns[r] > 1e6) die("--rpn '%s': whole numbers >= 1", v);
        }
        else if (scale && !strcmp(a, "--max-nodes")) max_nodes = (double)whole(a, v);
        else if (scale && !strcmp(a, "--at")) {
            nat = list(a, v, at);
            for (int k = 0; k < nat; k++)
                if (at[k] != floor(at[k]) || at[k] < 1 || at[k] > 1048576) die("--at '%s': node counts 1 .. 1048576", v);
        }
        else if (scale && !strcmp(a, "--bucket-mb")) bucket_mb = num(a, v);
        else if (checking && !strcmp(a, "--measured")) measured = v;
        else if (scale && !strcmp(a, "--compute")) compute = v;
        else if (scale && !strcmp(a, "--csv")) csv = v;
        else die("unknown option '%s' for this command", a);
    }
    for (int g = 0; g < ngbit; g++)
        if (!(gbit[g] > 0)) die("--gbit: a rate of 0 Gbit/s%s", "");

    if (checking) {
        if (!measured) die("check needs --measured CSV (a bench_allreduce --csv)%s", "");
        if (topo.nodes < 1 || topo.rpn < 1) die("--nodes and --rpn must be >= 1%s", "");
        if (ngbit > 1) die("check takes one --gbit rate%s", "");
        if (ngbit == 1) p.inter.beta = 8.0 / (gbit[0] * 1e9), p.inter_flows = 1, p.have_inter = 1;
        need_links(&p, topo.rpn, topo.nodes);
        return check(&p, &topo, measured);
    }
    if (!scale) {
        if (topo.nodes < 1 || topo.rpn < 1) die("--nodes and --rpn must be >= 1%s", "");
        if (ngbit > 1) die("time takes one --gbit rate%s", "");
        if (ngbit == 1) p.inter.beta = 8.0 / (gbit[0] * 1e9), p.inter_flows = 1, p.have_inter = 1;
        if (0 == nbytes) {
            double def[] = {4096, 65536, 1048576, 4194304, 16777216, 67108864};
            nbytes = 6;
            memcpy(bytes, def, sizeof def);
        }
        need_links(&p, topo.rpn, topo.nodes);
        print_params(&p, stdout);
        printf("# %ld nodes x %ld ranks per node (%s placement), predicted seconds\n", topo.nodes, topo.rpn,
               topo.placement == AM_BLOCK ? "block" : "cyclic");
        printf("%12s", "bytes");
        for (int a = 0; a < AM_NALGO; a++) printf(" %12s", am_algo_name((am_algo)a));
        printf(" %12s\n", "auto");
        for (int b = 0; b < nbytes; b++) {
            printf("%12.0f", bytes[b]);
            for (int a = 0; a < AM_NALGO; a++) printf(" %12.4g", am_allreduce_time(&p, &topo, (am_algo)a, bytes[b]));
            printf(" %12s\n", am_algo_name(am_best(&p, &topo, bytes[b], NULL)));
        }
        return 0;
    }

    if (!compute) die("scale needs --compute FILE%s", "");
    if (0 == ngbit) ngbit = 3, gbit[0] = 10, gbit[1] = 25, gbit[2] = 100;
    if (0 == nrpn) nrpn = 4, rpns[0] = 1, rpns[1] = 8, rpns[2] = 32, rpns[3] = 64;
    if (!(max_nodes >= 1) || max_nodes > 1048576) die("--max-nodes: 1 .. 1048576%s", "");
    if (!(bucket_mb > 0)) die("--bucket-mb: must be > 0%s", "");
    if (alpha_inter < 0) p.inter.alpha = 10e-6;
    model mods[MAXMODELS];
    int nm = read_compute(compute, mods, bucket_mb * 1048576.0);
    FILE *out = NULL;
    if (csv && !(out = fopen(csv, "w"))) {
        fprintf(stderr, "%s: %s: cannot write: %s\n", me, csv, strerror(errno));
        return 2;
    }
    for (int r = 0; r < nrpn; r++) need_links(&p, (long)rpns[r], 1); /* inter: from each --gbit */
    p.have_inter = 1;
    p.inter_flows = 1; /* a NIC of the rate, shared by the flows that cross it */
    p.inter.beta = 8.0 / (gbit[0] * 1e9); /* each rate in turn below */
    print_params(&p, stdout);
    printf("# inter beta = 8/(rate) for each rate below (the first shown above); alpha_inter %.3g s (%s); bucket %.4g MiB; weak scaling, efficiency T1/TP\n",
           p.inter.alpha, alpha_inter < 0 ? "assumed default" : "--alpha-inter", bucket_mb);
    for (int i = 0; i < nm; i++)
        printf("# %s: %.0f params, compute %.4g s/step (bwd %.2f), update %.3g s, tail %.0f params; %s\n", mods[i].name,
               mods[i].st.grad_bytes / 4, mods[i].st.t_compute, mods[i].st.bwd_frac, mods[i].st.t_update,
               mods[i].st.tail_bytes / 4, mods[i].source[0] ? mods[i].source : "(no source given)");
    if (out) fprintf(out, "model,gbit,rpn,nodes,ranks,algo,step_s,efficiency,comm_exposed_s,auto_bucket_algo\n");
    for (int i = 0; i < nm; i++)
        for (int g = 0; g < ngbit; g++) {
            p.inter.beta = 8.0 / (gbit[g] * 1e9);
            for (int r = 0; r < nrpn; r++) {
                topo.rpn = (long)rpns[r];
                printf("\n%s, %g Gbit/s, %ld ranks/node: efficiency\n%6s", mods[i].name, gbit[g], topo.rpn, "nodes");
                for (int a = 0; a < AM_NALGO; a++) printf(" %12s", am_algo_name((am_algo)a));
                printf(" %12s  %s\n", "auto", "auto's choice (largest bucket)");
                double t1 = mods[i].st.t_compute + mods[i].st.t_update;
                for (long n = 1; n <= (long)max_nodes; n *= 2) {
                    topo.nodes = n;
                    double big = fmin(mods[i].st.grad_bytes, mods[i].st.bucket_bytes);
                    const char *choice = n * topo.rpn > 1 ? am_algo_name(am_best(&p, &topo, big, NULL)) : "-";
                    printf("%6ld", n);
                    for (int a = -1; a < AM_NALGO; a++) {
                        int alg = a < 0 ? AM_NALGO : a; /* auto printed last, computed as -1 */
                        double ex, tp = am_step_time(&p, &topo, alg == AM_NALGO ? -1 : alg, &mods[i].st, &ex);
                        if (a >= 0) printf(" %12.3f", t1 / tp);
                        if (out)
                            fprintf(out, "%s,%g,%ld,%ld,%ld,%s,%.6g,%.6g,%.6g,%s\n", mods[i].name, gbit[g], topo.rpn, n,
                                    n * topo.rpn, alg == AM_NALGO ? "auto" : am_algo_name((am_algo)alg), tp, t1 / tp,
                                    ex, choice);
                    }
                    double ex, tp = am_step_time(&p, &topo, -1, &mods[i].st, &ex);
                    printf(" %12.3f  %s\n", t1 / tp, choice);
                }
            }
        }
    if (out && fclose(out)) {
        fprintf(stderr, "%s: %s: write failed\n", me, csv);
        return 1;
    }
    if (csv) printf("\ncsv: %s\n", csv);
    /* the README's table: efficiency at the --at node counts, each of our algorithms and auto */
    printf("\n## Predicted weak-scaling efficiency T1/TP (auto: its choice for the largest bucket)\n\n"
           "| model | Gbit/s | ranks/node | algorithm |");
    for (int k = 0; k < nat; k++) printf(" %g nodes |", at[k]);
    printf("\n|---|---|---|---|");
    for (int k = 0; k < nat; k++) printf("---|");
    printf("\n");
    for (int i = 0; i < nm; i++)
        for (int g = 0; g < ngbit; g++) {
            p.inter.beta = 8.0 / (gbit[g] * 1e9);
            for (int r = 0; r < nrpn; r++) {
                topo.rpn = (long)rpns[r];
                double t1 = mods[i].st.t_compute + mods[i].st.t_update;
                for (int a = 0; a <= AM_NOURS; a++) {
                    printf("| %s | %g | %ld | %s |", mods[i].name, gbit[g], topo.rpn,
                           a < AM_NOURS ? am_algo_name((am_algo)a) : "**auto**");
                    for (int k = 0; k < nat; k++) {
                        topo.nodes = (long)at[k];
                        double tp = am_step_time(&p, &topo, a < AM_NOURS ? a : -1, &mods[i].st, NULL);
                        if (a < AM_NOURS) printf(" %.2f |", t1 / tp);
                        else printf(" **%.2f** %s |", t1 / tp,
                                    am_algo_name(am_best(&p, &topo, fmin(mods[i].st.grad_bytes, mods[i].st.bucket_bytes),
                                                         NULL)));
                    }
                    printf("\n");
                }
            }
        }
    return 0;
}
