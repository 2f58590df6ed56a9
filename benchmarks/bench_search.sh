#!/usr/bin/env bash
# DARTS supernet search, dptrain against PyTorch 1.13 (benchmarks/darts_torch.py,
# Debian's python3-torch), one thread per process, side by side in one run:
# the same supernet (layers x channels), batch, first-order bilevel step (an
# alpha step on a held-out batch, then a weight step on a training batch) on
# Fashion-MNIST. Runs alternate dptrain/torch; prints a table of median
# training images/s (weight-step images only), their ratio, peak RSS per rank
# (torch: its one process) and its ratio, and writes a CSV of every run plus a
# summary CSV.
#
#   benchmarks/bench_search.sh [--configs "5x8 8x16"] [--ks "1 4"] [--edge-norm auto|on|off] [--batch 64]
#       [--strategy darts|gumbel] [--self-distill L] [--steps 10] [--warmup 2] [--reps 3] [--ranks "1 2"]
#       [--impls "dptrain dptrain-rc torch"] [--data DIR] [--tag NAME] [--recompute N|all] [--dp-args "..."]
#       [--torch-args "..."] [--plot [FILE.png]]
#
# --configs   LAYERSxCHANNELS, space-separated (default 5x8)
# --ks        PC-DARTS partial channels K, space-separated (default 1 = DARTS): both sides get
#             --partial-channels K (1/K of each edge's channels through the ops, the rest bypass
#             them, a channel shuffle; edge normalisation on iff K > 1 unless --edge-norm says);
#             K > 1 needs CHANNELS divisible by 2K
# --edge-norm auto (default: on iff K > 1, both sides' default), on or off: passed to both sides
#             The supernets' sizes are checked: darts_torch.py --params-only (run first)
#             against the "N weights + M alphas" line of every dptrain run; a mismatch
#             stops the script. The table prints both counts per config and K.
# --strategy  the mixing, passed to both sides (default darts): gumbel is GDAS (one sampled op per
#             edge computed, tau 10 -> 0.1); without torch in --impls any dptrain strategy goes
# --self-distill L  SD-DARTS' lambda, passed to both sides when > 0 (default 0: off). dptrain's
#             first epoch has no teacher, so dptrain then runs 2 epochs and its images/s is the
#             second's (metrics.jsonl: its steps' images over its epoch_s; the csv's steps column
#             counts both epochs); darts_torch.py's teacher is the net after its warm-up steps, so
#             each timed step pays the teacher forward as every step of dptrain's epoch 2 does
# --steps/--warmup  torch: timed steps after untimed ones (it reports the median
#             step); dptrain: --limit 2*batch*ranks*(steps+warmup), i.e. the same
#             number of steps per rank (the train half of --limit is limit/2
#             images), one epoch; it reports its own images/s over the epoch
# --ranks     dptrain rank counts (mpirun -np P above 1, --batch per rank);
#             torch runs at 1 rank only; the ratio is dptrain(P) / torch(1)
# --impls     what to run: dptrain, dptrain-rc (dptrain search --recompute: cells
#             recomputed in backward) and/or torch (default "dptrain torch")
# --recompute what dptrain-rc passes to --recompute: N cells or all (default all)
# --data      dptrain's shard set (default: benchmarks/out/fashion-mnist, made
#             by common.sh); torch reads /usr/share/datasets/fashion-mnist
# --dp-args   extra flags for `dptrain search`
# --torch-args extra flags for darts_torch.py (e.g. --fused-node: one channel shuffle per node, as dptrain)
# --plot      gnuplot PNG of images/s (default benchmarks/out/search<tag>.png)
#
# Logs of every run: benchmarks/out/search-runs/ (named with the strategy and _sdL when not
# darts / 0); CSVs: benchmarks/out/search<tag>.csv and search<tag>_summary.csv (give another
# --strategy or --self-distill its own --tag, or they replace the last run's).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/usage.sh"
me=bench_search
configs="5x8" batch=64 steps=10 warmup=2 reps=3 ranks="1" impls="dptrain torch" data="" tag="" dp_args=""
plot="" recompute=all ks="1" edge_norm=auto torch_args="" strategy=darts self_distill=0
while [ $# -gt 0 ]; do
  case "$1" in
    --configs) need_arg "$@"; configs="$2"; shift 2 ;;
    --ks) need_arg "$@"; ks="$2"; shift 2 ;;
    --edge-norm) need_arg "$@"; edge_norm="$2"; shift 2 ;;
    --strategy) need_arg "$@"; strategy="$2"; shift 2 ;;
    --self-distill) need_arg "$@"; self_distill="$2"; shift 2 ;;
    --torch-args) [ $# -ge 2 ] || die "--torch-args needs a value"; torch_args="$2"; shift 2 ;;
    --batch) need_arg "$@"; batch="$2"; shift 2 ;;
    --steps) need_arg "$@"; steps="$2"; shift 2 ;;
    --warmup) need_arg "$@"; warmup="$2"; shift 2 ;;
    --reps) need_arg "$@"; reps="$2"; shift 2 ;;
    --ranks) need_arg "$@"; ranks="$2"; shift 2 ;;
    --impls) need_arg "$@"; impls="$2"; shift 2 ;;
    --data) need_arg "$@"; data="$2"; shift 2 ;;
    --tag) need_arg "$@"; tag="_$2"; shift 2 ;;
    --recompute) need_arg "$@"; recompute="$2"; shift 2 ;;
    --dp-args) [ $# -ge 2 ] || die "--dp-args needs a value"; dp_args="$2"; shift 2 ;;
    --plot) if [ $# -ge 2 ] && [ "${2#--}" = "$2" ]; then plot="$2"; shift 2; else plot=default; shift; fi ;;
    -h|--help) dp_usage; exit 0 ;;
    *) die "unknown flag $1 (--help lists them)" ;;
  esac
