# --help for the benchmark scripts: prints the calling script's header comment (from line 2 to the
# first line that is not a comment), which holds its usage. Sourced before the flags are read, so
# --help needs neither a build nor the shards that common.sh prepares.
dp_usage() { sed -n '2,/^[^#]/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

# For the scripts that read their flags themselves and set me=NAME: an error that names the script, and
# the check that a flag has a value that is not empty.
die() { echo "$me: $*" >&2; exit 2; }
need_arg() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value"; }

# dp_flags NAME SPECS "$@": reads a benchmark script's flags into its variables, which hold their
# defaults already. SPECS lists --flag=var (var takes the next argument) and --flag=var=VALUE (a
# switch: var takes VALUE). -h/--help prints the usage; an unknown flag or a flag without its value
# is an error that names the script (NAME) and exits 2.
dp_flags() {
  local dp_me="$1" dp_specs="$2" dp_spec dp_to
  shift 2
  while [ $# -gt 0 ]; do
    case "$1" in -h|--help) dp_usage; exit 0 ;; esac
    dp_to=""
    for dp_spec in $dp_specs; do
      if [ "${dp_spec%%=*}" = "$1" ]; then dp_to="${dp_spec#*=}"; break; fi
    done
    [ -n "$dp_to" ] || { echo "$dp_me: unknown flag $1 (--help lists them)" >&2; exit 2; }
    if [ "${dp_to#*=}" != "$dp_to" ]; then
      printf -v "${dp_to%%=*}" '%s' "${dp_to#*=}"; shift
    else
      [ $# -ge 2 ] || { echo "$dp_me: $1 needs a value" >&2; exit 2; }
      printf -v "$dp_to" '%s' "$2"; shift 2
    fi
  done
}
