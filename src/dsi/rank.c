/* Ensemble aggregation and retrieval metrics for DSI queries.
 *
 * Where this sits: dsi-query / dsi-eval run beam search in every member model
 * (dp_dsi_beam_search), then merge the members' beams into one ranking here,
 * and score rankings against the gold document with dp_dsi_metrics_add.
 *
 * Aggregation follows De-DSI (Neague, Gregoriadis, Pouwelse 2024, sec. 3):
 * member m's beam scores s(m,i) are softmax-normalised over its valid beams,
 * p(m,i) = exp(s(m,i)) / sum_j exp(s(m,j)), and a document's confidence is the
 * sum of p(m,i) over every beam (of every member) that returned it. The vote
 * baseline counts the members that returned a document (a member returning it
 * in two beams counts once) and uses no scores at all: ties go to the better
 * (smaller) beam position, then to the smaller document id. (Breaking vote
 * ties by confidence would make the two identical whenever the members hold
 * disjoint documents, as dsi-prepare's members do: every vote count is 1.)
 * Confidence ties go to the smaller document id. Both are deterministic.
 *
 * A member may abstain: a beam with doc DP_DSI_ABSTAIN ("none of my
 * documents") takes its share of the member's softmax and is then dropped, so
 * a member that doubts the query is its own passes on less mass
 * (dsi_query.c's --abstain gives it the score log(1 - coverage^alpha)).
 *
 * Runs once per query: no allocation while the beams fit AGG_STACK entries
 * (64 members x 64 beams, 64 KiB of stack); larger inputs take one malloc per
 * call (on failure: 0 documents, dp_errmsg set). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "dptrain/dsi.h"

enum { AGG_STACK = 64 * 64 };

/* One valid beam; (doc, member, beam) orders the sums deterministically. After
 * grouping, the first entries hold one document each, with member = its votes
 * and p = its confidence. */
typedef struct agg_entry {
    int32_t doc;
    int32_t member; /* grouped: votes */
    int32_t beam;
    float p;        /* grouped: confidence */
} agg_entry;

/* x before y: by doc, member, beam (unique per entry). */
static int entry_before(const agg_entry *x, const agg_entry *y, int unused)
{
    (void)unused;
    if (x->doc != y->doc)
        return x->doc < y->doc;
    if (x->member != y->member)
        return x->member < y->member;
    return x->beam < y->beam;
}

/* Grouped entries, x ranks before y: voting, more votes then the better
 * beam position; otherwise the higher confidence; then the smaller doc id. */
static int better(const agg_entry *x, const agg_entry *y, int vote)
{
    if (vote && x->member != y->member)
        return x->member > y->member;
    if (vote && x->beam != y->beam)
        return x->beam < y->beam;
    if (!vote && x->p != y->p)
        return x->p > y->p;
    return x->doc < y->doc;
}

typedef int (*before_fn)(const agg_entry *x, const agg_entry *y, int vote);

/* Heap property over a[0..len) below `root`: no parent goes before a child. */
static void sift(agg_entry *a, int root, int len, before_fn before, int vote)
{
    for (;;) {
        int c = 2 * root + 1, m = root;
        if (c < len && before(&a[m], &a[c], vote))
            m = c;
        if (c + 1 < len && before(&a[m], &a[c + 1], vote))
            m = c + 1;
        if (m == root)
            return;
        agg_entry t = a[root];
        a[root] = a[m];
        a[m] = t;
        root = m;
    }
}

/* Sorts a[0..n) by `before` (a strict total order here, so no stability is
 * needed): insertion sort for the usual few beams, heap sort above. Not qsort:
 * glibc's may malloc, and this runs per query. */
static void sort_entries(agg_entry *a, int n, before_fn before, int vote)
{
    if (n <= 32) {
        for (int i = 1; i < n; i++) {
            agg_entry v = a[i];
            int j = i;
            for (; j > 0 && before(&v, &a[j - 1], vote); j--)
                a[j] = a[j - 1];
            a[j] = v;
        }
        return;
    }
    for (int i = n / 2 - 1; i >= 0; i--) /* heap: the entry that goes last on top */
        sift(a, i, n, before, vote);
    for (int end = n - 1; end > 0; end--) {
        agg_entry t = a[0];
        a[0] = a[end];
        a[end] = t;
        sift(a, 0, end, before, vote);
    }
}

