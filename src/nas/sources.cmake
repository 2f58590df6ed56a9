dp_room(nas
  src/nas/supernet.c
  src/nas/derive.c
  src/nas/search_config.c
  src/nas/search.c
  src/nas/search_main.c
  src/nas/search_out.c
  src/nas/strategy.c
  src/nas/strategy_darts.c
  src/nas/strategy_temperature.c
  src/nas/strategy_gumbel.c
  src/nas/gold.c
  src/nas/costs.c
  src/nas/random_genotype.c
  src/nas/select_perturb.c
  src/nas/search_select.c
)
target_link_libraries(dp_nas PUBLIC MPI::MPI_C)
