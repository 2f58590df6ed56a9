/* Where a JSON parse stopped, for messages (cJSON gives a pointer into the text). */
#ifndef DP_MODELS_JSON_POS_H
#define DP_MODELS_JSON_POS_H

/* 1-based line and column of `at` in `text`. */
void dp_json_line_col(const char *text, const char *at, int *line, int *col);

#endif
