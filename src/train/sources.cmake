dp_room(train
  src/train/run_config.c
  src/train/config.c
  src/train/checkpoint.c
  src/train/report.c
  src/train/rundir.c
  src/train/sampler.c
  src/train/image_task.c
  src/train/sync.c
  src/train/driver.c
  src/train/rank_times.c
  src/train/classify.c
  src/train/export.c
  src/train/trained.c
  src/train/trained_eval.c
)
target_link_libraries(dp_train PUBLIC MPI::MPI_C PkgConfig::ZSTD PkgConfig::XXHASH ZLIB::ZLIB)
