/* A trained run out to other frameworks: `dptrain export`. */
#ifndef DPTRAIN_EXPORT_H
#define DPTRAIN_EXPORT_H

#include "dptrain/trained.h"

#ifdef __cplusplus
extern "C" {
#endif

/*! Writes the run's parameters and batch-norm buffers to `path` as safetensors (dptrain/safetensors.h):
 *  F32, PyTorch's state_dict names and layouts, atomically. The metadata says what a reader needs to
 *  rebuild and feed the network: format=pt, dptrain.version (`version`), dptrain.model (the name),
 *  dptrain.description (the network description's JSON, when the model has one), dptrain.input
 *  ("[C, H, W]"), dptrain.classes, dptrain.normalize ({"mean": [..], "std": [..]} per channel, as the
 *  trainer normalised its inputs) and dptrain.config (the run's key=value configuration).
 *  @return DP_OK, DP_ERR_IO naming the file, DP_ERR_NOMEM. */
dp_status dp_export_safetensors(const dp_trained *t, const char *path, const char *version);

#ifdef __cplusplus
}
#endif
#endif
