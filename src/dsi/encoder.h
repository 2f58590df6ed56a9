/* The DSI model's query encoder behind one interface: bags of embedding rows
 * in, h [nbags, hdim] out, on the tape. The model (model.c) builds its head or
 * decoder on whatever width the encoder gives; the member loader checks a
 * file's sizes against what the encoder needs before building anything.
 * Another encoder is one file with a dp_dsi_encoder_ops and an entry in
 * encoder.c's table. Private to src/dsi. */
#ifndef DP_DSI_ENCODER_H
#define DP_DSI_ENCODER_H

#include <stdint.h>

#include "dptrain/dsi.h"

typedef struct dp_dsi_encoder_ops {
    const char *name;
    /*! Declares the encoder's parameters (the embedding table into m->emb, the
     *  rest into m->dense, before the head's) and says the width of h.
     *  *self holds its modules (free with free_self). */
    dp_status (*build)(dp_dsi_model *m, void **self, int *hdim);
    /*! rows/offsets: bags of embedding rows (offsets[nbags] entries). */
    dp_tensor *(*forward)(dp_ctx *c, const dp_dsi_model *m, const void *self, const int32_t *rows,
                          const int32_t *offsets, int nbags);
    /*! Optional (NULL: nothing to learn from data): after the random init and
     *  before training, sets what the encoder takes from the member's examples
     *  (every rank of the member computes the same from the same data). */
    dp_status (*fit)(dp_dsi_model *m, void *self, const dp_dsi_set *const *sets, int nsets);
    /*! The fewest dense floats its weights take for cfg (a hostile file is refused before it is built). */
    uint64_t (*dense_floats)(const dp_dsi_model_config *cfg);
    void (*free_self)(void *self);
} dp_dsi_encoder_ops;

/*! The encoder of kind (dp_dsi_model_config.encoder), or NULL. */
const dp_dsi_encoder_ops *dp_dsi_encoder_of(int kind);

#endif
