/* dsi-train with the IDF-weighted encoder (issue 23), at 1, 2 and 4 ranks, on
 * a synthetic corpus of 200 documents where most of a query is words that
 * every document uses and the rest is its document's own words:
 *  - before any step (0 epochs, prototype head, random embeddings) the
 *    IDF-weighted mean (idf-mean) already finds the document of a query far
 *    more often than the plain bag's mean, which the common words dilute:
 *    what the IDF fit, done on every rank of the member, is for (measured:
 *    train Hits@1 .95 against .65, test Hits@10 .99 against .57; the idf
 *    encoder's random max view, .58 / .55, is printed beside them);
 *  - trained data-parallel it fits its training queries (Hits@1 >= 0.9) and
 *    answers held-out queries of the same documents (test Hits@10 >= 0.8);
 *  - P ranks x batch b end with the parameters of 1 rank x batch P b: the row
 *    weights u are dense parameters, summed through the ring like the rest;
 *  - the member file written by training says idf and holds the trained u.
 * (Ensembles of idf members on their own sub-communicators: mpi_dsi's members
 * case, run with this encoder.) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpi_dsi_common.h"

static char tmp[256], data[300];

/* Document d owns four words; each of its 8 queries is two of them among four
 * words of a common pool of 12 (every document uses them). */
static void write_corpus(const char *path)
{
    static const char *common[] = {"the",  "package", "tool",  "for",     "with", "data",
                                   "files", "library", "and",  "support", "new",  "utility"};
    FILE *f = fopen(path, "w");
    if (!f) MPI_Abort(MPI_COMM_WORLD, 1);
    for (int d = 0; d < 200; d++)
        for (int q = 0; q < 8; q++) {
            uint64_t h = mix((uint64_t)d * 977 + (uint64_t)q);
            const int a = (int)(h % 4), b = (int)(a + 1 + (h >> 8) % 3) % 4;
            fprintf(f, "%s %s v%dq%c %s %s v%dq%c\tdoc-%03d\n", common[(h >> 16) % 12], common[(h >> 24) % 12], d,
                    'a' + a, common[(h >> 32) % 12], common[(h >> 40) % 12], d, 'a' + b, d);
        }
    fclose(f);
}

static dp_dsi_train_config tiny(int encoder)
{
    dp_dsi_train_config c;
    dp_dsi_train_defaults(&c);
    snprintf(c.run.data, sizeof c.run.data, "%s", data);
    c.model.encoder = encoder;
    c.model.embed = 32;
    c.model.hidden = 64;
    c.model.head = DP_DSI_HEAD_COSINE;
    c.model.head_scale = 16;
    c.run.epochs = 30;
    c.run.batch = 64 / g_size;
    c.lr = 5e-3f;
    c.index_ratio = 0;
    c.head_init = 1;
    c.eval_beams = 10;
    c.run.quiet = 1;
    return c;
}

static void untrained(void)
{
    static const int kinds[3] = {DP_DSI_ENCODER_BAG_MLP, DP_DSI_ENCODER_IDF_MEAN, DP_DSI_ENCODER_IDF};
    double h1[3], t10[3];
    for (int k = 0; k < 3; k++) {
        dp_dsi_train_config c = tiny(kinds[k]);
        c.run.epochs = 0;
        dp_dsi_train_result res[1];
        CHECK_OK(dp_dsi_train_run(&c, MPI_COMM_WORLD, res));
        h1[k] = frac(&res[0].train_m, res[0].train_m.hits1);
        t10[k] = frac(&res[0].test_m, res[0].test_m.hits10);
    }
    if (g_rank == 0) {
        printf("    untrained, prototype head: train Hits@1 / test Hits@10: bag %.3f / %.3f, idf-mean %.3f / %.3f, idf "
               "%.3f / %.3f\n",
               h1[0], t10[0], h1[1], t10[1], h1[2], t10[2]);
        CHECK(h1[1] >= h1[0] + 0.15, "IDF weights: train Hits@1 %.3f, not well above the plain mean's %.3f", h1[1], h1[0]);
        CHECK(t10[1] >= t10[0] + 0.1, "IDF weights: test Hits@10 %.3f, not well above the plain mean's %.3f", t10[1],
              t10[0]);
    }
    end_case("untrained: IDF weights beat the plain mean");
}

