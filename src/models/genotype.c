/* Primitive names and derived-cell genotypes: checks, the JSON file the
 * search writes and `dptrain train --arch` reads (the reference's Genotype
 * namedtuple, quark0/darts cnn/genotypes.py), and a graphviz picture laid out
 * like the reference visualize.py. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/fsutil.h"
#include "dptrain/nas.h"
#include "models/json_pos.h"

enum { NPAIRS = 2 * DP_NAS_NODES };

static const char *const op_names[DP_NAS_NUM_OPS] = {
    "none",         "max_pool_3x3", "avg_pool_3x3", "skip_connect",
    "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5",
};
static const char *const cell_names[2] = {"normal", "reduce"};
static const char *const concat_names[2] = {"normal_concat", "reduce_concat"};

const char *dp_nas_op_name(int op) { return op >= 0 && op < DP_NAS_NUM_OPS ? op_names[op] : "?"; }

int dp_nas_op_parse(const char *name)
{
    for (int k = 0; k < DP_NAS_NUM_OPS; k++)
        if (!strcmp(name, op_names[k])) return k;
    return -1;
}

dp_status dp_nas_ops_parse(const char *list, int *ops, int *nops)
{
    *nops = 0;
    if (!strcmp(list, "all")) {
        for (int k = 0; k < DP_NAS_NUM_OPS; k++) ops[(*nops)++] = k;
        return DP_OK;
    }
    char name[64];
    for (const char *p = list;; p++) {
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= sizeof name)
            return dp_errorf(DP_ERR_ARG, "--ops: '%s': empty or overlong name in the list", list);
        memcpy(name, p, len);
        name[len] = 0;
        int op = dp_nas_op_parse(name);
        if (op < 0)
            return dp_errorf(DP_ERR_ARG, "--ops: unknown op '%s' (known: all, or a list of none max_pool_3x3 "
                             "avg_pool_3x3 skip_connect sep_conv_3x3 sep_conv_5x5 dil_conv_3x3 dil_conv_5x5)", name);
        for (int k = 0; k < *nops; k++)
            if (ops[k] == op) return dp_errorf(DP_ERR_ARG, "--ops: '%s' is listed twice", name);
        ops[(*nops)++] = op;
        p += len;
        if (!*p) return DP_OK;
    }
}

static const int *cell_ops(const dp_genotype *g, int t) { return dp_genotype_cops(g, t); }
static const int *cell_ins(const dp_genotype *g, int t) { return dp_genotype_cins(g, t); }

/* "normal", "reduce", or "cells[3]" for messages */
static const char *cell_label(const dp_genotype *g, int t, char *buf, size_t n)
{
    if (g->layers <= 0) return cell_names[t];
    snprintf(buf, n, "cells[%d]", t);
    return buf;
}

dp_status dp_genotype_check(const dp_genotype *g)
{
    if (g->layers < 0 || g->layers > DP_NAS_MAX_CELLS)
        return dp_errorf(DP_ERR_FORMAT, "cells: %d of them, a genotype holds 1 to %d (or a shared pair)", g->layers,
                         DP_NAS_MAX_CELLS);
    char lb[24];
    for (int t = 0; t < dp_genotype_cells(g); t++)
        for (int k = 0; k < NPAIRS; k++) {
            int op = cell_ops(g, t)[k], in = cell_ins(g, t)[k], node = k / 2;
            if (op == DP_NAS_NONE)
                return dp_errorf(DP_ERR_FORMAT, "%s[%d][0]: 'none' cannot be a kept edge of node %d",
                                 cell_label(g, t, lb, sizeof lb), k, node);
            if (op < 0 || op >= DP_NAS_NUM_OPS)
                return dp_errorf(DP_ERR_FORMAT, "%s[%d][0]: op %d is not a primitive", cell_label(g, t, lb, sizeof lb),
                                 k, op);
            if (in < 0 || in >= node + 2)
                return dp_errorf(DP_ERR_FORMAT, "%s[%d][1]: input %d is not an earlier state of node %d",
                                 cell_label(g, t, lb, sizeof lb), k, in, node);
        }
    return DP_OK;
}

