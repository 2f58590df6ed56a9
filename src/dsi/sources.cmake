dp_room(dsi
  src/dsi/tokenize.c
  src/dsi/dataset.c
  src/dsi/pairs.c
  src/dsi/debian.c
  src/dsi/corpus.c
  src/dsi/prepare.c
  src/dsi/kmeans.c
  src/dsi/docids.c
  src/dsi/model.c
  src/dsi/beam.c
  src/dsi/rank.c
  src/dsi/bm25.c
  src/dsi/dsi_train.c
  src/dsi/dsi_query.c
  src/dsi/evaluate.c
)
target_link_libraries(dp_dsi PUBLIC MPI::MPI_C PkgConfig::XXHASH)
