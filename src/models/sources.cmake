dp_room(models
  src/models/reference.c
  src/models/darts_ops.c
  src/models/darts_net.c
  src/models/genotype.c
)
target_link_libraries(dp_models PUBLIC PkgConfig::CJSON)