/* The normal cells of stage 0..2 (before, between and after the two reductions) of a `layers`-cell network. */
static int stage_len(int stage, int layers)
{
    const int r1 = layers / 3, r2 = 2 * layers / 3;
    const int n = stage == 0 ? r1 : stage == 1 ? r2 - r1 - 1 : layers - r2 - 1;
    return n > 0 ? n : 0;
}

/* The first layer of stage 0..2, or reduction 3..4. */
static int stage_start(int stage, int layers)
{
    const int r1 = layers / 3, r2 = 2 * layers / 3;
    return stage == 0 ? 0 : stage == 1 ? r1 + 1 : stage == 2 ? r2 + 1 : stage == 3 ? r1 : r2;
}

int dp_genotype_layer_cell(const dp_genotype *g, int i, int layers)
{
    if (g->layers <= 0) return dp_nas_layer_reduces(i, layers);
    if (layers == g->layers) return i;
    if (dp_nas_layer_reduces(i, layers)) {
        const int r = stage_start(i == layers / 3 ? 3 : 4, g->layers);
        return dp_nas_layer_reduces(r, g->layers) ? r : -1;
    }
    int stage = 0;
    while (stage < 2 && i >= stage_start(stage + 1, layers)) stage++;
    const int pos = i - stage_start(stage, layers), len = stage_len(stage, layers), glen = stage_len(stage, g->layers);
    if (glen == 0) return -1;
    return stage_start(stage, g->layers) + (int)((long)pos * glen / len);
}

/* dp_errmsg()'s buffer is the one dp_errorf writes: copy it first. */
static dp_status with_path(dp_status rc, const char *path)
{
    char msg[512];
    snprintf(msg, sizeof msg, "%s", dp_errmsg());
    return dp_errorf(rc, "%s: %s", path, msg);
}

/* ---- JSON ---- */

static const int concat[DP_NAS_NODES] = {2, 3, 4, 5};

/* The reductions of a `layers`-cell network: 1 or 2 distinct layers into r; returns how many. */
static int reductions(int layers, int *r)
{
    r[0] = layers / 3, r[1] = 2 * layers / 3;
    return r[1] != r[0] ? 2 : 1;
}

/* cell t's [op, input] pairs into arr; 0 when cJSON runs out of memory */
static int cell_to_json(const dp_genotype *g, int t, cJSON *arr)
{
    for (int k = 0; arr && k < NPAIRS; k++) {
        cJSON *pair = cJSON_CreateArray();
        if (!pair || !cJSON_AddItemToArray(arr, pair)) {
            cJSON_Delete(pair);
            return 0;
        }
        if (!cJSON_AddItemToArray(pair, cJSON_CreateString(dp_nas_op_name(cell_ops(g, t)[k]))) ||
            !cJSON_AddItemToArray(pair, cJSON_CreateNumber(cell_ins(g, t)[k])))
            return 0;
    }
    return arr != NULL;
}

/* NULL when cJSON runs out of memory (it would otherwise drop items silently). */
static cJSON *to_json(const dp_genotype *g)
{
    cJSON *root = cJSON_CreateObject();
    int ok = root != NULL;
    if (ok && g->layers > 0) {
        cJSON *cells = cJSON_AddArrayToObject(root, "cells");
        ok = cells != NULL;
        for (int t = 0; ok && t < g->layers; t++) {
            cJSON *cell = cJSON_CreateArray();
            ok = cell && cJSON_AddItemToArray(cells, cell);
            if (!ok) cJSON_Delete(cell);
            ok = ok && cell_to_json(g, t, cell);
        }
        int r[2], nr = reductions(g->layers, r);
        ok = ok && cJSON_AddItemToObject(root, "reductions", cJSON_CreateIntArray(r, nr)) &&
             cJSON_AddItemToObject(root, "concat", cJSON_CreateIntArray(concat, DP_NAS_NODES));
    }
    for (int t = 0; ok && g->layers <= 0 && t < 2; t++) {
        cJSON *cell = cJSON_AddArrayToObject(root, cell_names[t]);
        ok = cell_to_json(g, t, cell) &&
             cJSON_AddItemToObject(root, concat_names[t], cJSON_CreateIntArray(concat, DP_NAS_NODES));
    }
    if (!ok) cJSON_Delete(root);
    return ok ? root : NULL;
}

