/* Network descriptions: a model as a JSON list of layers (docs/models.md).
 *
 *   {"name": "cnn", "layers": [{"type": "conv", "name": "conv1", "out": 32, "padding": 1}, {"type": "relu"}, ...]}
 *
 * The parser checks every field (unknown fields and types are errors, so a typo cannot pass silently); the
 * builder infers the shapes from the input, declares the parameters in use order through the nn.h modules
 * and runs the forward over the core ops. mlp, cnn and resnet20 ship as descriptions embedded in the binary. */
#ifndef DPTRAIN_NETDESC_H
#define DPTRAIN_NETDESC_H

#include "dptrain/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/*! --model ARG: a shipped name ("mlp", "cnn", "resnet20") or a path to a .json file -> malloc'd JSON text.
 *  DP_ERR_ARG names an unknown name, DP_ERR_IO a file that does not read. */
dp_status dp_netdesc_load(const char *model_arg, char **json_out);

/*! 1 when ARG names a shipped description (no file is read). */
int dp_netdesc_shipped(const char *model_arg);

/*! Parses and checks a description without building it (no shape needed): for flag checks before the
 *  ranks start. Errors as dp_netdesc_build's, shapes aside. */
dp_status dp_netdesc_check(const char *json, const char *source);

/*! Builds a model from a description for inputs of `in`; `source` names it in messages (a file or a shipped
 *  name). m->desc gets the canonical compact JSON (defaults filled in, fixed key order, one line), m->name the
 *  description's name. Parameters are finalised, not initialised (dp_params_init). Errors name the layer by
 *  path and type ("layers[4] (residual) layers[1] (conv)") and the shapes that do not fit. */
dp_status dp_netdesc_build(const char *json, const char *source, const dp_model_shape *in, dp_model **out);

/*! One line of a model's summary: a layer (or a residual's shortcut) with its output shape per sample. */
typedef struct dp_netdesc_row {
    char name[64];    /* parameter prefix without the dot, e.g. "layer2.0.body.3" */
    char type[16];    /* "conv", "batchnorm", ..., "residual", "shortcut" */
    int depth;        /* 0 at the top, +1 inside each residual */
    int ndim;         /* of the per-sample shape: 1 ([F]) or 3 ([C, H, W]) */
    long shape[3];
    long params;      /* trainable floats of this layer itself (a residual: its body and shortcut) */
    long buffers;     /* running statistics */
    double flops;     /* 2 x multiply-adds of conv/linear (a residual: its body and shortcut) */
} dp_netdesc_row;

/*! The rows of a model built by dp_netdesc_build, in forward order; 0 rows for any other model. */
int dp_netdesc_rows(const dp_model *m, const dp_netdesc_row **rows);

#ifdef __cplusplus
}
#endif
#endif
