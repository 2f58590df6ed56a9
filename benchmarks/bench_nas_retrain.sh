#!/usr/bin/env bash
# The NAS protocol (issue 22): does a search earn its keep against random
# cells of the same space (Li and Talwalkar 2019; Yang et al. 2020)? Fixed
# before any result; every cell is retrained with one recipe, and the table
# says whether the derived cells clear the random cells' mean by two standard
# errors and match the best random cell.
#
#   benchmarks/bench_nas_retrain.sh [--dir DIR] [--config NAME] [--search "FLAGS"]
#       [--seeds "1 2"] [--search-epochs E] [--random 5] [--noise 3] [--ranks 2] [--plot]
#       [--retrain-epochs N] (the recipe's epochs, default 6; a directory holds one recipe: mixing
#                            recipes in one DIR is refused)
#       [--jobs N]          (N runs at once, N x --ranks cores: on a 16-core machine --jobs 8 runs both
#                            searches beside the baselines; the figures are the same, the wall is not)
#       [--genotype FILE]   (retrain one more cell from a search you ran yourself)
#       [--reselect HOW]    (choose each search's cell again with --select HOW from its checkpoint, without
#                            searching, into reselect-CONFIG.HOW-SEED/, and retrain it as CONFIG.HOW: a selection
#                            measured on the supernets the protocol already trained)
#       [--rank-cells]      (after the table: each search's supernet ranks every retrained cell of cells/ one-shot
#                            (--select sample --select-candidates), into oneshot-CONFIG-SEED/; prints the one-shot
#                            against the retrained accuracy and their rank correlations, Kendall's tau and
#                            Spearman's rho: can this supernet tell good cells from bad at all?)
#       [--smoke]           (the plumbing only: 256 images, 1 epoch, 500 test images; no figure counts)
#       [--baselines FILE]  (the random, noise and cnn rows of an earlier run's protocol.csv instead of
#                            retraining them; random cell 1 is still retrained here as the check, and the
#                            run stops unless its MFLOPs and params equal FILE's and its accuracy is within
#                            two seed-noise sds of FILE's)
#
# The protocol (change it only together with every result made with it):
#   search   2 ranks x batch 32, --sampler global, the first 20,000 training
#            images (10,000 for the weights, 10,000 for alpha), 5 cells x 8
#            channels, alpha lr 3e-3, 2,000 held-out images per epoch;
#            --search-epochs E (default 10) chosen so one search takes at most
#            60 minutes at 2 ranks on a quiet 2-core machine; --search adds the
#            levers of the configuration under test (--config names it).
#            Each search seed derives two cells: the one --select chose
#            (genotype.json) and alpha's (genotype_alpha.json, with --select perturb).
#   retrain  5 cells x 8 channels (the searched network's own size), the same
#            20,000 images, 6 epochs (--retrain-epochs), --augment, SGD lr 0.025 momentum 0.9,
#            cosine, weight decay 3e-4, global batch 64 (32 x 2 ranks), seed 1;
#            test accuracy on all 10,000 test images.
#   against  --random R uniformly random cells (seeds 1001..1000+R), the
#            hand-made cnn, and random cell 1 retrained with seeds 1..--noise
#            (the seed noise).
# Resumable: every run leaves its final line in DIR/<run>/final.txt and is
# skipped when that exists; an interrupted run continues from its checkpoint. A cell whose genotype was
# already retrained under another name takes that result (the table's source column says =NAME, no wall).
# Out: DIR/protocol.csv (one row per retrained network), a summary on stdout
# (the verdict, and each configuration against the least-squares line of the
# random cells' accuracy on MFLOPs: better cells, or only bigger ones?), and
# with --plot DIR/protocol.png (test accuracy against MFLOPs; the random
# cells as a cloud, and their line).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/usage.sh"
dir="" config="default" search_flags="" seeds="1 2" search_epochs=10 nrandom=5 noise=3 ranks=2 plot=0 genotype="" smoke=0
baselines="" jobs=1 reselect="" rank_cells=0 retrain_epochs=6
dp_flags bench_nas_retrain "--dir=dir --config=config --search=search_flags --seeds=seeds
  --search-epochs=search_epochs --random=nrandom --noise=noise --ranks=ranks --plot=plot=1 --genotype=genotype
  --smoke=smoke=1 --baselines=baselines --jobs=jobs --reselect=reselect --rank-cells=rank_cells=1
  --retrain-epochs=retrain_epochs" "$@"