static char *print_json(const dp_genotype *g, int pretty)
{
    cJSON *root = to_json(g);
    char *s = root ? (pretty ? cJSON_Print(root) : cJSON_PrintUnformatted(root)) : NULL;
    cJSON_Delete(root);
    return s;
}

int dp_genotype_format(const dp_genotype *g, char *buf, size_t n)
{
    char *s = print_json(g, 0);
    if (!s) {
        if (n) buf[0] = 0;
        return -1;
    }
    int len = snprintf(buf, n, "%s", s);
    cJSON_free(s);
    return len;
}

dp_status dp_genotype_save(const dp_genotype *g, const char *path)
{
    dp_status rc = dp_genotype_check(g);
    if (rc != DP_OK) return with_path(rc, path);
    char *s = print_json(g, 1);
    if (!s) return dp_errorf(DP_ERR_NOMEM, "%s: out of memory", path);
    size_t len = strlen(s);
    char *text = malloc(len + 2);
    if (text) {
        memcpy(text, s, len);
        memcpy(text + len, "\n", 2);
    }
    cJSON_free(s);
    if (!text) return dp_errorf(DP_ERR_NOMEM, "%s: out of memory", path);
    rc = dp_write_file_atomic(path, text, len + 1);
    free(text);
    return rc;
}

static int as_int(const cJSON *v, int *out)
{
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d == floor(d) && d >= -1e9 && d <= 1e9)) return 0;
    *out = (int)d;
    return 1;
}

static const char *kind_of(const cJSON *v)
{
    return cJSON_IsArray(v) ? "an array" : cJSON_IsObject(v) ? "an object" : cJSON_IsString(v) ? "a string"
         : cJSON_IsNumber(v) ? "a number" : cJSON_IsBool(v) ? "a boolean" : "null";
}

#define BAD(...) return dp_errorf(DP_ERR_FORMAT, __VA_ARGS__)

static dp_status parse_cell(const char *path, const cJSON *arr, const char *name, int *ops, int *ins)
{
    if (!cJSON_IsArray(arr)) BAD("%s: %s: is %s, not an array of [op, input] pairs", path, name, kind_of(arr));
    int n = cJSON_GetArraySize(arr);
    if (n != NPAIRS) BAD("%s: %s: %d pairs, a cell has %d (two per node)", path, name, n, NPAIRS);
    for (int k = 0; k < NPAIRS; k++) {
        const cJSON *pair = cJSON_GetArrayItem(arr, k);
        if (!cJSON_IsArray(pair) || cJSON_GetArraySize(pair) != 2)
            BAD("%s: %s[%d]: not an [op, input] pair", path, name, k);
        const cJSON *op = cJSON_GetArrayItem(pair, 0), *in = cJSON_GetArrayItem(pair, 1);
        if (!cJSON_IsString(op)) BAD("%s: %s[%d][0]: op is %s, not a string", path, name, k, kind_of(op));
        ops[k] = dp_nas_op_parse(op->valuestring);
        if (ops[k] < 0)
            BAD("%s: %s[%d][0]: unknown op '%s' (known: max_pool_3x3 avg_pool_3x3 skip_connect sep_conv_3x3 "
                "sep_conv_5x5 dil_conv_3x3 dil_conv_5x5)", path, name, k, op->valuestring);
        if (!as_int(in, &ins[k])) BAD("%s: %s[%d][1]: input is not an integer", path, name, k);
    }
    return DP_OK;
}

