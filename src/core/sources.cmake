dp_room(core
  src/core/status.c
  src/core/arena.c
  src/core/tape.c
  src/core/rng.c
  src/core/ops_dense.c
  src/core/ops_act.c
  src/core/ops_loss.c
  src/core/ops_norm.c
  src/core/ops_embed.c
  src/core/ops_conv.c
  src/core/im2col.c
  src/core/blas_warm.c
  src/core/conv_smallk.c
  src/core/ops_pool.c
  src/core/ops_channel.c
)
target_link_libraries(dp_core PUBLIC PkgConfig::OPENBLAS m)
