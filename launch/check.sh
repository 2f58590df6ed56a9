#!/usr/bin/env bash
# Set-up, then the whole test suite through ctest.
#   launch/check.sh                     build/ (Release), every test: the README's test command
#   launch/check.sh --sanitize          build-san/ (-DDP_SANITIZE=ON: ASan + UBSan, -O2 -g), single-rank suites
#                                       and each MPI program at one rank count; any report or leak fails its test
#   launch/check.sh --valgrind [TEST..] build-valgrind/ (RelWithDebInfo), the single-rank Criterion tests
#                                       (or the named ones) under valgrind memcheck, then a summary table
#   launch/check.sh --mpich             build-mpich/ against MPICH (Debian's mpich, installed beside Open MPI;
#                                       the mpi* alternatives are left alone), every MPI test program at 2 ranks
# DP_TEST_JOBS sets ctest's -j (default: the number of cores; MPI tests declare their ranks as PROCESSORS
# and share one RESOURCE_LOCK, so a job never oversubscribes more than its own ranks do).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mode=plain
case "${1:-}" in
  --sanitize) mode=sanitize; shift ;;
  --valgrind) mode=valgrind; shift ;;
  --mpich) mode=mpich; shift ;;
  -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  "") ;;
  *) echo "check.sh: unknown option '$1' (want --sanitize, --valgrind [TEST...], --mpich or nothing)" >&2; exit 2 ;;
