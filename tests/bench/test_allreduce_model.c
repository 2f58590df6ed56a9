/* The allreduce cost model (benchmarks/allreduce_model.c) against closed forms worked by hand
 * from the formulas' sources, and its parameter file's refusals. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "allreduce_model.h"

#define MiB 1048576.0

/* one link class everywhere: intra = inter, one gamma, segments larger than any message */
static am_params uniform(double alpha, double beta, double gamma)
{
    am_params p;
    am_params_init(&p);
    p.intra = p.inter = (am_link){alpha, beta};
    p.gamma_cache = p.gamma_mem = gamma;
    p.seg_bytes = p.chunk_bytes = 1e15;
    p.have_intra = p.have_inter = 1;
    return p;
}

static void near(double got, double want, const char *what)
{
    cr_expect(fabs(got - want) <= 1e-9 * fmax(1.0, fabs(want)), "%s: got %.12g, want %.12g", what, got, want);
}

/* Our ring with one segment per block (k = 1) is the textbook ring plus the count exchange
 * (check_peer): alpha + 2(P-1)(alpha + c beta) + (P-1) c gamma, c = M/P. */
Test(allreduce_model, two_ranks_ring_is_two_steps)
{
    am_params p = uniform(1.0, 0, 0);
    am_topo one = {1, 2, AM_BLOCK}, two = {2, 1, AM_BLOCK};
    near(am_allreduce_time(&p, &one, AM_RING, 1000), 3.0, "1x2 ring, alpha only: count exchange + 2 steps");
    near(am_allreduce_time(&p, &one, AM_MPI_RING, 1000), 2.0, "Open MPI's ring: 2 steps, no count exchange");
    p.inter.alpha = 5.0; /* the inter link is what a 2-node ring pays */
    near(am_allreduce_time(&p, &two, AM_RING, 1000), 15.0, "2x1 ring, alpha only");
    am_topo single = {1, 1, AM_BLOCK};
    for (int a = 0; a < AM_NALGO; a++) near(am_allreduce_time(&p, &single, (am_algo)a, MiB), 0, "one rank costs nothing");
}

Test(allreduce_model, ring_textbook_when_unsegmented)
{
    double a = 2e-5, b = 1e-9, g = 3e-10, M = 3 * MiB;
    am_params p = uniform(a, b, g);
    am_topo t = {1, 4, AM_BLOCK};
    double c = M / 4;
    near(am_allreduce_time(&p, &t, AM_RING, M), a + 6 * (a + c * b) + 3 * c * g, "k = 1");
}

Test(allreduce_model, ring_bandwidth_term)
{
    /* alpha = gamma = 0: 2(P-1)/P * M * beta (Patarasuk & Yuan's bound), any N x R, any segment:
     * the link-bound path S k s beta is never shorter than the latency path (S + k - 1) s beta */
    am_params p = uniform(0, 1e-9, 0);
    p.seg_bytes = 4096;
    long shapes[][2] = {{1, 2}, {1, 7}, {4, 4}, {16, 1}, {3, 5}};
    for (int i = 0; i < 5; i++) {
        am_topo t = {shapes[i][0], shapes[i][1], AM_BLOCK};
        double P = (double)(t.nodes * t.rpn), M = 64 * MiB;
        near(am_allreduce_time(&p, &t, AM_RING, M), 2 * (P - 1) / P * M * 1e-9, "ring 2(P-1)/P M beta");
    }
}

/* The streamed ring, 2 ranks, M = 2 MiB: c = 1 MiB in k = 4 segments of s = 256 KiB, S = 2.
 * Latency path: segment 3 of step 1 leaves after segment 3 of step 0 arrived (2 alphas and
 * S + k - 1 = 5 segment times on the path); link path: S k = 8 segment times. */
Test(allreduce_model, ring_streams_segments)
{
    double s = 256 * 1024, b = 1e-9;
    am_params p = uniform(1e-3, b, 0);
    p.seg_bytes = s;
    am_topo t = {1, 2, AM_BLOCK};
    near(am_allreduce_time(&p, &t, AM_RING, 2 * MiB), 1e-3 + 2e-3 + 5 * s * b, "latency-bound: alpha + 2 alpha + 5 s beta");
    p.intra.alpha = 1e-6;
    near(am_allreduce_time(&p, &t, AM_RING, 2 * MiB), 1e-6 + 8 * s * b, "link-bound: alpha + 8 s beta");
}