me=bench_nas_retrain
[[ "$config" =~ ^[A-Za-z0-9_.-]+$ ]] || { echo "$me: --config '$config': letters, digits, . _ - only" >&2; exit 2; }
for n in "$search_epochs" "$nrandom" "$noise" "$ranks" "$jobs" "$retrain_epochs"; do
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] || { echo "$me: '$n' is not a count >= 1" >&2; exit 2; }
done
[ -z "$genotype" ] || [ -f "$genotype" ] || { echo "$me: --genotype $genotype: no such file" >&2; exit 2; }
[[ -z "$reselect" || "$reselect" =~ ^(alpha|perturb|sample)$ ]] ||
  { echo "$me: --reselect '$reselect': alpha, perturb or sample" >&2; exit 2; }
if [ -n "$baselines" ]; then
  [ -f "$baselines" ] || { echo "$me: --baselines $baselines: no such file" >&2; exit 2; }
  grep -v '^#' "$baselines" | head -n1 | grep -q '^network,kind,seed,mflops,params,test_acc' ||
    { echo "$me: --baselines $baselines: not a protocol.csv (header network,kind,seed,mflops,params,test_acc,...)" >&2; exit 2; }
  baselines=$(cd "$(dirname "$baselines")" && pwd)/$(basename "$baselines")
fi
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
dir="${dir:-$out/nas-protocol}"; mkdir -p "$dir/cells"
# run_kind NAME: what DIR/NAME holds: noise, random, cnn or derived (a retraining), none (a search, a
# reselection or a one-shot ranking: no retraining) or other (not a protocol run)
run_kind() {
  case "$1" in
    random*-seed*) echo noise ;; random*) echo random ;; cnn) echo cnn ;; derived-* | diag-*) echo derived ;; # diag-: by hand
    search-* | reselect-* | oneshot*) echo none ;;
    *) echo other ;;
  esac
}
# the retrained accuracies of one directory are comparable only under one recipe
recipe="epochs $retrain_epochs"; [ "$smoke" = 1 ] && recipe="smoke"
if [ -f "$dir/recipe" ]; then
  [ "$(cat "$dir/recipe")" = "$recipe" ] ||
    { echo "$me: $dir was retrained with $(cat "$dir/recipe"), not $recipe: use another --dir" >&2; exit 2; }
