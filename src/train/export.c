/* `dptrain export`'s library half: a run loaded by dp_trained_load written as
 * safetensors, with the metadata a PyTorch reader needs (benchmarks/torch_check.py
 * is one). */
#include "dptrain/export.h"

#include <stdio.h>
#include <string.h>

#include "dptrain/data.h"
#include "dptrain/safetensors.h"

/* The trainer's normalisation, recovered from the byte -> float table it uses:
 * lut[v] = (v / 255 - mean) / std, so std = 1 / (lut[255] - lut[0]) and mean = -lut[0] std.
 * DATA: once branch `data` normalises with the manifest's per-channel statistics, these are
 * the run's data set's (its manifest's mean/std lines, t->data), not the default table's. */
static void normalisation(const dp_trained *t, char *buf, size_t cap)
{
    float lut[256];
    dp_image_norm_lut(lut);
    double std = 1.0 / ((double)lut[255] - (double)lut[0]), mean = -(double)lut[0] * std;
    char m[512] = "", s[512] = "";
    size_t lm = 0, ls = 0;
    for (int c = 0; c < t->shape.c && lm < sizeof m - 32 && ls < sizeof s - 32; c++) {
        lm += (size_t)snprintf(m + lm, sizeof m - lm, "%s%.7g", c ? ", " : "", mean);
        ls += (size_t)snprintf(s + ls, sizeof s - ls, "%s%.7g", c ? ", " : "", std);
    }
    snprintf(buf, cap, "{\"mean\": [%s], \"std\": [%s]}", m, s);
}

dp_status dp_export_safetensors(const dp_trained *t, const char *path, const char *version)
{
    char input[64], classes[16], norm[1100], config[DP_CONFIG_TEXT_CAP];
    snprintf(input, sizeof input, "[%d, %d, %d]", t->shape.c, t->shape.h, t->shape.w);
    snprintf(classes, sizeof classes, "%d", t->shape.classes);
    normalisation(t, norm, sizeof norm);
    dp_train_config_format(&t->cfg, config, sizeof config);
    const dp_st_meta meta[] = {
        {"format", "pt"}, /* what Hugging Face's loaders look for in a PyTorch file */
        {"dptrain.version", version},
        {"dptrain.model", t->model->name},
        {"dptrain.description", t->model->desc}, /* NULL (left out) for a genotype's network */
        {"dptrain.input", input},
        {"dptrain.classes", classes},
        {"dptrain.normalize", norm},
        {"dptrain.config", config},
    };
    return dp_safetensors_write_params(path, &t->model->params, meta, (int)(sizeof meta / sizeof meta[0]));
}
