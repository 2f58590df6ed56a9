#!/usr/bin/env bash
# What dsi-query, dsi-eval and the DSI loaders do with awkward text: a long query line is one query (never
# split into several, which misnumbered every later answer), a line over the limit or holding a NUL byte is
# refused naming the line, at 1 and 2 ranks; test docids the ensemble does not know are counted and named
# (none known: refused); control bytes read from a file come back escaped in messages.
#   dsi_inputs.sh path/to/dptrain MPIEXEC
source "$(dirname "${BASH_SOURCE[0]}")/../common/cli_env.sh"
bad() { echo "FAIL: $(head -c 800 <<<"$*")"; fails=$((fails+1)); }
esc=$'\033'
# check NAME EXIT_CODE REGEX OUTPUT RC: the exit code, the message, no raw escape byte in it and (the sanitized
# build exits 1 too) no sanitizer report
check() {
  if [ "$5" -ne "$2" ] || ! grep -qE -- "$3" <<<"$4" || grep -q "$esc" <<<"$4" ||
     grep -qE "Sanitizer|runtime error: " <<<"$4"; then
    bad "$1: exit $5 (want $2), output: $(cat -v <<<"$4")"
  else ok; fi
}
mpi_timeout=120

# a tiny DSI run: 40 documents, one member, one epoch (2 s)
awk 'BEGIN { srand(7); for (d = 0; d < 40; d++) for (q = 0; q < 4; q++) {
       s = ""; for (w = 0; w < 4; w++) s = s (w ? " " : "") "w" (d * 3 + int(rand() * 6)); printf "%s\tdoc%d\n", s, d } }' >q.tsv
"$bin" dsi-prepare --queries q.tsv --out dsi >log 2>&1 || { cat log; exit 1; }
"$bin" dsi-train --data dsi --epochs 1 --batch 32 --embed 8 --hidden 16 --embed-rows 1024 --quiet --eval-limit 10 \
  --out run >log 2>&1 || { cat log; exit 1; }

# --- dsi-query: whole lines
# a 24,000-byte query, then a short one: two answers, numbered 1 and 2 (an 8 KiB fgets made 4 of them)
{ for _ in $(seq 4000); do printf 'w3 w4 '; done; printf '\nw5 w6\n'; } >long.txt
out=$("$bin" dsi-query --run run -k 1 <long.txt 2>&1); rc=$?
check "long line, stdin" 0 . "$out" $rc
[ "$(cut -f1 <<<"$out" | tr '\n' ' ')" = "1 2 " ] && ok || bad "a long line and a short one answered as: $out"
out=$("$bin" dsi-query --run run -k 1 --queries long.txt 2>&1); rc=$?
[ $rc -eq 0 ] && [ "$(cut -f1 <<<"$out" | tr '\n' ' ')" = "1 2 " ] && ok || bad "--queries with a long line: $out"
# over the limit (1 MiB): refused with its line number and the limit, after answering line 1
{ printf 'w3 w4\n'; head -c 1048577 /dev/zero | tr '\0' 'w'; printf '\nw5\n'; } >huge.txt
out=$("$bin" dsi-query --run run -k 1 --queries huge.txt 2>&1); rc=$?
check "line over the limit" 1 "huge.txt:2: line longer than 1048576 bytes" "$out" $rc
[ "$(grep -c "^[0-9]" <<<"$out")" -eq 1 ] && ok || bad "lines before the refused one: $out"
# a NUL byte inside a line: refused, not cut at the NUL
printf 'w3 w4\nw5\0w6\nw7\n' >nul.txt
out=$("$bin" dsi-query --run run -k 1 <nul.txt 2>&1); rc=$?
check "NUL in a line" 1 "stdin:2: NUL byte" "$out" $rc
# at 2 ranks rank 0 reads and broadcasts: both ranks stop on the refused line (no hang)
out=$(mpi 2 "$bin" dsi-query --run run -k 1 --queries nul.txt 2>&1); rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "nul.txt:2: NUL byte" <<<"$out" && ok ||
  bad "2 ranks, NUL in a line: exit $rc, output: $out"
out=$(mpi 2 "$bin" dsi-query --run run -k 1 --queries long.txt 2>&1); rc=$?
[ $rc -eq 0 ] && [ "$(grep -c "^[0-9]" <<<"$out")" -eq 2 ] && ok || bad "2 ranks, a long line: exit $rc, output: $out"

