#include "cli/commands.h"
int dp_cmd_dsi_train(int argc, char **argv, MPI_Comm comm) { (void)argc; (void)argv; (void)comm; return 2; }
int dp_cmd_dsi_query(int argc, char **argv, MPI_Comm comm) { (void)argc; (void)argv; (void)comm; return 2; }
int dp_cmd_dsi_eval(int argc, char **argv, MPI_Comm comm) { (void)argc; (void)argv; (void)comm; return 2; }