esac
if [ "$mode" != valgrind ] && [ $# -gt 0 ]; then
  echo "check.sh: unexpected argument '$1' (only --valgrind takes test names)" >&2; exit 2
fi

if [ "$mode" = plain ]; then
  "$root/launch/setup.sh"
  cd "$root/build"
  ctest --output-on-failure -j"${DP_TEST_JOBS:-$(nproc)}"
  exit
fi

if [ "$mode" = mpich ]; then
  # The family of MPICH (Cray MPICH, Intel MPI, MVAPICH) on the clusters: the same sources built against
  # MPICH 4 and its launcher (hydra), chosen by path so that mpicc/mpirun keep naming Open MPI.
  source "$root/launch/apt.sh"
  dp_apt_install libmpich-dev mpich
  DP_SETUP_PACKAGES_ONLY=1 "$root/launch/setup.sh" # the libraries both builds share
  mpich_tests=(test_comm_mpi test_codec_mpi test_topk_powersgd_mpi test_rows_mpi mpi_train mpi_search mpi_dsi)
  cmake -S "$root" -B "$root/build-mpich" -DCMAKE_BUILD_TYPE=Release -DDP_BUILD_BENCHMARKS=OFF \
    -DMPI_C_COMPILER=/usr/bin/mpicc.mpich -DMPIEXEC_EXECUTABLE=/usr/bin/mpiexec.mpich >/dev/null
  cmake --build "$root/build-mpich" -j"$(nproc)" --target "${mpich_tests[@]}"
  cd "$root/build-mpich"
  exec ctest --output-on-failure -R "^($(IFS='|'; echo "${mpich_tests[*]}"))_np2\$"
fi

supp="$root/tests/sanitize"
export OPENBLAS_NUM_THREADS=1

if [ "$mode" = sanitize ]; then
  # Criterion .timeouts x4 (tests/common/timeout.h), as the ctest timeouts are (tests/CMakeLists.txt)
  # No benchmarks: no sanitized test runs one (vcluster, the one test that does, is plain only).
  DP_BUILD_DIR="$root/build-san" "$root/launch/setup.sh" -DDP_SANITIZE=ON -DDP_TEST_TIMEOUT_SCALE=4 \
    -DDP_BUILD_BENCHMARKS=OFF
  # detect_leaks: leaks are errors at a normal exit (a killed rank never gets that far);
  # abort_on_error=0: exit with the sanitizer's code rather than SIGABRT, so mpirun and the scripts
  # see an ordinary failure. Open MPI's own leaks are suppressed (tests/sanitize/lsan.supp); its plugins
  # stay mapped (tests/sanitize/keep_plugins.c), so the fast unwinder can match those suppressions.
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1:color=never"
  export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:color=never"
  cd "$root/build-san"
  exec ctest --output-on-failure -j"${DP_TEST_JOBS:-$(nproc)}"
fi

# --- valgrind: memcheck over the single-rank (Criterion) tests ---
source "$root/launch/apt.sh"
dp_apt_install valgrind
# memcheck runs 20-50x slower: every Criterion .timeout is scaled by 40 at compile time (tests/common/timeout.h).
DP_BUILD_DIR="$root/build-valgrind" DP_BUILD_TYPE=RelWithDebInfo "$root/launch/setup.sh" -DDP_BUILD_BENCHMARKS=OFF \
  -DDP_TEST_TIMEOUT_SCALE=40
cd "$root/build-valgrind"
# The Criterion tests are the ctest entries whose command is "<binary> --jobs 1"; the rest start mpiexec.
mapfile -t all < <(ctest -N -V | awk '/Test command:/ && / "--jobs" "1"$/ {n = split($4, p, "/"); print p[n]}')
tests=("$@")
((${#tests[@]})) || tests=("${all[@]}")
for t in "${tests[@]}"; do
  printf '%s\n' "${all[@]}" | grep -qx -- "$t" || { echo "check.sh: '$t' is not a single-rank test (have: ${all[*]})" >&2; exit 2; }
done
logs="$root/build-valgrind/valgrind"; rm -rf "$logs"; mkdir -p "$logs"
# OpenBLAS's Haswell (AVX2/FMA) kernels run ~8x slower under memcheck than its SSE3 ones (a 2-step cnn run:
# 358 s against 46 s), which put test_train's one-epoch cases past an hour each. Memcheck is here for our
# code, so OpenBLAS is pinned to the SSE3 kernels unless the caller chose.
export OPENBLAS_CORETYPE="${OPENBLAS_CORETYPE:-Prescott}"
# Criterion runs every test in a worker process that it starts itself (BoxFort), so memcheck has to
# follow children; --jobs 1 keeps one worker at a time. Leaks count as errors only when definitely
# lost: Open MPI and OpenBLAS keep "still reachable" buffers until exit by design.
vg=(valgrind --tool=memcheck --trace-children=yes --error-exitcode=42 --leak-check=full
    --errors-for-leak-kinds=definite --show-leak-kinds=definite --num-callers=30 --track-origins=no
    --suppressions=/usr/share/openmpi/openmpi-valgrind.supp --suppressions="$supp/valgrind.supp")
fails=0
printf '%-22s %8s %14s %8s %8s\n' test errors definitely_lost wall_s result > "$logs/summary.txt"
for t in "${tests[@]}"; do
  start=$(date +%s)
  rc=0
  # %p: one log per process (the runner and each worker)
  "${vg[@]}" --log-file="$logs/$t.%p.log" "tests/$t" --jobs 1 > "$logs/$t.out" 2>&1 || rc=$?
  took=$(( $(date +%s) - start ))
  errors=$(cat "$logs/$t".*.log | awk '/ERROR SUMMARY:/ {s += $4} END {print s + 0}')
  lost=$(cat "$logs/$t".*.log | awk '/definitely lost:/ {gsub(",", "", $4); s += $4} END {print s + 0}')
  # FAIL: memcheck errors, definite leaks or crashed workers; test-fail: an assertion or a (scaled)
  # timeout without a memcheck report. Both fail the run.
  result=ok
  if [ "$errors" -ne 0 ] || [ "$lost" -ne 0 ] || grep -q 'Crashing: [1-9]' "$logs/$t.out"; then result=FAIL
  elif [ "$rc" -ne 0 ]; then result=test-fail; fi
  [ "$result" != ok ] && fails=$((fails+1))
  printf '%-22s %8s %14s %8s %8s\n' "$t" "$errors" "$lost" "$took" "$result" | tee -a "$logs/summary.txt"
  if [ "$result" != ok ]; then
    echo "--- $t (exit $rc): $(tail -n 3 "$logs/$t.out" | tr '\n' ' ')"
    { grep -l -E "ERROR SUMMARY: [1-9]|definitely lost: [1-9]" "$logs/$t".*.log || true; } | head -n 3 |
      xargs -r sed -n '/^==[0-9]*== [A-Z]/,$p' | head -n 80
  fi
done
echo; cat "$logs/summary.txt"; echo "logs: $logs"
[ "$fails" -eq 0 ]