Test(allreduce_model, ring_slowest_hop_and_placement)
{
    am_params p = uniform(0, 0, 0);
    p.intra.beta = 1e-10, p.inter.beta = 1e-8;
    double M = 32 * MiB, P = 8;
    am_topo blk = {2, 4, AM_BLOCK}, cyc = {2, 4, AM_CYCLIC};
    /* block: the 2 crossing hops set the pace, one flow per NIC */
    near(am_allreduce_time(&p, &blk, AM_RING, M), 2 * (P - 1) * (M / P) * 1e-8, "block ring");
    /* cyclic: every hop crosses, the node's 4 ranks share its NIC */
    near(am_allreduce_time(&p, &cyc, AM_RING, M), 2 * (P - 1) * (M / P) * 4 * 1e-8, "cyclic ring");
    /* a ring step measured on 2 x 4 replaces the hop law there, and only there */
    p.have_ring = 1, p.ring = (am_link){0, 3e-8}, p.ring_nodes = 2, p.ring_rpn = 4;
    near(am_allreduce_time(&p, &blk, AM_RING, M), 2 * (P - 1) * (M / P) * 3e-8, "measured ring step");
    am_topo other = {4, 2, AM_BLOCK};
    near(am_allreduce_time(&p, &other, AM_RING, M), 2 * (P - 1) * (M / P) * 1e-8, "another shape: the law");
}

/* hier on one node runs the ring's reduce-scatter and allgather as two calls: with k = 1 that
 * is alpha + (R-1)(alpha + c beta + c gamma) + alpha + (R-1)(alpha + c beta), the ring plus
 * one count exchange; with one rank per node it is the column ring alone, the flat ring. */
Test(allreduce_model, hierarchical_limits)
{
    am_params p = uniform(2e-6, 1e-10, 3e-11);
    p.inter = (am_link){3e-5, 1e-9};
    p.gamma_mem = 7e-11;
    double sizes[] = {8, 4096, 300000, 4 * MiB, 64 * MiB};
    for (int i = 0; i < 5; i++) {
        am_topo n1 = {1, 8, AM_BLOCK}, r1 = {16, 1, AM_BLOCK};
        double intra_ring = am_allreduce_time(&p, &n1, AM_RING, sizes[i]);
        near(am_allreduce_time(&p, &n1, AM_HIER, sizes[i]), intra_ring + 2e-6, "hier N=1 = intra ring + alpha");
        near(am_allreduce_time(&p, &n1, AM_HIER_RD, sizes[i]), intra_ring + 2e-6, "hier-rd N=1 = intra ring + alpha");
        near(am_allreduce_time(&p, &r1, AM_HIER, sizes[i]), am_allreduce_time(&p, &r1, AM_RING, sizes[i]),
             "hier R=1 = flat ring");
        near(am_allreduce_time(&p, &r1, AM_HIER_RD, sizes[i]), am_allreduce_time(&p, &r1, AM_RD, sizes[i]),
             "hier-rd R=1 = flat rd");
    }
}

Test(allreduce_model, node_memory_bandwidth_is_shared)
{
    am_params p = uniform(0, 1e-10, 0);
    am_topo t = {1, 8, AM_BLOCK};
    double M = 64 * MiB, R = 8;
    near(am_allreduce_time(&p, &t, AM_RING, M), 2 * (R - 1) / R * M * 1e-10, "no node limit: one flow's beta");
    p.node_bw = 2e9; /* 8 flows share 2 GB/s: 4e-9 s/B each, slower than beta_intra */
    near(am_allreduce_time(&p, &t, AM_RING, M), 2 * (R - 1) / R * M * (R / 2e9), "8 flows share node_bw");
    near(am_allreduce_time(&p, &t, AM_HIER, M), 2 * (R - 1) / R * M * (R / 2e9), "hier N=1 too");
    p.node_bw = 1e12; /* a node faster than R flows: beta_intra rules */
    near(am_allreduce_time(&p, &t, AM_RING, M), 2 * (R - 1) / R * M * 1e-10, "fast node: beta_intra");
}