else # a directory from before --retrain-epochs holds 6-epoch runs
  for f in "$dir"/*/final.txt; do
    [ -f "$f" ] && [ "$(run_kind "$(basename "$(dirname "$f")")")" != none ] || continue
    [ "$recipe" = "epochs 6" ] ||
      { echo "$me: $dir holds runs of the 6-epoch recipe: $recipe needs another --dir" >&2; exit 2; }
  done
  echo "$recipe" > "$dir/recipe"
fi

per_rank=$((64 / ranks))
search_recipe="--layers 5 --channels 8 --batch $per_rank --sampler global --limit 20000 --arch-lr 3e-3
  --eval-limit 2000 --retrain-layers 5 --retrain-channels 8 --quiet"
retrain_recipe="--layers 5 --channels 8 --limit 20000 --epochs $retrain_epochs --augment --batch $per_rank --lr 0.025
  --momentum 0.9 --weight-decay 3e-4 --schedule cosine --quiet"
if [ "$smoke" = 1 ]; then
  search_recipe="$search_recipe --limit 256 --eval-limit 64 --select-batches 1"
  retrain_recipe="$retrain_recipe --limit 256 --epochs 1 --test-limit 500"
fi

# the mean and sample sd of a[1..n], for the baselines check and the verdict
awk_stats='
  function mean(a, n,   s, i) { s = 0; for (i = 1; i <= n; i++) s += a[i]; return s / n }
  function sd(a, n, m,   s, i) { s = 0; for (i = 1; i <= n; i++) s += (a[i] - m) ^ 2; return n > 1 ? sqrt(s / (n - 1)) : 0 }'

# run NAME CMD...: the mpirun of one protocol step, skipped when done, resumed when interrupted
run() {
  local name="$1" d="$dir/$1"; shift
  [ -f "$d/final.txt" ] && return 0
  local again=""
  [ -f "$d/checkpoint.dpc" ] || [ -f "$d/search.dpc" ] && again="--resume"
  [ -z "$again" ] && rm -rf "$d"
  mkdir -p "$d"
  echo "$me: $(date -u +%H:%M) $name ${again:+(resumed)}" >&2
  if ! dp_mpirun "$ranks" "$build/dptrain" "$@" --out "$d" $again >>"$d/log" 2>&1; then
    echo "$me: $name failed (log: $d/log):" >&2; tail -5 "$d/log" >&2; exit 1
  fi
  grep '^final:' "$d/log" | tail -1 > "$d/final.txt"
}
# The protocol's steps. A task is one word list: "cell NAME SEED CELL" retrains cells/CELL.json (or the cnn),
# "search SEED" runs one search, "check" retrains random cell 1 against --baselines.
cell() {
  local name="$1" seed="$2" what="--arch $dir/cells/$3.json" f y r
  [ "$3" = cnn ] && what="--model cnn"
  # One genotype, recipe and seed retrain to the same bits: a cell already retrained at seed 1 under another
  # name (a reselection that kept alpha's cell) takes that run's result instead of another run.
  if [ "$seed" = 1 ] && [ "$3" != cnn ] && [ ! -f "$dir/$name/final.txt" ]; then
    for f in "$dir"/cells/*.json; do
      y=$(basename "$f" .json)
      [ "$y" != "$3" ] && cmp -s "$f" "$dir/cells/$3.json" || continue
      for r in "$dir/$y" "$dir/derived-$y"; do
        [ -f "$r/final.txt" ] || continue
        rm -rf "${dir:?}/$name"; mkdir -p "$dir/$name"; cp "$r/final.txt" "$dir/$name/"
        basename "$r" > "$dir/$name/copied_from"
        echo "$me: $name: the cell of $(basename "$r"), retrained there: its result, not run again" | tee "$dir/$name/log" >&2
        return 0
      done
    done
  fi
  run "$name" train --data "$shards" $retrain_recipe --seed "$seed" $what
}
search() {
  run "search-$config-$1" search --data "$shards" $search_recipe --epochs "$search_epochs" --seed "$1" $search_flags
}
# derived SEED: the cells a finished search derived (--select's, and alpha's where it differs), as tasks
derived() {
  local sd="$dir/search-$config-$1" g tag
  for g in genotype genotype_alpha; do
    [ -f "$sd/$g.json" ] || continue
    [ "$g" = genotype_alpha ] && cmp -s "$sd/genotype.json" "$sd/$g.json" && continue
    tag="$config-$1"; [ "$g" = genotype_alpha ] && tag="$config.alpha-$1"
    cp "$sd/$g.json" "$dir/cells/$tag.json"
    echo "cell derived-$tag 1 $tag"
  done
}
# reselect SEED: the finished search's checkpoint copied aside and its cell chosen again with --select
# $reselect into reselect-CONFIG.HOW-SEED/ (the search's own directory keeps its files)
reselect() {
  local rd="$dir/reselect-$config.$reselect-$1"
  [ -f "$rd/final.txt" ] && return 0
  rm -rf "$rd"; mkdir -p "$rd"
  cp "$dir/search-$config-$1/search.dpc" "$rd/"
  echo "$me: $(date -u +%H:%M) reselect-$config.$reselect-$1" >&2
  # shellcheck disable=SC2086
  if ! dp_mpirun "$ranks" "$build/dptrain" search --data "$shards" $search_recipe --epochs "$search_epochs" \
      --seed "$1" $search_flags --reselect --select "$reselect" --out "$rd" >>"$rd/log" 2>&1; then
    echo "$me: reselect-$config.$reselect-$1 failed (log: $rd/log):" >&2; tail -5 "$rd/log" >&2; exit 1
  fi
  grep '^final:' "$rd/log" | tail -1 > "$rd/final.txt"
}
# rank_cells SEED: the finished search's supernet measures every cell of cells/ one-shot (sample.jsonl) on the
# whole held-out half (--select-batches is capped at it; its default, 8 batches of 512 images, would leave a
# binomial sd of ~.014), then
# each one-shot accuracy beside that cell's retrained one (the protocol.csv row X, derived-X or diag-X of X.json)
rank_cells() {
  local od="$dir/oneshot-$config-$1" f="$dir/search-$config-$1/search.dpc"
  [ -f "$f" ] || { echo "$me: --rank-cells: $f: no finished search" >&2; return 0; }
  if [ ! -f "$od/final.txt" ]; then
    rm -rf "$od"; mkdir -p "$od"; cp "$f" "$od/"
    # shellcheck disable=SC2086
    if ! dp_mpirun "$ranks" "$build/dptrain" search --data "$shards" $search_recipe --epochs "$search_epochs" \
        --seed "$1" $search_flags --reselect --select sample --select-samples 0 --select-candidates "$dir/cells" \
        --select-batches 1000000 \
        --out "$od" >>"$od/log" 2>&1; then
      echo "$me: oneshot-$config-$1 failed (log: $od/log):" >&2; tail -5 "$od/log" >&2; exit 1
    fi
    grep '^final:' "$od/log" | tail -1 > "$od/final.txt"
  fi
  while read -r line; do
    printf '%s,%s\n' "$(json_field source <<<"$line")" "$(json_field acc <<<"$line")"
  done < "$od/sample.jsonl" | awk -F, -v OFS=, -v csv="$dir/protocol.csv" '
    BEGIN { while ((getline l < csv) > 0) { split(l, a, ","); if (a[9] !~ /^=/) acc[a[1]] = a[6] } } # a copy: counted once
    $1 != "alpha" { c = $1; sub(/\.json$/, "", c)
      r = (c in acc) ? acc[c] : ("derived-" c in acc) ? acc["derived-" c] : ("diag-" c in acc) ? acc["diag-" c] : ""
      if (r != "") print c, $2, r }' > "$od/oneshot.csv"
  echo "one-shot ranking on search-$config-$1 (cell, one-shot held-out accuracy, retrained test accuracy):"
  sort -t, -k2,2gr "$od/oneshot.csv" | awk -F, '{ printf "  %-24s %.4f %.4f\n", $1, $2, $3 }'
  awk -F, '{ n++; x[n] = $2; y[n] = $3; c[n] = $1 }
    function ranks(v, rk,   i, j, less, same) {   # average ranks, ties shared
      for (i = 1; i <= n; i++) { less = 0; same = 0
        for (j = 1; j <= n; j++) { less += v[j] < v[i]; same += v[j] == v[i] }
        rk[i] = less + (same + 1) / 2 } }
    END {
      if (n < 3) { print "  fewer than 3 retrained cells: no correlation"; exit }
      for (i = 1; i < n; i++) for (j = i + 1; j <= n; j++) {   # Kendall tau-b
        dx = x[i] - x[j]; dy = y[i] - y[j]; p = dx * dy
        if (p > 0) con++; else if (p < 0) dis++
        if (dx != 0) nx++; if (dy != 0) ny++ }
      tau = (nx && ny) ? (con - dis) / sqrt(nx * ny) : 0
      ranks(x, rx); ranks(y, ry); mx = (n + 1) / 2
      for (i = 1; i <= n; i++) { sxy += (rx[i] - mx) * (ry[i] - mx); sxx += (rx[i] - mx) ^ 2; syy += (ry[i] - mx) ^ 2 }
      b = 1; for (i = 2; i <= n; i++) if (x[i] > x[b]) b = i
      printf "  %d cells: Kendall tau %.2f (sd %.2f if unrelated), Spearman rho %.2f; the one-shot best, %s, retrained %.4f (rank %g of %d)\n",
        n, tau, sqrt(2 * (2 * n + 5) / (9 * n * (n - 1))), (sxx && syy) ? sxy / sqrt(sxx * syy) : 0, c[b], y[b],
        n + 1 - ry[b], n }' "$od/oneshot.csv"
}
# The imported baselines hold only if this machine retrains their random cell 1 to the same network and,
# within the seed noise, to the same accuracy.
check() {
  cell random1 1 random1
  local f="$dir/random1/final.txt"
  grep -v '^#' "$baselines" | awk -F, -v m="$(field mflops "$f")" -v p="$(field params "$f")" \
      -v a="$(field test_acc "$f")" -v me="$me" -v file="$baselines" "$awk_stats"'
    $1 == "random1" { fm = $4; fp = $5; fa = $6 }
    $1 == "random1" || $2 == "noise" { z[++nz] = $6 }
    END {
      if (fa == "") { printf "%s: %s has no random1 row\n", me, file > "/dev/stderr"; exit 1 }
      if (nz < 2) { printf "%s: %s has no seed-noise rows\n", me, file > "/dev/stderr"; exit 1 }
      s = sd(z, nz, mean(z, nz))
      dm = m - fm; if (dm < 0) dm = -dm   # FILE may round MFLOPs to 2 decimals
      if (dm > 0.006 || p + 0 != fp + 0) {
        printf "%s: random cell 1 here is %s MFLOPs, %s params; %s says %s, %s: not the same cell\n",
          me, m, p, file, fm, fp > "/dev/stderr"; exit 1 }
      d = a - fa; if (d < 0) d = -d
      printf "%s: random cell 1 here %.4f, %s %.4f (|diff| %.4f, seed-noise sd %.4f)\n", me, a, file, fa, d, s > "/dev/stderr"
      if (d > 2 * s) { printf "%s: more than two seed-noise sds apart: the baselines do not hold here\n", me > "/dev/stderr"; exit 1 }
    }'
}

# every random genotype, even under --baselines: --rank-cells scores them against the imported accuracies
for i in $(seq 1 "$nrandom"); do
  [ -f "$dir/cells/random$i.json" ] ||
    "$build/dptrain" search --random-genotype "$dir/cells/random$i.json" --seed "$((1000 + i))" >/dev/null
done
[ -z "$genotype" ] || cp "$genotype" "$dir/cells/given.json"
tasks=()
if [ -z "$baselines" ]; then
  for i in $(seq 1 "$nrandom"); do tasks+=("cell random$i 1 random$i"); done
  tasks+=("cell cnn 1 cnn")
  for s in $(seq 2 "$noise"); do tasks+=("cell random1-seed$s $s random1"); done
else
  tasks+=(check)
fi
for s in $seeds; do tasks+=("search $s"); done
[ -z "$genotype" ] || tasks+=("cell derived-given 1 given")

# --jobs N runs N tasks at once, each in the background; a finished search puts its derived cells at the
# front of the queue. After a failure nothing new starts; the running tasks finish (their work is kept for
# the next run) and the script exits 1.
[ "$jobs" -le 1 ] || export DP_MPIRUN_UNBOUND=1   # concurrent mpiruns would all bind to the first cores
declare -A running=()
failed=0
while [ "${#tasks[@]}" -gt 0 ] || [ "${#running[@]}" -gt 0 ]; do
  while [ "$failed" = 0 ] && [ "${#tasks[@]}" -gt 0 ] && [ "${#running[@]}" -lt "$jobs" ]; do
    # shellcheck disable=SC2086
    ( ${tasks[0]} ) &
    running[$!]="${tasks[0]}"; tasks=("${tasks[@]:1}")
  done
  [ "${#running[@]}" -gt 0 ] || break
  st=0; wait -n -p pid || st=$?
  t="${running[$pid]}"; unset "running[$pid]"
  if [ "$st" != 0 ]; then failed=1; echo "$me: '$t' failed" >&2; continue; fi
  if [[ "$t" == search* ]]; then
    mapfile -t more < <(derived "${t#search }")
    [ -z "$reselect" ] || more+=("reselect ${t#search }")
    tasks=("${more[@]}" "${tasks[@]}")
  elif [[ "$t" == reselect* ]]; then # its cell, retrained
    tag="$config.$reselect-${t#reselect }"
    cp "$dir/reselect-$tag/genotype.json" "$dir/cells/$tag.json"
    tasks=("cell derived-$tag 1 $tag" "${tasks[@]}")
  fi
done
[ "$failed" = 0 ] || exit 1

# the table: every retrained network this directory holds (other configurations' too)
csv="$dir/protocol.csv"
echo "network,kind,seed,mflops,params,test_acc,train_samples_per_s,wall_s,source" > "$csv"
for f in "$dir"/*/final.txt; do
  d=$(dirname "$f"); n=$(basename "$d"); k=$(run_kind "$n")
  [ "$k" != none ] || continue
  [ "$k" != other ] ||
    { echo "$me: $d is not a protocol run (random*, cnn, derived-*, diag-*): left out of the table" >&2; continue; }
  seed=1; [[ "$n" =~ -seed([0-9]+)$ ]] && seed="${BASH_REMATCH[1]}"
  # a copied result cost no wall here: its speed and wall stay with the run that made it
  src=here speed=$(field train_samples_per_s "$f") wall=$(field wall_s "$f")
  [ -f "$d/copied_from" ] && { src="=$(cat "$d/copied_from")"; speed=""; wall=""; }
  echo "$n,$k,$seed,$(field mflops "$f"),$(field params "$f"),$(field test_acc "$f"),$speed,$wall,$src" >> "$csv"
