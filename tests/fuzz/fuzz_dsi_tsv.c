/* Fuzz target: dsi-prepare's TSV inputs (src/dsi/corpus.c): a queries file
 * (ORCAS or plain), then a docs file attaching text to the documents it
 * named. Input: queries, FUZZ_CUT, docs. */
#include <stdlib.h>

#include "dsi/data_internal.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *part[2];
    size_t len[2];
    fuzz_split(data, size, part, len, 2);
    const char *qpath = fuzz_write("queries.tsv", part[0], len[0], 0);
    const char *dpath = fuzz_write("docs.tsv", part[1], len[1], 1);
    dsi_corpus c = {0};
    dp_status rc = dsi_read_queries_tsv(qpath, &c);
    fuzz_expect_named(rc, qpath);
    if (rc == DP_OK) {
        uint8_t *keep = malloc((size_t)c.docs.n + 1);
        if (!keep) abort();
        for (long d = 0; d < c.docs.n; d++) keep[d] = (uint8_t)(d % 3 != 1); /* drop some, as prepare does */
        rc = dsi_read_docs_tsv(dpath, &c, keep);
        fuzz_expect_named(rc, dpath);
        free(keep);
    }
    dsi_corpus_free(&c);
    return 0;
}
