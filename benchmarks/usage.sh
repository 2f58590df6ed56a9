# --help for the benchmark scripts: prints the calling script's header comment (from line 2 to the
# first line that is not a comment), which holds its usage. Sourced before the flags are read, so
# --help needs neither a build nor the shards that common.sh prepares.
dp_usage() { sed -n '2,/^[^#]/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
