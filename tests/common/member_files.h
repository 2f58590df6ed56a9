/* Hostile member files for the refusal tests (test_sizes, test_dsi_encoder_idf, test_dsi_lexical): a saved
 * checkpoint rewritten with one section replaced or dropped, and the check that loading it fails naming
 * what is wrong. Both fail the calling Criterion test on any other outcome. */
#ifndef DP_TEST_MEMBER_FILES_H
#define DP_TEST_MEMBER_FILES_H

#include <stdint.h>

/* The checkpoint at path rewritten with section tag's bytes replaced by data [size] (size 0: dropped). */
void tm_rewrite_section(const char *path, uint32_t tag, const void *data, uint64_t size);
/* dp_dsi_member_load(path) fails with DP_ERR_FORMAT and a message naming path and what. */
void tm_expect_rejected(const char *path, const char *what);

#endif
