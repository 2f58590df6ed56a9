dp_room(nn
  src/nn/params.c
  src/nn/layers.c
  src/nn/safetensors.c
)
# safetensors.c: cJSON for the header; dp_write_file_atomic (fsutil, in the data room's objects) for the file
target_link_libraries(dp_nn PUBLIC PkgConfig::XXHASH PkgConfig::CJSON)
