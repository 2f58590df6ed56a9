dp_room(nn
  src/nn/params.c
  src/nn/layers.c
)
