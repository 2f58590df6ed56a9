dp_room(data
  src/data/fsutil.c
  src/data/shard_format.c
  src/data/shard_write.c
  src/data/shard_read.c
  src/data/manifest.c
  src/data/idx.c
  src/data/import_fmnist.c
  src/data/dataset_writer.c
  src/data/image_set.c
  src/data/image_decode.c
  src/data/image_resize.c
  src/data/import_common.c
  src/data/import_image_folder.c
  src/data/import_csv.c
  src/data/import_npy.c
)
target_link_libraries(dp_data PUBLIC PkgConfig::ZSTD ZLIB::ZLIB PNG::PNG JPEG::JPEG)