done
if [ -n "$baselines" ]; then # the imported rows this directory did not retrain
  grep -v '^#' "$baselines" | awk -F, -v OFS=, -v src="$(basename "$baselines")" -v d="$dir" '
    NR > 1 && ($2 == "random" || $2 == "noise" || $2 == "cnn") {
      if ((getline line < (d "/" $1 "/final.txt")) > 0) next
      print $1, $2, $3, $4, $5, $6, $7, $8, src }' >> "$csv"
fi
printf "%-28s %-8s %4s %8s %8s %8s %10s %7s %s\n" network kind seed MFLOPs params test_acc samples/s wall_s source
tail -n +2 "$csv" | sort -t, -k2,2 -k1,1 | awk -F, '{ printf "%-28s %-8s %4s %8.2f %8d %8.4f %10s %7s %s\n", $1,$2,$3,$4,$5,$6,
  ($7 == "" ? "-" : sprintf("%.0f", $7)), ($8 == "" ? "-" : sprintf("%.0f", $8)), $9 }'
for s in $seeds; do
  f="$dir/search-$config-$s/final.txt"
  [ -f "$f" ] && echo "search $config seed $s: $(field epochs "$f") epochs, $(field wall_s "$f") s wall, $(field train_images_per_s "$f") images/s, $(field peak_rss_mb "$f") MB/rank, held-out $(field val_acc "$f")"
