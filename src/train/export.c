/* `dptrain export`'s library half: a run loaded by dp_trained_load written as
 * safetensors, with the metadata a PyTorch reader needs (benchmarks/torch_check.py
 * is one). */
#include "dptrain/export.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/data.h"
#include "dptrain/safetensors.h"

/* The shortest decimal that reads back as the same float. */
static void float_text(float v, char *buf, size_t cap)
{
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(buf, cap, "%.*g", digits, (double)v);
        if (strtof(buf, NULL) == v) return;
    }
}

/* What the trainer fed the network: x = (v / scale - mean) / std per channel, scale 255 for
 * u8 pixels and 1 for vector features. The statistics are the checkpoint's (norm=), else the
 * run's data set's manifest's, else the loaders' defaults; the manifest also says the schema.
 * Written as the floats the trainer computed with. */
static char *normalisation(const dp_trained *t, const dp_manifest *man)
{
    int vec = man && man->schema.kind == DP_SCHEMA_VECTOR_F32, c = t->shape.c;
    int from_man = !t->mean && man && man->nstats == c;
    size_t cap = 64 + (size_t)c * 40, len = 0;
    char *text = malloc(cap), num[32];
    if (!text) return NULL;
    for (int part = 0; part < 2; part++) {
        len += (size_t)snprintf(text + len, cap - len, part ? "], \"std\": [" : "{\"scale\": %d, \"mean\": [",
                                vec ? 1 : 255);
        for (int ch = 0; ch < c; ch++) {
            float v = part ? (t->std ? t->std[ch] : from_man ? (float)man->std[ch] : vec ? 1.0f : DP_IMAGE_DEFAULT_STD)
                           : (t->mean ? t->mean[ch] : from_man ? (float)man->mean[ch] : vec ? 0.0f : DP_IMAGE_DEFAULT_MEAN);
            float_text(v, num, sizeof num);
            len += (size_t)snprintf(text + len, cap - len, "%s%s", ch ? ", " : "", num);
        }
    }
    snprintf(text + len, cap - len, "]}");
    return text;
}

/* The data set's class names as a JSON array, or NULL when it has none. */
static char *class_names(const dp_manifest *man)
{
    if (!man || !man->class_names) return NULL;
    cJSON *a = cJSON_CreateArray();
    for (int k = 0; k < man->nclass_names; k++) cJSON_AddItemToArray(a, cJSON_CreateString(man->class_names[k]));
    char *text = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    return text;
}

dp_status dp_export_safetensors(const dp_trained *t, const char *path, const char *version)
{
    char input[64], classes[16];
    snprintf(input, sizeof input, "[%d, %d, %d]", t->shape.c, t->shape.h, t->shape.w);
    snprintf(classes, sizeof classes, "%d", t->shape.classes);
    dp_manifest *man = NULL;
    if (t->data[0] && dp_manifest_load(t->data, &man) != DP_OK) man = NULL; /* the data may have moved */
    char *norm = normalisation(t, man), *names = class_names(man);
    char *config = malloc(DP_CONFIG_TEXT_CAP);
    dp_status rc = DP_OK;
    if (!norm || !config || (man && man->class_names && !names))
        rc = dp_errorf(DP_ERR_NOMEM, "%s: out of memory for the metadata", path);
    if (rc == DP_OK) {
        dp_train_config_format(&t->cfg, config, DP_CONFIG_TEXT_CAP);
        const dp_st_meta meta[] = {
            {"format", "pt"}, /* what Hugging Face's loaders look for in a PyTorch file */
            {"dptrain.version", version},
            {"dptrain.model", t->model->name},
            {"dptrain.description", t->model->desc}, /* NULL (left out) for a genotype's network */
            {"dptrain.input", input},
            {"dptrain.classes", classes},
            {"dptrain.class_names", names},          /* NULL (left out) without names in the manifest */
            {"dptrain.normalize", norm},
            {"dptrain.config", config},
        };
        rc = dp_safetensors_write_params(path, &t->model->params, meta, (int)(sizeof meta / sizeof meta[0]));
    }
    free(config);
    free(norm);
    free(names);
    dp_manifest_free(man);
    return rc;
}
