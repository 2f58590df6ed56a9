#!/usr/bin/env bash
# Wrong flags and bad input must fail with a non-zero exit and a message that
# names the flag, file or value. Usage: cli_errors.sh path/to/dptrain
set -u
bin="$1"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fails=0 passes=0

expect() { # expect EXIT_CODE REGEX -- ARGS...
  local code="$1" re="$2"; shift 3
  local out rc
  out=$("$bin" "$@" 2>&1); rc=$?
  if [ "$rc" -ne "$code" ] || ! grep -qE -- "$re" <<<"$out"; then
    echo "FAIL: dptrain $* -> exit $rc (want $code), output: $out"; fails=$((fails+1))
  else
    passes=$((passes+1))
  fi
}

expect 2 "usage: dptrain"            --
expect 0 "usage: dptrain <command>"  -- --help
expect 0 "--epochs N"                -- train --help
expect 0 "--epochs N"                -- help train
expect 2 "unknown command 'trian'"   -- trian
expect 2 "--epochs: 0 is out of range" -- train --epochs 0
expect 2 "--batch: 'abc' is not an integer" -- train --batch abc
expect 2 "--lr: 'x' is not a number" -- train --lr x
expect 2 "--lr: .* out of range"     -- train --lr -1
expect 2 "unknown or incomplete flag '--bogus'" -- train --bogus
expect 2 "--epochs: missing value|unknown or incomplete flag '--epochs'" -- train --epochs
expect 2 "unknown optimizer|optimizer"   -- train --optimizer rmsprop
expect 2 "unknown lr schedule"       -- train --schedule linear
expect 2 "--resume needs --out"      -- train --resume
expect 2 "--threads: 0 is out of range" -- train --threads 0
expect 2 "unknown dataset 'cifar'"   -- shard cifar
expect 2 "--shards: 0 is out of range" -- shard fashion-mnist --shards 0
expect 1 "$tmp/none"                 -- shard fashion-mnist --idx "$tmp/none" --out "$tmp/x"
expect 1 "$tmp/missing"              -- train --data "$tmp/missing" --quiet
mkdir -p "$tmp/bad"; echo "not a manifest" > "$tmp/bad/manifest.txt"
expect 1 "$tmp/bad/manifest.txt"     -- train --data "$tmp/bad" --quiet
expect 2 "--layers: 0 is out of range"   -- train --layers 0
expect 2 "--drop-path: 1.5 is out of range" -- train --drop-path 1.5
expect 2 "--cutout: -1 is out of range"  -- train --cutout -1
expect 0 "--arch FILE"                   -- train --help
expect 2 "--dgc needs --codec topk:F"    -- train --dgc --codec int8
expect 2 "--dgc needs --optimizer sgd"   -- train --dgc --codec topk:0.01 --optimizer adam
expect 2 "--dgc needs --optimizer sgd"   -- train --dgc --codec topk:0.01 --nesterov
expect 2 "--dgc cannot be combined with --codec-start" -- train --dgc --codec topk:0.01 --codec-start 10
# a bad --arch is reported before the data is read, naming the file and the field
expect 1 "$tmp/nope.json: open"          -- train --arch "$tmp/nope.json" --data "$tmp/missing" --quiet
echo '{"normal": [["sep_conv_3x3", 0]' > "$tmp/bad.json"
expect 1 "$tmp/bad.json: not JSON"       -- train --arch "$tmp/bad.json" --data "$tmp/missing" --quiet
echo '{"normal": [], "normal_concat": [2, 3, 4, 5], "reduce": [], "reduce_concat": [2, 3, 4, 5]}' > "$tmp/short.json"
expect 1 "$tmp/short.json: normal: 0 pairs" -- train --arch "$tmp/short.json" --data "$tmp/missing" --quiet
# search
expect 0 "--strategy NAME"               -- search --help
expect 2 "--layers: 0 is out of range"   -- search --layers 0
expect 2 "unknown strategy|--strategy"   -- search --strategy enas
expect 2 "--ops: .*'conv_7x7'"           -- search --ops none,conv_7x7
expect 2 "--flops-budget is a bound of --strategy gold" -- search --flops-budget 5
expect 2 "--unrolled needs a bilevel strategy" -- search --strategy gold --unrolled
expect 2 "--cost-weight: .* out of range|--cost-weight" -- search --cost-weight -1
expect 1 "$tmp/missing"                  -- search --data "$tmp/missing" --quiet
expect 2 "--arch-warmup: 3 must be in \[0, epochs=3\)" -- search --epochs 3 --arch-warmup 3
expect 2 "--recompute: 'some' is not an integer|--recompute" -- search --recompute some
expect 2 "--recompute: 65 is out of range" -- search --recompute 65
expect 2 "--resume needs --out"      -- search --resume
expect 2 "--stop-after needs --out"  -- search --stop-after 1
expect 2 "--stop-after: 3 is out of range \[1, epochs=2\]" -- search --epochs 2 --stop-after 3 --out "$tmp/s"
expect 2 "--select: 'magnitude' is not alpha, perturb or sample" -- search --select magnitude
expect 2 "--reselect needs --out"     -- search --reselect --select perturb
expect 2 "--select-candidates ranks cells with --select sample" -- search --select-candidates cells
printf 'sep_conv_3x3 8 28 28 1 x\n' > "$tmp/costs.tsv"
expect 1 "$tmp/costs.tsv:1"              -- search --cost-table "$tmp/costs.tsv" --data "$tmp/missing" --quiet
expect 1 "$tmp/nodir/g.json"             -- search --random-genotype "$tmp/nodir/g.json"
# DSI
expect 2 "--data is required"               -- dsi-train
expect 2 "--members: 0 is out of range"     -- dsi-train --data x --members 0
expect 2 "--docids: 'exact' is not atomic"  -- dsi-train --data x --docids exact
expect 2 "--token-drop: .* out of range"    -- dsi-train --data x --token-drop 1.5
expect 2 "--head: 'linear' is not dot"      -- dsi-train --data x --head linear
expect 2 "--head cosine needs --docids atomic" -- dsi-train --data x --head cosine --docids semantic
expect 2 "--head-scale: .* out of range"    -- dsi-train --data x --head cosine --head-scale 0
expect 2 "--embed-rows: 0 is out of range"  -- dsi-train --data x --embed-rows 0
expect 2 "--abstain: .* out of range"       -- dsi-eval --run x --test t.tsv --abstain -1
expect 1 "$tmp/missing"                     -- dsi-train --data "$tmp/missing" --quiet
expect 2 "exactly one of --run DIR and --models" -- dsi-eval --test t.tsv
expect 2 "--test TSV is required"           -- dsi-eval --run "$tmp"
expect 2 "--agg: 'best' is not confidence"  -- dsi-query --run "$tmp" --agg best
expect 1 "$tmp: no member-0/model.dsi"      -- dsi-query --run "$tmp"
printf 'garbage' > "$tmp/model.dsi"
printf 'a query\tdoc\n' > "$tmp/t.tsv"
expect 1 "$tmp/model.dsi"                   -- dsi-eval --models "$tmp/model.dsi" --test "$tmp/t.tsv"
expect 1 "$tmp/nonexist.tsv"                -- dsi-eval --bm25 "$tmp" --test "$tmp/nonexist.tsv"
expect 2 "--members"                        -- dsi-prepare --queries q.tsv --out "$tmp/o" --members 1
expect 1 "$tmp/none.tsv"                    -- dsi-prepare --queries "$tmp/none.tsv" --out "$tmp/o"
# numeric values with white space around them: refused alike, before or after (strtol skipped the leading)
expect 2 "--epochs: ' 7' is not an integer"     -- train --epochs " 7" --data "$tmp/missing" --quiet
expect 2 "--epochs: '7 ' is not an integer"     -- train --epochs "7 " --data "$tmp/missing" --quiet
expect 2 "--epochs: '\\\\x097' is not an integer" -- train --epochs $'\t7' --data "$tmp/missing" --quiet
expect 2 "--lr: ' 0.1' is not a number"         -- train --lr " 0.1" --data "$tmp/missing" --quiet
expect 2 "--members: ' 4' is not an integer"    -- dsi-prepare --queries q.tsv --out "$tmp/o" --members "2, 4"
expect 2 "--codec: 'topk: 0.01'"                -- train --codec "topk: 0.01" --data "$tmp/missing" --quiet
expect 2 "--codec: 'powersgd: 4'"               -- train --codec "powersgd: 4" --data "$tmp/missing" --quiet
expect 2 "--size: '28x 28'"                     -- shard image-folder "$tmp" --size "28x 28" --out "$tmp/o"
expect 2 "--input: ' 1x28x28'"                  -- summary --input " 1x28x28"
# a cost table line holding a NUL byte: refused, not cut at the NUL
printf 'sep_conv_3x3 8 28 28 1 0.5\0junk\n' > "$tmp/costs_nul.tsv"
expect 1 "$tmp/costs_nul.tsv:1: NUL byte"       -- search --cost-table "$tmp/costs_nul.tsv" --data "$tmp/missing" --quiet
# control bytes read from a manifest come back escaped (expect_clean: and never raw)
expect_clean() { # like expect, and the output holds no escape byte
  local out; out=$("$bin" "${@:4}" 2>&1)
  if grep -q $'\033' <<<"$out"; then echo "FAIL: dptrain ${*:4} echoed a raw escape: $(cat -v <<<"$out")"; fails=$((fails+1))
  else expect "$@"; fi
}
mkdir -p "$tmp/esc1" "$tmp/esc2" "$tmp/esc3"
printf 'dptrain-manifest 1\nname x\n\033[2Jbogus 1\n' > "$tmp/esc1/manifest.txt"
expect_clean 1 "unknown keyword '\\\\x1b\[2Jbogus'" -- train --data "$tmp/esc1" --quiet
printf 'dptrain-manifest 1\nname x\nschema image_u8 channels=1 height=2 width=2 classes=2\nclass 0 a\033]0;t\007b\n' \
  > "$tmp/esc2/manifest.txt"
expect_clean 1 "bad class name 'a\\\\x1b\]0;t\\\\x07b'" -- train --data "$tmp/esc2" --quiet
printf 'dptrain-manifest 1\nname x\nschema image_u8 channels=1 height=2 width=2 classes=2\nshard tr\033ain a.dps 1 0x00000000\n' \
  > "$tmp/esc3/manifest.txt"
expect_clean 1 "bad split name 'tr\\\\x1bain'" -- train --data "$tmp/esc3" --quiet

echo "cli_errors: $passes passed, $fails failed"
[ "$fails" -eq 0 ]
