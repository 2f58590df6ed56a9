dp_room(nn
  src/nn/params.c
  src/nn/layers.c
)
target_link_libraries(dp_nn PUBLIC PkgConfig::XXHASH)