/* alpha = gamma = 0, free shared memory: each NIC carries 2(N-1)/N M each way; the inter link
 * measured with F flows per NIC at beta_x each means the NIC moves a byte in beta_x / F */
Test(allreduce_model, hierarchical_nic_bytes)
{
    am_params p = uniform(0, 0, 0);
    p.inter.beta = 1e-9;
    long shapes[][2] = {{2, 4}, {8, 8}, {4, 32}};
    for (int f = 1; f <= 4; f *= 2) {
        p.inter_flows = f;
        p.inter.beta = 1e-9 * f; /* the same NIC, measured with f flows */
        for (int i = 0; i < 3; i++) {
            am_topo t = {shapes[i][0], shapes[i][1], AM_BLOCK};
            double N = (double)t.nodes, M = 128 * MiB;
            near(am_allreduce_time(&p, &t, AM_HIER, M), 2 * (N - 1) / N * M * 1e-9, "hier NIC bytes");
            near(am_allreduce_time(&p, &t, AM_HIER_RD, M), 2 * (N - 1) / N * M * 1e-9, "hier-rd NIC bytes (N = 2^k)");
        }
    }
}

/* Halving/doubling on P = 2^L ranks, one link class, chunks larger than any message:
 * sum over k = 1..L of 2(alpha + M/2^k beta) + M/2^k gamma (ours and Open MPI's alike). */
Test(allreduce_model, halving_doubling_closed_form)
{
    double a = 1e-5, b = 1e-9, g = 2e-10, M = 8 * MiB;
    am_params p = uniform(a, b, g);
    p.chunk_bytes = 1e15;
    for (long P = 2; P <= 1024; P *= 2) {
        am_topo t = {P, 1, AM_BLOCK};
        double L = log2((double)P), want = 2 * L * a + 2 * (P - 1.0) / P * M * b + (P - 1.0) / P * M * g;
        near(am_allreduce_time(&p, &t, AM_RD, M), want, "rd");
        near(am_allreduce_time(&p, &t, AM_RABENSEIFNER, M), want, "Rabenseifner");
        near(am_allreduce_time(&p, &t, AM_RECDOUBLING, M), L * (a + M * b + M * g), "recursive doubling");
        near(am_allreduce_time(&p, &t, AM_TREE, M), L * (2 * a + 2 * M * b + M * g), "binomial reduce + bcast");
    }
}

/* rd.c sends each exchange as blocking chunks: 2 ranks, 8 MiB, chunks of 256 KiB: one step of
 * 4 MiB each way = 16 chunks, reduce-scatter and allgather: 32 alphas. Open MPI's: 2. */
Test(allreduce_model, rd_pays_an_alpha_per_chunk)
{
    am_params p = uniform(1.0, 0, 0);
    p.chunk_bytes = 256 * 1024;
    am_topo t = {1, 2, AM_BLOCK};
    near(am_allreduce_time(&p, &t, AM_RD, 8 * MiB), 32.0, "rd chunks");
    near(am_allreduce_time(&p, &t, AM_RABENSEIFNER, 8 * MiB), 2.0, "one message per step");
}

/* 2 nodes x 2 ranks, block placement, inter link measured with 2 flows per NIC at beta_x, free
 * shared memory. Ours halves at distance 2 first: M/2 crosses each way in the reduce-scatter
 * and M/2 in the allgather, with both ranks of a node crossing at once: M beta_x. Open MPI's
 * order crosses at distance 2 with M/4 only: M/2 beta_x. */