int dp_dsi_aggregate(dp_dsi_agg how, int nm, const int *nb, const int32_t *const *docs, const float *const *sc,
                     int k, int32_t *out, float *out_score)
{
    if (k <= 0 || nm <= 0)
        return 0;
    long total = 0;
    for (int m = 0; m < nm; m++)
        if (nb[m] > 0)
            total += nb[m];
    agg_entry stack_e[AGG_STACK];
    agg_entry *e = stack_e;
    if (total > AGG_STACK) {
        e = malloc((size_t)total * sizeof *e);
        if (NULL == e) {
            dp_errorf(DP_ERR_NOMEM, "dp_dsi_aggregate: out of memory for %ld beams", total);
            return 0;
        }
    }

    /* p(m, i): softmax over member m's valid beams (max subtracted); joint: over
     * every member's valid beams at once, as if they were one member. */
    const int joint = DP_DSI_AGG_JOINT == how || DP_DSI_AGG_LOGITS == how; /* logits: the caller passes logits */
    int n = 0;
    for (int m0 = 0; m0 < nm;) {
        const int m1 = joint ? nm : m0 + 1;
        float mx = -INFINITY;
        int valid = 0;
        for (int m = m0; m < m1; m++)
            for (int i = 0; i < nb[m]; i++)
                if (docs[m][i] >= 0 || docs[m][i] == DP_DSI_ABSTAIN) {
                    valid++;
                    if (sc[m][i] > mx)
                        mx = sc[m][i];
                }
        const int first = n;
        double z = 0.0;
        for (int m = m0; m < m1; m++)
            for (int i = 0; i < nb[m]; i++) {
                if (docs[m][i] < 0 && docs[m][i] != DP_DSI_ABSTAIN)
                    continue;
                /* all -inf (or a NaN max): uniform over the beams */
                double w = isfinite(mx) ? exp((double)sc[m][i] - (double)mx) : 1.0;
                if (!(w >= 0.0)) /* NaN score: no weight */
                    w = 0.0;
                e[n] = (agg_entry){.doc = docs[m][i], .member = m, .beam = i, .p = (float)w};
                z += w;
                n++;
            }
        for (int j = first; j < n; j++)
            e[j].p = z > 0.0 ? (float)(e[j].p / z) : 1.0f / (float)valid;
        m0 = m1;
    }

    /* an abstention holds its share of its member's mass and is no document */
    int kept = 0;
    for (int j = 0; j < n; j++)
        if (e[j].doc != DP_DSI_ABSTAIN)
            e[kept++] = e[j];
    n = kept;

    /* Group by document (sorted by doc, member, beam: sums in a fixed order),
     * in place: group g is written to e[g], behind the entries still to read. */
    sort_entries(e, n, entry_before, 0);
    int ng = 0;
    for (int j = 0; j < n;) {
        const int32_t doc = e[j].doc;
        int32_t votes = 0, last_member = -1, best = INT32_MAX;
        double conf = 0.0;
        for (; j < n && e[j].doc == doc; j++) {
            conf += e[j].p;
            votes += e[j].member != last_member;
            last_member = e[j].member;
            best = e[j].beam < best ? e[j].beam : best;
        }
        e[ng++] = (agg_entry){.doc = doc, .member = votes, .beam = best, .p = (float)conf};
    }

    const int vote = DP_DSI_AGG_VOTE == how;
    sort_entries(e, ng, better, vote);
    int w = ng < k ? ng : k;
    for (int j = 0; j < w; j++) {
        out[j] = e[j].doc;
        if (out_score)
            out_score[j] = vote ? (float)e[j].member : e[j].p;
    }
    if (e != stack_e)
        free(e);
    return w;
}

void dp_dsi_metrics_add(dp_dsi_metrics *m, const int32_t *ranked, int n, int32_t gold)
{
    m->queries++;
    int pos = 0; /* 1-based rank among distinct documents */
    for (int i = 0; i < n && pos < 10; i++) {
        if (ranked[i] < 0)
            continue; /* an empty slot is no document */
        int dup = 0;
        for (int j = 0; j < i && !dup; j++)
            dup = ranked[j] == ranked[i];
        if (dup)
            continue;
        pos++;
        if (ranked[i] == gold) {
            m->hits1 += pos <= 1;
            m->hits5 += pos <= 5;
            m->hits10 += 1;
            m->mrr10 += 1.0 / pos;
            return;
        }
    }
}
