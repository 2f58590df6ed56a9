# The shipped descriptions become a C file at build time (models/zoo.h); their order is dp_model_names'.
set(DP_ZOO_NAMES mlp cnn resnet20)
set(DP_ZOO_JSON "")
foreach(n ${DP_ZOO_NAMES})
  list(APPEND DP_ZOO_JSON ${PROJECT_SOURCE_DIR}/src/models/zoo/${n}.json)
endforeach()
string(REPLACE ";" "," DP_ZOO_NAMES_ARG "${DP_ZOO_NAMES}")
add_custom_command(
  OUTPUT ${CMAKE_BINARY_DIR}/generated/zoo_embed.c
  COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/generated
  COMMAND ${CMAKE_COMMAND} -DOUT=${CMAKE_BINARY_DIR}/generated/zoo_embed.c "-DNAMES=${DP_ZOO_NAMES_ARG}"
          -DDIR=${PROJECT_SOURCE_DIR}/src/models/zoo -P ${PROJECT_SOURCE_DIR}/src/models/zoo/embed.cmake
  DEPENDS ${DP_ZOO_JSON} ${PROJECT_SOURCE_DIR}/src/models/zoo/embed.cmake
  COMMENT "Embedding the shipped network descriptions"
  VERBATIM)
dp_room(models
  src/models/model.c
  src/models/netdesc_parse.c
  src/models/netdesc_build.c
  src/models/json_pos.c
  ${CMAKE_BINARY_DIR}/generated/zoo_embed.c
  src/models/darts_ops.c
  src/models/darts_net.c
  src/models/genotype.c
)
target_link_libraries(dp_models PUBLIC PkgConfig::CJSON)
