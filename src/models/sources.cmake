dp_room(models
  src/models/reference.c
)