# --- dsi-eval: test docids the ensemble does not know
printf 'w3 w4\tnodoc1\nw5\tno%s[31mdoc\n' "$esc" >unknown.tsv
printf 'w3 w4\tdoc1\nw5\tnodoc2\n' >half.tsv
out=$("$bin" dsi-eval --run run --test unknown.tsv 2>&1); rc=$?
check "dsi-eval, no docid known" 1 "unknown.tsv: none of the 2 test docids is known.*'no\\\\x1b\[31mdoc'" "$out" $rc
out=$("$bin" dsi-eval --bm25 dsi --test unknown.tsv 2>&1); rc=$?
check "dsi-eval --bm25, no docid known" 1 "unknown.tsv: none of the 2 test docids is known to dsi/text.tsv" "$out" $rc
out=$("$bin" dsi-eval --run run --test half.tsv 2>&1); rc=$?
check "dsi-eval, one docid unknown" 0 "warning: half.tsv: 1 of 2 test pairs name a docid .*'nodoc2'" "$out" $rc
grep -q "^confidence1 " <<<"$out" && ok || bad "dsi-eval with one unknown docid printed no rows: $out"
: >empty.tsv
out=$("$bin" dsi-eval --run run --test empty.tsv 2>&1); rc=$?
check "dsi-eval, no pairs" 1 "empty.tsv: no test pairs" "$out" $rc

# --- dsi-train's defaults are the measured recipe: with no flag the head starts at the documents' prototypes,
# so before any step (--epochs 0) the model already ranks its training queries (train Hits@1, column 10); the
# plain model's random head does not
zero=(dsi-train --data dsi --epochs 0 --embed 32 --hidden 64 --embed-rows 1024 --quiet --eval-limit 40)
# (the lexical head, on by default, ranks them from its BM25 start whatever the dense head: off here)
h_def=$("$bin" "${zero[@]}" --lexical off 2>&1 | awk 'NR == 2 { print $10 }')
h_rand=$("$bin" "${zero[@]}" --lexical off --head-init random 2>&1 | awk 'NR == 2 { print $10 }')
awk -v a="${h_def:-0}" -v b="${h_rand:-1}" 'BEGIN { exit !(a >= 0.5 && b < 0.3) }' && ok ||
  bad "dsi-train defaults: train Hits@1 after 0 epochs ${h_def:-none} (want >= 0.5), --head-init random ${h_rand:-none}"
"$bin" dsi-train --help | grep -q "(default auto)" && "$bin" dsi-train --help | grep -q "(default 64)" &&
  "$bin" dsi-eval --help | grep -q "(default 32)" && ok || bad "dsi-train/dsi-eval --help do not show the recipe's defaults"
# --head auto: semantic ids (no cosine head) train with the dot head, no flag needed
out=$("$bin" "${zero[@]}" --docids semantic 2>&1); rc=$?
[ "$rc" -eq 0 ] && ok || bad "dsi-train --docids semantic with the default head: exit $rc: $out"
# --lr unset: 0.01 with semantic ids (the level decoder does not fit at the atomic head's 0.001), 0.001 with atomic ones
sem() { "$bin" "${zero[@]}" --epochs 2 --docids semantic "$@" 2>&1 | awk 'NR == 2 { print $9, $10, $11, $12, $13 }'; }
s_def=$(sem) s_hi=$(sem --lr 0.01) s_lo=$(sem --lr 0.001)
[ -n "$s_def" ] && [ "$s_def" = "$s_hi" ] && [ "$s_def" != "$s_lo" ] && ok ||
  bad "dsi-train --docids semantic, --lr unset: '$s_def'; --lr 0.01: '$s_hi'; --lr 0.001: '$s_lo'"

# --- control bytes read from a dataset, escaped in the message
cp -r dsi bad
printf 'x%s]0;owned\007y\nx%s]0;owned\007y\n' "$esc" "$esc" >>bad/docs.tsv
out=$("$bin" dsi-train --data bad --epochs 1 --quiet 2>&1); rc=$?
check "docid repeated, with control bytes" 1 "docid 'x\\\\x1b\]0;owned\\\\x07y' repeats line" "$out" $rc
cp -r dsi bad2
printf 'buckets%s[2J=5\n' "$esc" >>bad2/tokenizer.txt
out=$("$bin" dsi-train --data bad2 --epochs 1 --quiet 2>&1); rc=$?
check "tokenizer key with control bytes" 1 "unknown key 'buckets\\\\x1b\[2J'" "$out" $rc

tally_done dsi_inputs