/* arr must be the n integers want[0..n) */
static int ints_are(const cJSON *arr, const int *want, int n)
{
    int m = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : -1, v;
    for (int k = 0; k < m && m == n; k++)
        if (!as_int(cJSON_GetArrayItem(arr, k), &v) || v != want[k]) m = -1;
    return m == n;
}

static dp_status parse_concat(const char *path, const cJSON *arr, const char *name)
{
    if (!ints_are(arr, concat, DP_NAS_NODES))
        BAD("%s: %s: must be [2, 3, 4, 5] (the cell outputs all four nodes)", path, name);
    return DP_OK;
}

/* The top level's keys into seen[] in the order of keys[]; each once, all of them. */
static dp_status gather_keys(const char *path, const cJSON *root, const char *const *keys, int n, const char *what,
                             const cJSON **seen)
{
    for (const cJSON *it = root->child; it; it = it->next) {
        int k = 0;
        while (k < n && strcmp(it->string, keys[k])) k++;
        if (k == n) BAD("%s: %s: unknown key (a genotype has %s)", path, it->string, what);
        if (seen[k]) BAD("%s: %s: key given twice", path, keys[k]);
        seen[k] = it;
    }
    for (int k = 0; k < n; k++)
        if (!seen[k]) BAD("%s: %s: missing key", path, keys[k]);
    return DP_OK;
}

/* {"cells": [...], "reductions": [...], "concat": [...]}: a cell per layer */
static dp_status cells_from_json(const char *path, const cJSON *root, dp_genotype *g)
{
    static const char *const keys[3] = {"cells", "reductions", "concat"};
    const cJSON *seen[3] = {0};
    dp_status rc = gather_keys(path, root, keys, 3, "cells, reductions, concat", seen);
    if (rc != DP_OK) return rc;
    int n = cJSON_IsArray(seen[0]) ? cJSON_GetArraySize(seen[0]) : -1, r[2];
    if (n < 1 || n > DP_NAS_MAX_CELLS)
        BAD("%s: cells: must be an array of 1 to %d cells, one per layer", path, DP_NAS_MAX_CELLS);
    g->layers = n;
    char name[24];
    for (int t = 0; t < n && rc == DP_OK; t++) {
        snprintf(name, sizeof name, "cells[%d]", t);
        rc = parse_cell(path, cJSON_GetArrayItem(seen[0], t), name, g->cell_op[t], g->cell_in[t]);
    }
    const int nr = reductions(n, r);
    char want[32];
    if (nr > 1) snprintf(want, sizeof want, "[%d, %d]", r[0], r[1]);
    else snprintf(want, sizeof want, "[%d]", r[0]);
    if (rc == DP_OK && !ints_are(seen[1], r, nr))
        BAD("%s: reductions: must be %s for %d cells (layers/3 and 2 layers/3)", path, want, n);
    if (rc == DP_OK) rc = parse_concat(path, seen[2], "concat");
    return rc;
}

static dp_status from_json(const char *path, const cJSON *root, dp_genotype *g)
{
    static const char *const keys[4] = {"normal", "normal_concat", "reduce", "reduce_concat"};
    if (!cJSON_IsObject(root)) BAD("%s: the top level is %s, not an object", path, kind_of(root));
    dp_status rc;
    if (cJSON_GetObjectItemCaseSensitive(root, "cells")) {
        rc = cells_from_json(path, root, g);
    } else {
        const cJSON *seen[4] = {0};
        rc = gather_keys(path, root, keys, 4, "normal, normal_concat, reduce, reduce_concat; or cells, reductions, "
                         "concat", seen);
        if (rc == DP_OK) rc = parse_cell(path, seen[0], "normal", g->normal_op, g->normal_in);
        if (rc == DP_OK) rc = parse_concat(path, seen[1], "normal_concat");
        if (rc == DP_OK) rc = parse_cell(path, seen[2], "reduce", g->reduce_op, g->reduce_in);
        if (rc == DP_OK) rc = parse_concat(path, seen[3], "reduce_concat");
    }
    if (rc == DP_OK && (rc = dp_genotype_check(g)) != DP_OK) return with_path(rc, path);
    return rc;
}

