dp_room(optim
  src/optim/sgd.c
  src/optim/adam.c
  src/optim/optimizer.c
  src/optim/schedule.c
  src/optim/clip.c
)
# sqrtf sets errno on negative input, which keeps GCC from vectorising Adam's
# loop; nothing here reads errno, so drop it for this room only.
target_compile_options(dp_optim PRIVATE -fno-math-errno)
target_link_libraries(dp_optim PUBLIC m)