done
# the verdict of issue 22 per configuration (derived-CONFIG-SEED): each derived cell above the random mean,
# their mean above it by two standard errors of the random mean, the best derived at least the best random
rm -f "$dir/plot_line.dat"
awk -F, "$awk_stats"'
  NR == 1 { next }
  $2 == "random" { r[++nr] = $6; rf[nr] = $4 }
  $2 == "noise" || $1 == "random1" { z[++nz] = $6 }
  $2 == "derived" { c = $1; sub(/^derived-/, "", c); sub(/-[0-9]+$/, "", c)
                    if (!(c in nd)) cfgs[++nc] = c; d[c, ++nd[c]] = $6; df[c, nd[c]] = $4 }
  END {
    if (nr < 2) { print "fewer than 2 random cells retrained: no verdict yet"; exit }
    rm = mean(r, nr); rs = sd(r, nr, rm); se = rs / sqrt(nr); rb = r[1]
    for (i = 2; i <= nr; i++) if (r[i] > rb) rb = r[i]
    printf "random cells: %d, mean %.4f, sd %.4f, standard error %.4f, best %.4f\n", nr, rm, rs, se, rb
    if (nz >= 2) { zm = mean(z, nz); printf "seed noise (random1, %d seeds): sd %.4f\n", nz, sd(z, nz, zm) }
    # Bigger cells retrain better, and searches pick bigger cells: the least-squares line of accuracy on
    # MFLOPs through the random cells says what a random cell of a derived cell'"'"'s cost would reach.
    fm = mean(rf, nr); sxx = 0; sxy = 0
    for (i = 1; i <= nr; i++) { sxx += (rf[i] - fm) ^ 2; sxy += (rf[i] - fm) * (r[i] - rm) }
    slope = sxx > 0 ? sxy / sxx : 0; icpt = rm - slope * fm; ss = 0
    for (i = 1; i <= nr; i++) ss += (r[i] - icpt - slope * rf[i]) ^ 2
    lsd = nr > 2 ? sqrt(ss / (nr - 2)) : 0
    if (nr > 2) printf "random cells against MFLOPs: %+.5f per MFLOP, residual sd %.4f\n", slope, lsd
    if (line != "") printf "%g %g\n", slope, icpt > line
    for (k = 1; k <= nc; k++) {
      c = cfgs[k]; n = nd[c]; s = 0; db = d[c, 1]; all = 1; res = 0; mf = 0
      for (i = 1; i <= n; i++) { s += d[c, i]; if (d[c, i] > db) db = d[c, i]; if (d[c, i] <= rm) all = 0
                                 res += d[c, i] - icpt - slope * df[c, i]; mf += df[c, i] }
      dm = s / n
      printf "config %s: %d derived, mean %.4f (%+.4f, %.2f standard errors), best %.4f\n", c, n, dm, dm - rm,
        (se > 0 ? (dm - rm) / se : 0), db
      if (nr > 2) printf "  for their cost (mean %.2f MFLOPs, random %.2f): %+.4f against the random line (%.2f residual sds)\n",
        mf / n, fm, res / n, (lsd > 0 ? res / n / lsd : 0)
      printf "  verdict: each above the random mean %s; mean >= 2 SE above %s; best >= best random %s\n",
        (all ? "yes" : "no"), ((se > 0 && dm - rm >= 2 * se) ? "yes" : "no"), ((db >= rb) ? "yes" : "no")
    }
  }' line="$dir/plot_line.dat" "$csv"