Test(allreduce_model, rd_order_decides_the_bytes_between_nodes)
{
    am_params p = uniform(0, 0, 0);
    p.inter = (am_link){0, 2e-9};
    p.inter_flows = 2;
    p.chunk_bytes = 1e15;
    am_topo t = {2, 2, AM_BLOCK};
    double M = 16 * MiB;
    near(am_allreduce_time(&p, &t, AM_RD, M), M * 2e-9, "ours: M beta_x");
    near(am_allreduce_time(&p, &t, AM_RABENSEIFNER, M), M / 2 * 2e-9, "Open MPI's: M/2 beta_x");
}

Test(allreduce_model, tiny_messages_are_latency)
{
    am_params p = uniform(1e-5, 1e-9, 1e-10);
    p.seg_bytes = p.chunk_bytes = 256 * 1024; /* dptrain's: the ring streams 256 MiB, rd pays 2016 chunks */
    am_topo t = {64, 1, AM_BLOCK};
    double M = 4; /* one float */
    cr_expect(fabs(am_allreduce_time(&p, &t, AM_RECDOUBLING, M) - 6 * 1e-5) < 1e-7, "recursive doubling ~ log2(P) alpha");
    cr_expect(fabs(am_allreduce_time(&p, &t, AM_RD, M) - 12 * 1e-5) < 1e-7, "halving + doubling ~ 2 log2(P) alpha");
    cr_expect(fabs(am_allreduce_time(&p, &t, AM_RING, M) - 127 * 1e-5) < 1e-7, "ring: count exchange + 2(P-1) alpha");
    double best;
    cr_expect_eq(am_best(&p, &t, 256 * MiB, &best), AM_RING, "auto picks the ring for 256 MiB");
    cr_expect_eq(am_best(&p, &t, M, &best), AM_RD, "and rd for one float");
    near(best, am_allreduce_time(&p, &t, AM_RD, M), "its time");
    /* Open MPI's recursive doubling (6 alphas) is cheaper still, but not one auto can run */
    cr_expect(am_allreduce_time(&p, &t, AM_RECDOUBLING, M) < best, "auto chooses among dptrain's own only");
}

Test(allreduce_model, non_power_of_two)
{
    double a = 1e-5, b = 1e-9, g = 2e-10, m = 4 * MiB;
    am_params p = uniform(a, b, g);
    p.chunk_bytes = 1e15;
    /* N = 3 nodes of 1: 1 extra node hands m over and gets it back, then 2 nodes halve/double */
    am_topo t = {3, 1, AM_BLOCK};
    double want = (a + m * b + m * g) + (a + m * b) + 2 * a + 2 * 0.5 * m * b + 0.5 * m * g;
    near(am_allreduce_time(&p, &t, AM_HIER_RD, m), want, "hier-rd N=3");
    near(am_allreduce_time(&p, &t, AM_RD, m), want, "rd P=3");
    near(am_allreduce_time(&p, &t, AM_RABENSEIFNER, m), want, "rabenseifner P=3");
}

Test(allreduce_model, step_time_overlap)
{
    am_params p = uniform(1e-5, 1e-9, 0);
    am_topo one = {1, 1, AM_BLOCK}, t = {16, 1, AM_BLOCK};
    am_step s = {.t_compute = 0.1, .bwd_frac = 0.5, .t_update = 0.01, .grad_bytes = 4 * MiB, .bucket_bytes = 8 * MiB};
    near(am_step_time(&p, &one, AM_RING, &s, NULL), 0.11, "one rank: compute + update");
    /* one bucket: nothing overlaps, the whole allreduce is exposed */
    double ex, c = am_allreduce_time(&p, &t, AM_RING, 4 * MiB);
    near(am_step_time(&p, &t, AM_RING, &s, &ex), 0.11 + c, "one bucket");
    near(ex, c, "exposed = the allreduce");
    /* four buckets: all but the last hide under backward when each is shorter than its slice of it */
    s.bucket_bytes = 1 * MiB;
    double c1 = am_allreduce_time(&p, &t, AM_RING, 1 * MiB);
    cr_assert(c1 < 0.05 / 4, "premise: a bucket's allreduce is shorter than a quarter of backward");
    near(am_step_time(&p, &t, AM_RING, &s, &ex), 0.1 + c1 + 0.01, "only the last bucket is exposed");
    /* auto is never slower than any of dptrain's algorithms */
    for (int a = 0; a < AM_NOURS; a++)
        cr_expect(am_step_time(&p, &t, -1, &s, NULL) <= am_step_time(&p, &t, a, &s, NULL) + 1e-15, "auto vs %s",
                  am_algo_name((am_algo)a));
    s.tail_bytes = 1024;
    s.bucket_bytes = 8 * MiB;
    near(am_step_time(&p, &t, AM_RING, &s, NULL), 0.11 + c + am_allreduce_time(&p, &t, AM_RING, 1024), "tail");
}

