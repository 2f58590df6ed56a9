dp_room(comm
  src/comm/common.c
  src/comm/allreduce.c
  src/comm/compress.c
  src/comm/codec.c
  src/comm/codec_fp16.c
  src/comm/codec_int8.c
  src/comm/codec_wire.c
  src/comm/ring.c
  src/comm/engine.c
  src/comm/topk.c
  src/comm/powersgd.c
  src/comm/rows.c
  src/comm/watchdog.c
)
target_link_libraries(dp_comm PUBLIC MPI::MPI_C Threads::Threads PkgConfig::ZSTD PkgConfig::OPENBLAS)