echo "csv: $csv"
if [ "$rank_cells" = 1 ]; then for s in $seeds; do rank_cells "$s"; done; fi
if [ "$plot" = 1 ]; then
  for k in random noise cnn derived; do awk -F, -v k="$k" '$2 == k { n = $1; sub(/^derived-/, "", n); print $4, $6, n }' "$csv" > "$dir/plot_$k.dat"; done
  line_plot=""
  if [ -s "$dir/plot_line.dat" ]; then
    read -r slope icpt < "$dir/plot_line.dat"
    line_plot=", $icpt + $slope * x with lines dt 2 lc rgb \"#999999\" title \"random cells' line\""
  fi
  dp_plot "$dir/protocol.png" 900,560 <<GP
set xlabel "MFLOPs per image (retrained network)"; set ylabel "test accuracy"; set key bottom right; set grid
set offsets graph 0.03, graph 0.03, graph 0.1, graph 0.03
plot "$dir/plot_random.dat" using 1:2 with points pt 7 ps 1.2 lc rgb "#999999" title "random cells", \
     "$dir/plot_noise.dat" using 1:2 with points pt 6 ps 1.2 lc rgb "#999999" title "random cell 1, other seeds", \
     "$dir/plot_cnn.dat" using 1:2 with points pt 5 ps 1.4 lc rgb "#1f77b4" title "cnn", \
     "$dir/plot_derived.dat" using 1:2:3 with labels point pt 9 ps 1.6 lc rgb "#d62728" offset 0,1 font ",8" title "derived"$line_plot
GP
  if [ "$rank_cells" = 1 ]; then
    p=""; for s in $seeds; do f="$dir/oneshot-$config-$s/oneshot.csv"
      [ -s "$f" ] && p="$p${p:+, }\"$f\" using 2:3 with points pt 7 ps 1.2 title \"search seed $s\""; done
    [ -z "$p" ] || dp_plot "$dir/oneshot-$config.png" 700,520 <<GP
set datafile separator ","; set grid; set key bottom right
set xlabel "one-shot held-out accuracy (the cell cut out of the supernet)"; set ylabel "retrained test accuracy"
plot $p
GP
  fi
fi
