dp_room(comm
  src/comm/allreduce.c
  src/comm/codec.c
  src/comm/ring.c
  src/comm/engine.c
)
target_link_libraries(dp_comm PUBLIC MPI::MPI_C Threads::Threads)