dp_status dp_genotype_load(const char *path, dp_genotype *g)
{
    memset(g, 0, sizeof *g);
    /* a genotype is well under 1 KiB: anything over 1 MiB is not one */
    char *text = NULL;
    dp_status rc = dp_read_text(path, 1 << 20, &text);
    if (rc != DP_OK) return rc;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 0);
    int line, col;
    if (!root) {
        dp_json_line_col(text, end ? end : cJSON_GetErrorPtr(), &line, &col);
        rc = dp_errorf(DP_ERR_FORMAT, "%s: not JSON (syntax error at line %d, column %d)", path, line, col);
    } else if (end[strspn(end, " \t\r\n")]) {
        dp_json_line_col(text, end, &line, &col);
        rc = dp_errorf(DP_ERR_FORMAT, "%s: trailing characters after the JSON value at line %d, column %d", path,
                       line, col);
    } else {
        rc = from_json(path, root, g);
    }
    cJSON_Delete(root);
    free(text);
    return rc;
}

/* ---- graphviz ---- */

dp_status dp_genotype_write_dot(const dp_genotype *g, int t, const char *path)
{
    dp_status rc = dp_genotype_check(g);
    if (rc != DP_OK) return with_path(rc, path);
    if (t < 0 || t >= dp_genotype_cells(g))
        return dp_errorf(DP_ERR_ARG, "%s: cell %d of a genotype of %d", path, t, dp_genotype_cells(g));
    static const char *const inputs[2] = {"c_{k-2}", "c_{k-1}"};
    char text[4096], graph[24];
    int n = 0;
    if (g->layers > 0) snprintf(graph, sizeof graph, "cell%d", t);
    else snprintf(graph, sizeof graph, "%s", cell_names[t]);
#define EMIT(...) n += snprintf(text + n, sizeof text - (size_t)n, __VA_ARGS__)
    EMIT("digraph %s {\n  rankdir=LR;\n  edge [fontsize=20, fontname=\"times\"];\n"
         "  node [style=filled, shape=rect, align=center, fontsize=20, height=0.5, width=0.5, penwidth=2, "
         "fontname=\"times\"];\n", graph);
    EMIT("  \"%s\" [fillcolor=darkseagreen2];\n  \"%s\" [fillcolor=darkseagreen2];\n", inputs[0], inputs[1]);
    for (int i = 0; i < DP_NAS_NODES; i++) EMIT("  \"%d\" [fillcolor=lightblue];\n", i);
    for (int k = 0; k < NPAIRS; k++) {
        int in = cell_ins(g, t)[k];
        char from[16];
        if (in < 2) snprintf(from, sizeof from, "%s", inputs[in]);
        else snprintf(from, sizeof from, "%d", in - 2);
        EMIT("  \"%s\" -> \"%d\" [label=\"%s\", fillcolor=gray];\n", from, k / 2, dp_nas_op_name(cell_ops(g, t)[k]));
    }
    EMIT("  \"c_{k}\" [fillcolor=palegoldenrod];\n");
    for (int i = 0; i < DP_NAS_NODES; i++) EMIT("  \"%d\" -> \"c_{k}\" [fillcolor=gray];\n", i);
    EMIT("}\n");
#undef EMIT
    return dp_write_file_atomic(path, text, strlen(text));
}

int dp_genotype_normal_most(const dp_genotype *g, unsigned ops)
{
    int most = 0;
    for (int t = 0; t < dp_genotype_cells(g); t++) {
        int n = 0;
        for (int k = 0; k < NPAIRS && !dp_genotype_cell_reduces(g, t); k++) n += ops >> cell_ops(g, t)[k] & 1u;
        most = n > most ? n : most;
    }
    return most;
}

int dp_genotype_skips(const dp_genotype *g) { return dp_genotype_normal_most(g, 1u << DP_NAS_SKIP_CONNECT); }
