/* The parsed form of a network description, between netdesc_parse.c and netdesc_build.c. */
#ifndef DP_MODELS_NETDESC_INTERNAL_H
#define DP_MODELS_NETDESC_INTERNAL_H

#include <stddef.h>

#include "dptrain/status.h"

typedef enum nd_kind {
    ND_CONV, ND_BATCHNORM, ND_RELU, ND_GELU, ND_TANH, ND_SIGMOID, ND_MAXPOOL, ND_AVGPOOL, ND_GLOBAL_AVGPOOL,
    ND_FLATTEN, ND_LINEAR, ND_DROPOUT, ND_RESIDUAL, ND_KINDS
} nd_kind;

#define ND_CLASSES (-1)   /* linear "out": "classes" */
#define ND_NAME_CAP 48
#define ND_PATH_CAP 256
#define ND_MAX_DEPTH 8    /* residuals inside residuals */
#define ND_MAX_LAYERS 4096

typedef struct nd_layer {
    nd_kind kind;
    char name[ND_NAME_CAP];  /* its "name", or its index in its list */
    char path[ND_PATH_CAP];  /* "layers[4] (residual) layers[1] (conv)", for messages */
    int out;                 /* conv, linear (ND_CLASSES: the number of classes) */
    int kernel, stride, padding, dilation, groups; /* conv; pools use kernel, stride, padding */
    int bias, affine;
    float eps, momentum;     /* batchnorm */
    float p;                 /* dropout */
    struct nd_layer *body;   /* residual */
    int nbody;
} nd_layer;

typedef struct nd_desc {
    char name[32];
    nd_layer *layers;
    int n;
} nd_desc;

extern const char *const nd_kind_names[ND_KINDS];

/* "<source>: <path>: <what>" (no path: "<source>: <what>") with status st, set as dp_errorf does. */
dp_status nd_errorf(dp_status st, const char *source, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Parses and checks a description; the source names it in messages. */
dp_status nd_parse(const char *json, const char *source, nd_desc *out);
void nd_desc_free(nd_desc *d);
/* The canonical compact JSON (every field, defaults filled in, fixed order): malloc'd, NULL when out of memory. */
char *nd_canonical(const nd_desc *d);

#endif