/* ---- the parameter file ---- */

static char path[64];

static void write_file(const char *text)
{
    snprintf(path, sizeof path, "/tmp/test_am_XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
}

static void expect_refused(const char *text, const char *needle)
{
    am_params p;
    am_params_init(&p);
    char err[512] = "";
    write_file(text);
    int rc = am_params_read(path, &p, err, sizeof err);
    cr_expect_eq(rc, -1, "refused: %s", text);
    cr_expect(strstr(err, path) != NULL, "names the file: %s", err);
    cr_expect(strstr(err, needle) != NULL, "names '%s': %s", needle, err);
    unlink(path);
}

Test(allreduce_model, params_file_read)
{
    write_file("# comment\nalpha_intra=1e-6\nbeta_intra = 2e-10\n\ngamma_cache=1e-11\ngamma_mem=3e-11\nseg_bytes=65536\n");
    am_params p;
    am_params_init(&p);
    char err[512];
    cr_assert_eq(am_params_read(path, &p, err, sizeof err), 0, "%s", err);
    near(p.intra.alpha, 1e-6, "alpha_intra");
    near(p.intra.beta, 2e-10, "beta_intra");
    near(p.seg_bytes, 65536, "seg_bytes");
    cr_expect(p.have_intra && !p.have_inter);
    unlink(path);
    /* a second file adds the inter link and keeps the intra one */
    write_file("alpha_inter=3e-5\nbeta_inter=8e-9\ninter_flows=2\nalpha_ring=1e-3\nbeta_ring=9e-9\nring_nodes=2\n"
               "ring_rpn=2\n");
    cr_assert_eq(am_params_read(path, &p, err, sizeof err), 0, "%s", err);
    cr_expect(p.have_intra && p.have_inter && p.have_ring);
    near(p.intra.beta, 2e-10, "kept");
    near(p.inter.beta, 8e-9, "beta_inter");
    near(p.inter_flows, 2, "inter_flows");
    near(p.ring.beta, 9e-9, "beta_ring");
    near(p.ring_rpn, 2, "ring_rpn");
    unlink(path);
}

Test(allreduce_model, params_file_refusals)
{
    expect_refused("alpha_intra=1e-6\nbeta_intra=fast\n", "beta_intra");
    expect_refused("alpha_intra=1e-6\nbeta_intra=-1\n", "beta_intra");
    expect_refused("alpha_intra=1e-6\nbeta_intra=1e-10x\n", "beta_intra");
    expect_refused("alpha_intra=1e-6\nbeta_intra=nan\n", "beta_intra");
    expect_refused("alpha_intra=1e-6\nbetta_intra=1e-10\n", "betta_intra");
    expect_refused("alpha_inter=1e-6\n", "beta_inter");
    expect_refused("alpha_intra 1e-6\n", "key=value");
    expect_refused("# nothing\n", "no key=value");
    expect_refused("beta_intra=1e-10\nseg_bytes=2\n", "seg_bytes");
    expect_refused("alpha_ring=1e-6\nbeta_ring=1e-9\n", "ring_nodes");
    expect_refused("alpha_inter=1e-6\nbeta_inter=1e-9\ninter_flows=0\n", "inter_flows");
    expect_refused("beta_intra=1e-10\nchunk_bytes=1\n", "chunk_bytes");
    am_params p;
    am_params_init(&p);
    char err[512];
    cr_expect_eq(am_params_read("/nonexistent/x.params", &p, err, sizeof err), -1);
    cr_expect(strstr(err, "/nonexistent/x.params") != NULL, "%s", err);
}
