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

static const int *cell_ops(const dp_genotype *g, int t) { return t ? g->reduce_op : g->normal_op; }
static const int *cell_ins(const dp_genotype *g, int t) { return t ? g->reduce_in : g->normal_in; }

dp_status dp_genotype_check(const dp_genotype *g)
{
    for (int t = 0; t < 2; t++)
        for (int k = 0; k < NPAIRS; k++) {
            int op = cell_ops(g, t)[k], in = cell_ins(g, t)[k], node = k / 2;
            if (op == DP_NAS_NONE)
                return dp_errorf(DP_ERR_FORMAT, "%s[%d][0]: 'none' cannot be a kept edge of node %d", cell_names[t],
                                 k, node);
            if (op < 0 || op >= DP_NAS_NUM_OPS)
                return dp_errorf(DP_ERR_FORMAT, "%s[%d][0]: op %d is not a primitive", cell_names[t], k, op);
            if (in < 0 || in >= node + 2)
                return dp_errorf(DP_ERR_FORMAT, "%s[%d][1]: input %d is not an earlier state of node %d",
                                 cell_names[t], k, in, node);
        }
    return DP_OK;
}

/* dp_errmsg()'s buffer is the one dp_errorf writes: copy it first. */
static dp_status with_path(dp_status rc, const char *path)
{
    char msg[512];
    snprintf(msg, sizeof msg, "%s", dp_errmsg());
    return dp_errorf(rc, "%s: %s", path, msg);
}

/* ---- JSON ---- */

/* NULL when cJSON runs out of memory (it would otherwise drop items silently). */
static cJSON *to_json(const dp_genotype *g)
{
    static const int concat[DP_NAS_NODES] = {2, 3, 4, 5};
    cJSON *root = cJSON_CreateObject();
    int ok = root != NULL;
    for (int t = 0; ok && t < 2; t++) {
        cJSON *cell = cJSON_AddArrayToObject(root, cell_names[t]);
        ok = cell != NULL;
        for (int k = 0; ok && k < NPAIRS; k++) {
            cJSON *pair = cJSON_CreateArray();
            if (!pair || !cJSON_AddItemToArray(cell, pair)) {
                cJSON_Delete(pair);
                ok = 0;
                break;
            }
            ok = cJSON_AddItemToArray(pair, cJSON_CreateString(dp_nas_op_name(cell_ops(g, t)[k]))) &&
                 cJSON_AddItemToArray(pair, cJSON_CreateNumber(cell_ins(g, t)[k]));
        }
        ok = ok && cJSON_AddItemToObject(root, concat_names[t], cJSON_CreateIntArray(concat, DP_NAS_NODES));
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

static dp_status parse_cell(const char *path, const cJSON *arr, int t, int *ops, int *ins)
{
    const char *name = cell_names[t];
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

static dp_status parse_concat(const char *path, const cJSON *arr, int t)
{
    int n = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : -1, v;
    for (int k = 0; k < n && n == DP_NAS_NODES; k++)
        if (!as_int(cJSON_GetArrayItem(arr, k), &v) || v != k + 2) n = -1;
    if (n != DP_NAS_NODES) BAD("%s: %s: must be [2, 3, 4, 5] (the cell outputs all four nodes)", path, concat_names[t]);
    return DP_OK;
}

static dp_status from_json(const char *path, const cJSON *root, dp_genotype *g)
{
    static const char *const keys[4] = {"normal", "normal_concat", "reduce", "reduce_concat"};
    if (!cJSON_IsObject(root)) BAD("%s: the top level is %s, not an object", path, kind_of(root));
    const cJSON *seen[4] = {0};
    for (const cJSON *it = root->child; it; it = it->next) {
        int k = 0;
        while (k < 4 && strcmp(it->string, keys[k])) k++;
        if (k == 4) BAD("%s: %s: unknown key (a genotype has normal, normal_concat, reduce, reduce_concat)", path,
                        it->string);
        if (seen[k]) BAD("%s: %s: key given twice", path, keys[k]);
        seen[k] = it;
    }
    for (int k = 0; k < 4; k++)
        if (!seen[k]) BAD("%s: %s: missing key", path, keys[k]);
    dp_status rc = parse_cell(path, seen[0], 0, g->normal_op, g->normal_in);
    if (rc == DP_OK) rc = parse_concat(path, seen[1], 0);
    if (rc == DP_OK) rc = parse_cell(path, seen[2], 1, g->reduce_op, g->reduce_in);
    if (rc == DP_OK) rc = parse_concat(path, seen[3], 1);
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

dp_status dp_genotype_write_dot(const dp_genotype *g, int reduce, const char *path)
{
    dp_status rc = dp_genotype_check(g);
    if (rc != DP_OK) return with_path(rc, path);
    static const char *const inputs[2] = {"c_{k-2}", "c_{k-1}"};
    char text[4096];
    int t = reduce ? 1 : 0, n = 0;
#define EMIT(...) n += snprintf(text + n, sizeof text - (size_t)n, __VA_ARGS__)
    EMIT("digraph %s {\n  rankdir=LR;\n  edge [fontsize=20, fontname=\"times\"];\n"
         "  node [style=filled, shape=rect, align=center, fontsize=20, height=0.5, width=0.5, penwidth=2, "
         "fontname=\"times\"];\n", cell_names[t]);
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

int dp_genotype_skips(const dp_genotype *g)
{
    int n = 0;
    for (int k = 0; k < NPAIRS; k++) n += g->normal_op[k] == DP_NAS_SKIP_CONNECT;
    return n;
}
