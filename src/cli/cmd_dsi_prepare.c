#include "cli/commands.h"
int dp_cmd_dsi_prepare(int argc, char **argv, MPI_Comm comm) { (void)argc; (void)argv; (void)comm; return 2; }
