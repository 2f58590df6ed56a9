#!/usr/bin/env bash
# Every numeric flag of every command, read from its --help, is given values
# no run should accept (negative, not a number, NaN, Inf, huge, past 2^64, white space before or after): each
# must be refused with exit 2 and a message naming the flag, before any work.
# Usage: flag_ranges.sh path/to/dptrain
set -u
bin="$1"
# placeholders in the help text that stand for numbers (DIR, FILE, NAME, LIST, KIND ... do not)
numeric='^(N|B|LR|M|WD|STEPS|G|NORM|S|K|MB|L|C|P|R|D|F|MF|SECONDS|T,T|T|H)$'
bad_values=(-1 abc nan 1e300 18446744073709551617 ' 1' '1 ')
list="$(mktemp)"; trap 'rm -f "$list"' EXIT
for cmd in train shard search dsi-prepare dsi-train dsi-query dsi-eval eval predict; do
  "$bin" "$cmd" --help | grep -oE -- "--[a-z0-9-]+ [A-Z][A-Z0-9,]*" | sort -u | while read -r flag ph; do
    [[ "$ph" =~ $numeric ]] || continue
    for v in "${bad_values[@]}"; do printf '%s\t%s\t%s\n' "$cmd" "$flag" "$v"; done
  done
done > "$list"
# one case: exit 2 and the flag named, else a FAIL line (--data/--run point nowhere, so an
# accepted value fails fast instead of training)
one() {
  local out rc
  out=$(timeout 60 "$bin" "$1" "$2" "$3" --data /nonexistent/dp --run /nonexistent/dp 2>&1); rc=$?
  if [ "$rc" -eq 2 ] && grep -qF -- "$2" <<<"$out"; then echo pass
  else echo "FAIL: dptrain $1 $2 '$3' -> exit $rc: $(head -c 300 <<<"$out" | tr '\n' ' ')"; fi
}
export -f one; export bin
results=$(tr '\t\n' '\0\0' < "$list" | xargs -0 -n 3 -P 4 bash -c 'one "$0" "$1" "$2"')
passes=$(grep -c '^pass$' <<<"$results"); fails=$(grep -c '^FAIL' <<<"$results")
grep '^FAIL' <<<"$results"
echo "flag_ranges: $passes of $(wc -l < "$list") (flag, value) cases refused as they should be, $fails not"
[ "$fails" -eq 0 ]