static void trained(void)
{
    dp_dsi_train_config c = tiny(DP_DSI_ENCODER_IDF);
    snprintf(c.run.out, sizeof c.run.out, "%s/central", tmp);
    dp_dsi_train_result res[1];
    CHECK_OK(dp_dsi_train_run(&c, MPI_COMM_WORLD, res));
    if (g_rank == 0) {
        const double h1 = frac(&res[0].train_m, res[0].train_m.hits1), t10 = frac(&res[0].test_m, res[0].test_m.hits10);
        printf("    trained: train Hits@1 %.3f, test Hits@1 %.3f, Hits@10 %.3f\n", h1,
               frac(&res[0].test_m, res[0].test_m.hits1), t10);
        CHECK(h1 >= 0.9, "training queries Hits@1 %.3f < 0.9", h1);
        CHECK(t10 >= 0.8, "test queries Hits@10 %.3f < 0.8", t10);
        char path[600];
        snprintf(path, sizeof path, "%s/member-0/model.dsi", c.run.out);
        dp_dsi_member mb;
        CHECK_OK(dp_dsi_member_load(path, &mb));
        if (mb.model) {
            CHECK(mb.model->cfg.encoder == DP_DSI_ENCODER_IDF, "the member came back with encoder %d",
                  mb.model->cfg.encoder);
            /* u is the dense vector's first parameter: the IDF of a common word's row is far below an own word's */
            const dp_params *p = &mb.model->dense;
            CHECK(p->count > 0 && !strcmp(p->items[0]->name, "enc.logw"), "first dense parameter %s",
                  p->count ? p->items[0]->name : "(none)");
            float lo = INFINITY, hi = -INFINITY;
            for (long r = 0; r < p->items[0]->t.n; r++) {
                const float u = p->items[0]->t.data[r];
                if (u < lo) lo = u;
                if (u > hi) hi = u;
            }
            CHECK(hi - lo > 2.0f, "trained row weights span only [%g, %g]", lo, hi);
        }
        dp_dsi_member_free(&mb);
    }
    end_case("idf encoder learns (1 member, all ranks)");
}

/* as mpi_dsi's equivalence case (its comment says why the L2 norm), with the idf encoder */
static void equivalence(void)
{
    dp_dsi_train_config c = tiny(DP_DSI_ENCODER_IDF);
    c.run.epochs = 2;
    c.run.batch = 16;
    dp_dsi_member a, b;
    if (train_p_and_one(&c, tmp, &a, &b)) {
        const dp_param *ua = a.model->dense.items[0], *ub = b.model->dense.items[0];
        double dd = rel_l2_diff(a.model->dense.data, b.model->dense.data, a.model->dense.n);
        double du = rel_l2_diff(ua->t.data, ub->t.data, (size_t)ua->t.n);
        double de = rel_l2_diff(a.model->emb.data, b.model->emb.data, a.model->emb.n);
        CHECK(dd <= 1e-4, "dense parameters differ by %.3g relative (L2)", dd);
        CHECK(du <= 1e-4, "row weights differ by %.3g relative (L2)", du);
        CHECK(de <= 1e-4, "embedding differs by %.3g relative (L2)", de);
        printf("    P x b against 1 x Pb: relative L2 difference dense %.2g (row weights %.2g), embedding %.2g\n", dd, du,
               de);
    }
    dp_dsi_member_free(&a);
    dp_dsi_member_free(&b);
    end_case("equivalence: P x b == 1 x Pb (idf)");
}

int main(int argc, char **argv)
{
    mpi_start(&argc, &argv, "mpi-dsi-idf", tmp, sizeof tmp);
    snprintf(data, sizeof data, "%s/data", tmp);
    prepare_dataset(tmp, data, write_corpus, 0);

    untrained();
    trained();
    equivalence();

    return mpi_finish("mpi_dsi_idf", tmp);
}
