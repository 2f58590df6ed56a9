/* The table of DSI query encoders (see encoder.h). */
#include "dsi/encoder.h"

extern const dp_dsi_encoder_ops dp_dsi_encoder_bag_mlp;
extern const dp_dsi_encoder_ops dp_dsi_encoder_transformer;
extern const dp_dsi_encoder_ops dp_dsi_encoder_idf, dp_dsi_encoder_idf_mean; /* encoder_idf.c */

static const dp_dsi_encoder_ops *const table[] = {
    [DP_DSI_ENCODER_BAG_MLP] = &dp_dsi_encoder_bag_mlp,
    [DP_DSI_ENCODER_TRANSFORMER] = &dp_dsi_encoder_transformer,
    [DP_DSI_ENCODER_IDF] = &dp_dsi_encoder_idf,
    [DP_DSI_ENCODER_IDF_MEAN] = &dp_dsi_encoder_idf_mean,
};

const dp_dsi_encoder_ops *dp_dsi_encoder_of(int kind)
{
    return kind >= 0 && kind < (int)(sizeof table / sizeof table[0]) ? table[kind] : NULL;
}
