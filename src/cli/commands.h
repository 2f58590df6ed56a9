/* The subcommands of `dptrain`; each returns the process exit code. */
#ifndef DP_CLI_COMMANDS_H
#define DP_CLI_COMMANDS_H

int dp_cmd_train(int argc, char **argv);
int dp_cmd_shard(int argc, char **argv);

#endif
