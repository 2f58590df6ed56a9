#!/usr/bin/env bash
# Fuzzes every file parser with libFuzzer (targets in tests/fuzz/):
#   launch/fuzz.sh [--seconds N] [--jobs J] [TARGET...]
# Builds build-fuzz/ with clang (-DDP_FUZZ=ON; installs clang + libclang-rt-14-dev
# when missing), runs each target for N seconds (default 30) over a work copy
# of its seed corpus (build-fuzz/fuzz-work/<target>/, the committed corpus is
# never written), J targets at a time (default 1), then prints a table and
# writes build-fuzz/fuzz.csv. Exits 1 if any target crashed, naming the crash
# file: copy it to tests/fuzz/regress/<target>/ and fix the parser.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="$root/build-fuzz"
seconds=30 jobs=1 targets=()
while (($#)); do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown flag $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[[ "$seconds" =~ ^[0-9]+$ && "$jobs" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: --seconds and --jobs take numbers" >&2; exit 2; }

# The clang runtime (libFuzzer, ASan) comes in libclang-rt-14-dev on Debian 12.
source "$root/launch/apt.sh"
dp_apt_install clang libclang-rt-14-dev

# The target list lives in one place: tests/fuzz/CMakeLists.txt.
all=$(sed -n '/^set(DP_FUZZ_TARGETS/,/)/p' "$root/tests/fuzz/CMakeLists.txt" | sed 's/set(DP_FUZZ_TARGETS//; s/)//' | tr -s ' \n' ' ')
((${#targets[@]})) || read -r -a targets <<<"$all"
for t in "${targets[@]}"; do
  [[ " $all " == *" $t "* ]] || { echo "fuzz.sh: unknown target '$t' (known:$all)" >&2; exit 2; }
done

mkdir -p "$build"
blog="$build/fuzz-build.log"
{ CC=clang cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDP_FUZZ=ON \
    -DDP_BUILD_TESTS=OFF -DDP_BUILD_BENCHMARKS=OFF &&
  cmake --build "$build" --target "${targets[@]/#/fuzz_}" -j"$(nproc)"; } >"$blog" 2>&1 ||
  { tail -20 "$blog"; echo "fuzz.sh: build failed (whole log: $blog)" >&2; exit 2; }

# The harnesses write every input to a scratch file: on tmpfs that runs about
# 6x faster than on disk. A crashed target skips its own cleanup, so each run
# gets a directory here that this script removes.
scratch_base=/dev/shm
[ -d "$scratch_base" ] && [ -w "$scratch_base" ] || scratch_base=${TMPDIR:-/tmp}
scratch=$(mktemp -d "$scratch_base/dp-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

# One target: fresh work copy of the seeds, libFuzzer for $seconds, log kept.
run_one() {
  local t=$1 work="$build/fuzz-work/$1"
  rm -rf "$work" && mkdir -p "$work/corpus" "$work/crashes"
  cp "$root/tests/fuzz/corpus/$t/"* "$work/corpus/" 2>/dev/null || true
  # -rss_limit_mb and -malloc_limit_mb turn a header that makes a reader ask
  # for gigabytes into a finding; -timeout does the same for a slow input.
  ( cd "$work" && TMPDIR="$scratch" OPENBLAS_NUM_THREADS=1 ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
      "$build/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=1024 \
      -timeout=10 -max_len=16384 -print_final_stats=1 -artifact_prefix="$work/crashes/" \
      corpus >"$work/log" 2>&1 ) || true
}

echo "fuzz.sh: ${#targets[@]} targets x ${seconds}s, $jobs at a time (logs in $build/fuzz-work/<target>/log)"
running=0
for t in "${targets[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if ((running >= jobs)); then wait -n || true; running=$((running - 1)); fi
done
wait

csv="$build/fuzz.csv"
echo "target,runs,exec_per_s,cov,ft,corpus,crashes,crash_file" >"$csv"
printf '%-12s %10s %8s %6s %6s %7s %7s\n' target runs exec/s cov ft corpus crashes
failed=0
for t in "${targets[@]}"; do
  work="$build/fuzz-work/$t"
  # "#N DONE cov: X ft: Y corp: C/S ..." is the last status line of a clean run;
  # a crashed run ends without it, so its last "#N ..." status line stands in.
  line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$work/log" | tail -1 || true)
  [ -n "$line" ] || line=$(grep -E '^#[0-9]+[[:space:]]' "$work/log" | tail -1 || true)
  runs=$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$line")
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$line")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$line")
  corp=$(sed -nE 's/.* corp: ([0-9]+).*/\1/p' <<<"$line")
  eps=$(sed -nE 's/^stat::average_exec_per_sec:[[:space:]]*([0-9]+).*/\1/p' "$work/log" | tail -1)
  [ -n "$eps" ] || eps=$(sed -nE 's/.* exec\/s: ([0-9]+).*/\1/p' <<<"$line")
  # slow-unit-* files are only reports; crash-, leak-, timeout- and oom- are findings
  crash_files=$(ls "$work/crashes/" 2>/dev/null | grep -E '^(crash|leak|timeout|oom)-' | sed "s|^|$work/crashes/|" || true)
  ncrash=$(grep -c . <<<"$crash_files" || true)
  printf '%-12s %10s %8s %6s %6s %7s %7s\n' "$t" "${runs:-?}" "${eps:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$ncrash"
  echo "$t,${runs:-},${eps:-},${cov:-},${ft:-},${corp:-},$ncrash,$(head -1 <<<"$crash_files")" >>"$csv"
  if ((ncrash > 0)); then
    failed=1
    while read -r f; do echo "  CRASH $t: $f (replay: $build/tests/fuzz/fuzz_$t $f)"; done <<<"$crash_files"
  elif [ -z "$line" ]; then
    failed=1
    echo "  $t: no libFuzzer status line; see $work/log"
  fi
done
echo "fuzz.sh: table in $csv"
exit "$failed"