done
isint() { [[ "$2" =~ ^[0-9]+$ ]] && [ "$2" -ge "$3" ] || die "$1 must be an integer >= $3 (got '$2')"; }
isint --batch "$batch" 1; isint --steps "$steps" 1; isint --warmup "$warmup" 0; isint --reps "$reps" 1
for p in $ranks; do isint --ranks "$p" 1; done
for c in $configs; do [[ "$c" =~ ^[0-9]+x[0-9]+$ ]] || die "--configs entries are LAYERSxCHANNELS (got '$c')"; done
for k in $ks; do
  isint --ks "$k" 1
  for c in $configs; do
    [ "$k" -eq 1 ] || [ $((${c#*x} % (2 * k))) -eq 0 ] ||
      die "--ks $k needs the channels of every config divisible by $((2 * k)) (C/K even); $c's are not"
  done
done
case "$edge_norm" in auto|on|off) ;; *) die "--edge-norm takes auto, on or off (got '$edge_norm')" ;; esac
[ -n "$ks" ] || die "--ks must not be empty"
for i in $impls; do [ "$i" = dptrain ] || [ "$i" = dptrain-rc ] || [ "$i" = torch ] ||
  die "--impls takes dptrain, dptrain-rc and/or torch (got '$i')"; done
[ -n "$configs" ] && [ -n "$ranks" ] && [ -n "$impls" ] || die "--configs, --ranks and --impls must not be empty"
[[ "$strategy" =~ ^[a-z_-]+$ ]] || die "--strategy: '$strategy' is not a strategy name"
[[ " $impls " != *" torch "* ]] || [ "$strategy" = darts ] || [ "$strategy" = gumbel ] ||
  die "--strategy $strategy: darts_torch.py has darts and gumbel only (or leave torch out of --impls)"
[[ "$self_distill" =~ ^([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$ ]] ||
  die "--self-distill must be a number >= 0 (got '$self_distill')"
# sd_on: the self-distillation term is on; sd_flags: what both sides get for it (nothing when off)
sd_on=0 sd_flags=""
if awk -v l="$self_distill" 'BEGIN{ exit !(l + 0 > 0) }'; then sd_on=1 sd_flags="--self-distill $self_distill"; fi
# the run logs' names: today's for darts without distillation, else with these appended
variant=""; [ "$strategy" = darts ] || variant="_$strategy"; [ "$sd_on" -eq 0 ] || variant="${variant}_sd$self_distill"

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
[ -n "$data" ] || data="$shards"
has() { [[ " $impls " == *" $1 "* ]]; }
has_dp() { has dptrain || has dptrain-rc; }
if has torch; then need_torch; fi
if has_dp; then
  "$build/dptrain" search --help >/dev/null 2>&1 ||
    { echo "$me: $build/dptrain has no 'search' command (build it; or run the torch side alone: --impls torch)" >&2; exit 1; }
  [ -f "$data/manifest.txt" ] || { echo "$me: no shard set at $data (manifest.txt missing)" >&2; exit 1; }
  for p in $ranks; do
    if [ "$p" -gt 1 ]; then command -v mpirun >/dev/null || { echo "$me: --ranks $p needs mpirun" >&2; exit 1; }; fi
  done
fi
if [ -n "$plot" ]; then
  command -v gnuplot >/dev/null || { echo "$me: --plot needs gnuplot" >&2; exit 1; }
  [ "$plot" = default ] && plot="$out/search${tag}.png"
fi

logs="$out/search-runs"; mkdir -p "$logs"
csv="$out/search${tag}.csv" summary="$out/search${tag}_summary.csv"
# k and params last: the columns before them keep their places (scripts read them by number)
echo "layers,channels,batch,impl,ranks,rep,steps,train_images_per_s,peak_rss_mb,step_s,val_acc,wall_s,binary,k,params,strategy,self_distill" > "$csv"
# the binary under test, by content: a rebuild in the middle of a run (a shared tree) is flagged
bin_id() { sha256sum "$build/dptrain" | cut -c1-12; }
bin0=""; if has_dp; then bin0=$(bin_id); fi

# sfield KEY FILE: KEY=... on the torch_search: line
sfield() { sed -n "s/^torch_search:.* $1=\([0-9.e+-]*\).*/\1/p" "$2" | head -n1; }
fail() { echo "$me: $1; log $2:" >&2; tail -n 30 "$2" >&2; exit 1; }
# the flags that make the supernet PC-DARTS, the same on both sides
pc_flags() { local f="--partial-channels $1"; [ "$edge_norm" = auto ] || f="$f --edge-norm $edge_norm"; echo "$f"; }
# dp_params LOG: "weights+alphas" from dptrain's header line ("N weights + M alphas")
dp_params() { sed -n 's/^dptrain search:.* \([0-9]*\) weights + \([0-9]*\) alphas.*/\1+\2/p' "$1" | head -n1; }
declare -A torch_params=()  # "L C K" -> "weights+arch" from darts_torch.py --params-only

run() { # run IMPL LAYERS CHANNELS RANKS REP K: one run, one CSV row
  local impl="$1" L="$2" C="$3" P="$4" rep="$5" K="$6" rc=0
  local name="L${L}_C${C}_K${K}_B${batch}_${impl}_np${P}_rep${rep}${variant}${tag}" limit=$((2 * batch * P * (steps + warmup)))
  local pcf; pcf=$(pc_flags "$K")
  local log="$logs/$name.log"
  local t0; t0=$(date +%s.%N)
  if [ "$impl" != torch ]; then
    local dir="$logs/$name" rcflag=""; rm -rf "$dir"
    [ "$impl" = dptrain-rc ] && rcflag="--recompute $recompute"
    local bin; bin=$(bin_id)
    [ "$bin" = "$bin0" ] || echo "$me: WARNING: $build/dptrain changed during the benchmark ($bin0 -> $bin): rows mix binaries (see the csv's binary column)" >&2
    # not --quiet: the header line gives the supernet's size (rank 0, once; the progress lines are few)
    # self-distillation: epoch 1 has no teacher, epoch 2 is the one measured
    local epochs=1; [ "$sd_on" -eq 0 ] || epochs=2
    # shellcheck disable=SC2206  # --dp-args, the PC-DARTS and the distillation flags are split on purpose
    local cmd=("$build/dptrain" search --data "$data" --layers "$L" --channels "$C" --batch "$batch" --epochs "$epochs"
               --limit "$limit" --strategy "$strategy" --out "$dir" --progress plain $pcf $sd_flags $rcflag $dp_args)
    if [ "$P" -gt 1 ]; then dp_mpirun "$P" "${cmd[@]}" >"$log" 2>&1 || rc=$?
    else "${cmd[@]}" >"$log" 2>&1 || rc=$?; fi
    [ "$rc" -eq 0 ] || fail "dptrain search (L=$L C=$C np=$P rep $rep) failed (exit $rc)" "$log"
    local ips rss acc wall st
    ips=$(field train_images_per_s "$log") rss=$(field peak_rss_mb "$log") acc=$(field val_acc "$log")
    wall=$(field wall_s "$log") st=$(field steps "$log")
    [ -n "$ips" ] && [ -n "$rss" ] || fail "dptrain search (L=$L C=$C np=$P rep $rep) printed no 'final: ... train_images_per_s= peak_rss_mb=' line" "$log"
    if [ "$sd_on" -eq 1 ]; then # epoch 2's rate: its steps' images (all ranks) over its epoch_s
      local ep=() e1 e2
      mapfile -t ep < <(grep -s '"kind":"epoch"' "$dir/metrics.jsonl" || true)
      e1="${ep[0]:-}" e2="${ep[1]:-}"
      ips=$(awk -v s1="$(json_field step <<<"$e1")" -v s2="$(json_field step <<<"$e2")" -v es="$(json_field epoch_s <<<"$e2")" \
        -v b="$batch" -v p="$P" 'BEGIN{ if (s2 > s1 && es > 0) printf "%.2f", (s2 - s1) * b * p / es }')
      [ -n "$ips" ] || fail "dptrain search --self-distill (L=$L C=$C np=$P rep $rep): no second epoch's step and epoch_s in $dir/metrics.jsonl" "$log"
    fi
    local np_; np_=$(dp_params "$log")
    [ -n "$np_" ] || fail "dptrain search (L=$L C=$C K=$K) printed no 'N weights + M alphas' line" "$log"
    local tp="${torch_params["$L $C $K"]:-}"
    [ -z "$tp" ] || [ "$tp" = "$np_" ] ||
      fail "L=$L C=$C K=$K: dptrain's supernet has $np_ weights+alphas, darts_torch.py's $tp: not the same network" "$log"
    local step_s; step_s=$(awk -v b="$batch" -v p="$P" -v r="$ips" 'BEGIN{ if (r > 0) printf "%.3f", b*p/r; else print "nan" }')
    echo "$L,$C,$batch,$impl,$P,$rep,${st:-},$ips,$rss,$step_s,${acc:-},${wall:-},$bin,$K,$np_,$strategy,$self_distill" >> "$csv"
  else
    # shellcheck disable=SC2086  # the PC-DARTS and distillation flags and --torch-args are split on purpose
    /usr/bin/python3 "$root/benchmarks/darts_torch.py" --layers "$L" --channels "$C" --batch "$batch" \
      --steps "$steps" --warmup "$warmup" --limit "$limit" --threads 1 $pcf --strategy "$strategy" $sd_flags \
      $torch_args >"$log" 2>&1 || rc=$?
    [ "$rc" -eq 0 ] || fail "darts_torch.py (L=$L C=$C rep $rep) failed (exit $rc)" "$log"
    local ips rss st
    ips=$(sfield train_images_per_s "$log") rss=$(sfield peak_rss_mb "$log") st=$(sfield step_s "$log")
    [ -n "$ips" ] || fail "darts_torch.py (L=$L C=$C rep $rep) printed no 'torch_search:' line" "$log"
    local wall; wall=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
    local tp; tp="$(sfield params "$log")+$(sfield arch_params "$log")"
    echo "$L,$C,$batch,torch,1,$rep,$((steps + warmup)),$ips,$rss,$st,,$wall,torch-$(/usr/bin/python3 -c 'import torch; print(torch.__version__)' 2>/dev/null),$K,$tp,$strategy,$self_distill" >> "$csv"
  fi
  printf "  %-40s %10s images/s %8s MB\n" "$name" "$(tail -n1 "$csv" | cut -d, -f8)" "$(tail -n1 "$csv" | cut -d, -f9)"
}

echo "$me: configs=[$configs] ks=[$ks] edge-norm=$edge_norm strategy=$strategy self-distill=$self_distill batch=$batch steps=$steps+$warmup warmup reps=$reps ranks=[$ranks] impls=[$impls]"
# the supernets' sizes first (cheap): each dptrain run is checked against them
if has torch; then
  for cfg in $configs; do
    for k in $ks; do
      L=${cfg%x*} C=${cfg#*x} plog="$logs/params_L${L}_C${C}_K${k}${tag}.log"
      # shellcheck disable=SC2046,SC2086
      /usr/bin/python3 "$root/benchmarks/darts_torch.py" --params-only --layers "$L" --channels "$C" $(pc_flags "$k") \
        $torch_args >"$plog" 2>&1 || fail "darts_torch.py --params-only (L=$L C=$C K=$k) failed" "$plog"
      torch_params["$L $C $k"]="$(sfield params "$plog")+$(sfield arch_params "$plog")"
      echo "  supernet ${L}x${C} K=$k: darts_torch.py ${torch_params["$L $C $k"]} weights+arch parameters"
    done
  done
fi
for rep in $(seq 1 "$reps"); do
  for cfg in $configs; do
    L=${cfg%x*} C=${cfg#*x}
    for k in $ks; do
      # alternate the order so drift on a shared machine hits both sides
      if [ $((rep % 2)) -eq 1 ]; then order="dptrain dptrain-rc torch"; else order="torch dptrain-rc dptrain"; fi
      for impl in $order; do
        has "$impl" || continue
        if [ "$impl" = torch ]; then run torch "$L" "$C" 1 "$rep" "$k"
        else for p in $ranks; do run "$impl" "$L" "$C" "$p" "$rep" "$k"; done; fi
      done
    done
  done
done

med() { # med IMPL L C P COLUMN K
  awk -F, -v i="$1" -v l="$2" -v c="$3" -v p="$4" -v k="$5" -v K="$6" \
    '$4==i && $1==l && $2==c && $5==p && $14==K && $k!="" {print $k}' "$csv" | median
}
first() { # first IMPL L C K COLUMN: one run's value (the parameter counts)
  awk -F, -v i="$1" -v l="$2" -v c="$3" -v K="$4" -v k="$5" '$4==i && $1==l && $2==c && $14==K {print $k; exit}' "$csv"
}
x() { if [ "$1" = nan ]; then echo -; else echo "${1}x"; fi; }  # a ratio as shown
ratio_of() { awk -v d="$1" -v t="$2" 'BEGIN{ if (d != "nan" && t != "nan" && d != "" && t != "" && t > 0) printf "%.2f", d/t; else print "nan" }'; }
# k and the columns after it are new; the ones before keep their places (the plot reads 1, 6, 7, 12)
echo "config,layers,channels,batch,ranks,dptrain_images_per_s,torch_images_per_s,ratio,dptrain_rss_mb,torch_rss_mb,dptrain_val_acc,rc_images_per_s,rc_ratio,rc_rss_mb,k,edge_norm,rss_ratio,rc_rss_ratio,dptrain_params,torch_params,strategy,self_distill" > "$summary"
printf "\nmedian of %s reps, batch %s, one thread per process; torch: median step of %s after %s warm-up\n" \
  "$reps" "$batch" "$steps" "$warmup"
printf "strategy %s, self-distillation %s%s\n" "$strategy" "$self_distill" \
  "$([ "$sd_on" -eq 0 ] || echo " (dptrain: its 2nd epoch's rate, the 1st has no teacher)")"
printf "ratio = dptrain(ranks) / torch(1 rank) images/s; rss_ratio = dptrain peak RSS per rank / torch's\n\n"
printf "%-7s %3s %5s %13s %13s %8s %10s %10s %9s %8s %10s %8s %9s %9s\n" config K ranks dptrain_img/s torch_img/s ratio \
  dp_rss_MB pt_rss_MB rss_ratio val_acc rc_img/s rc_ratio rc_rss_MB rc_rss_r
for cfg in $configs; do
  L=${cfg%x*} C=${cfg#*x}
  for k in $ks; do
    en=$edge_norm; [ "$en" = auto ] && { [ "$k" -gt 1 ] && en=on || en=off; }
    t=nan tr=nan
    if has torch; then t=$(med torch "$L" "$C" 1 8 "$k"); tr=$(med torch "$L" "$C" 1 9 "$k"); fi
    dpp=$(first dptrain "$L" "$C" "$k" 15); [ -n "$dpp" ] || dpp=$(first dptrain-rc "$L" "$C" "$k" 15)
    tpp=$(first torch "$L" "$C" "$k" 15)
    rows=1; has_dp && rows="$ranks"
    for p in $rows; do
      d=nan dr=nan acc=nan
      if has dptrain; then d=$(med dptrain "$L" "$C" "$p" 8 "$k"); dr=$(med dptrain "$L" "$C" "$p" 9 "$k"); acc=$(med dptrain "$L" "$C" "$p" 11 "$k"); fi
      r=nan rr=nan
      if has dptrain-rc; then r=$(med dptrain-rc "$L" "$C" "$p" 8 "$k"); rr=$(med dptrain-rc "$L" "$C" "$p" 9 "$k"); fi
      ratio=$(ratio_of "$d" "$t") rratio=$(ratio_of "$r" "$t") mratio=$(ratio_of "$dr" "$tr") rmratio=$(ratio_of "$rr" "$tr")
      label="${L}x${C}/np$p"; [ "$k" -eq 1 ] || label="${L}x${C}/K$k/np$p"
      echo "$label,$L,$C,$batch,$p,$d,$t,$ratio,$dr,$tr,$acc,$r,$rratio,$rr,$k,$en,$mratio,$rmratio,${dpp:-},${tpp:-},$strategy,$self_distill" >> "$summary"
      printf "%-7s %3s %5s %13s %13s %8s %10s %10s %9s %8s %10s %8s %9s %9s\n" "${L}x${C}" "$k" "$p" "$d" "$t" "$(x "$ratio")" \
        "$dr" "$tr" "$(x "$mratio")" "$acc" "$r" "$(x "$rratio")" "$rr" "$(x "$rmratio")"
    done
    echo "        supernet ${L}x${C} K=$k (edge normalisation $en), weights+arch parameters: dptrain ${dpp:--}, torch ${tpp:--}"
  done
done
echo; echo "csv: $csv and $summary; logs: $logs/"
if [ "$(awk -F, 'NR>1 && $4!="torch" {print $13}' "$csv" | sort -u | wc -l)" -gt 1 ]; then
  echo "$me: WARNING: the dptrain rows come from more than one build of $build/dptrain (csv column binary)" >&2
fi
if [ -n "$plot" ]; then
  gnuplot <<GP || { echo "$me: gnuplot failed" >&2; exit 1; }
set terminal pngcairo size 800,450 noenhanced
set output "$plot"
set style data histograms; set style histogram clustered gap 1; set style fill solid 0.8
set datafile separator ","; set datafile missing "nan"
set ylabel "training images/s (1 thread per rank)"; set yrange [0:*]; set grid ytics; set key top right
set title "DARTS search (first order, $strategy$([ "$sd_on" -eq 0 ] || echo ", self-distill $self_distill")): dptrain vs PyTorch 1.13, batch $batch"
plot "$summary" every ::1 using 6:xtic(1) title "dptrain",$([[ " $impls " == *" dptrain-rc "* ]] &&
       echo ' "" every ::1 using 12 title "dptrain --recompute",') "" every ::1 using 7 title "PyTorch (1 rank)"
GP
  echo "plot: $plot"
fi
