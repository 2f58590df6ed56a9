add_executable(dptrain_cli
  src/cli/main.c
  src/cli/options.c
  src/cli/run.c
  src/cli/cmd_train.c
  src/cli/cmd_shard.c
  src/cli/shard_idx.c
  src/cli/shard_cifar.c
  src/cli/shard_user.c
  src/cli/cmd_search.c
  src/cli/cmd_summary.c
  src/cli/cmd_dsi_prepare.c
  src/cli/cmd_dsi.c
  src/cli/trained_cli.c
  src/cli/cmd_eval.c
  src/cli/cmd_predict.c
  src/cli/cmd_export.c
  src/cli/cmd_tune.c
)
set_target_properties(dptrain_cli PROPERTIES OUTPUT_NAME dptrain RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
dp_room_includes(dptrain_cli cli)
target_link_libraries(dptrain_cli PRIVATE dptrain)
target_compile_definitions(dptrain_cli PRIVATE DP_VERSION="${PROJECT_VERSION}")
