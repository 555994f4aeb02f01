#!/usr/bin/env bash
# Gap reports for finished sweep runs whose checkpoints are gone (they are not committed):
# retrains each from its committed point config into a scratch folder, checks that every
# epoch's metrics match the committed metrics.csv bit for bit (all columns but the wall time),
# and only then writes <sweep>/gaps/seed<S>_<model>_test.json as scripts/sweep_gaps.sh does.
# A run that does not reproduce is reported and gets no report.
#   scripts/retrain_gaps.sh <sweep folder> <scratch folder> [flowvae binary] [model ...]
# (default binary: target/release/flowvae; one thread; only the named models when given).
# The retrained run's test NLL is skipped (eval.nll_samples=10): the committed one stands.
# One run at a time; start two with disjoint model lists to use two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
usage="usage: scripts/retrain_gaps.sh <sweep folder> <scratch folder> [flowvae binary] [model ...]"
sweep=${1:?$usage}
scratch=${2:?$usage}
bin=$(realpath "${3:-target/release/flowvae}")
shift $(($# < 3 ? $# : 3))
models=" $* "
[[ -f $sweep/points.csv ]] || { echo "$sweep/points.csv: not a sweep folder" >&2; exit 2; }
mkdir -p "$sweep/gaps" "$scratch"

# shellcheck source=sweep_runs.sh
source scripts/sweep_runs.sh

# A metrics.csv without its wall-time column (the one thing a rerun may change).
untimed() {
  awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "time_s") t = i }
    { s = ""; for (i = 1; i <= NF; i++) if (i != t) s = s (s == "" ? "" : ",") $i; print s }' "$1"
}

# The retrained run `id` in the scratch folder (flat or with a model folder), or nothing.
retrained() {
  local id=$1 model=$2 dir
  for dir in "$scratch"/*/"$id"; do
    if [[ -f $dir/metrics.csv ]]; then echo "$dir"; return; fi
    if [[ -f $dir/$model/metrics.csv ]]; then echo "$dir/$model"; return; fi
  done
}

finished_runs "$sweep" | while read -r run; do
  name_run "$run"
  out=$sweep/gaps/${seed}_${model}_test.json
  [[ -f $out || -f $run/checkpoints/best.safetensors ]] && continue
  [[ $models == "  " || $models == *" $model "* ]] || continue
  id=$(basename "$sweep")-$(basename "$point")
  log=$scratch/$id.log
  again=$(retrained "$id" "$(basename "$run")")
  if [[ -z $again || ! -f $again/summary.json ]]; then
    # A run interrupted in an earlier call continues from its checkpoint.
    if [[ -n $again ]]; then start=(--resume "${again%/"$(basename "$run")"}")
    else start=("$point/config.yaml" --set eval.nll_samples=10 --results "$scratch" --run-id "$id"); fi
    if ! FLOWVAE_THREADS=1 "$bin" run "${start[@]}" >> "$log" 2>&1; then
      echo "$id: training failed, see $log"
      continue
    fi
    again=$(retrained "$id" "$(basename "$run")")
  fi
  if ! cmp -s <(untimed "$run/metrics.csv") <(untimed "$again/metrics.csv"); then
    echo "$id: the retrained $model does not reproduce $run/metrics.csv; no report"
    continue
  fi
  FLOWVAE_THREADS=1 "$bin" gaps "$again" --split test --images 100 --steps 500 \
    --eval-samples 1000 --out "$out" >> "$log" 2>&1
  echo "wrote $out ($(($(wc -l < "$again/metrics.csv") - 1)) epochs reproduced bit for bit)"
done

shopt -s nullglob
reports=("$sweep"/gaps/*.json)
if ((${#reports[@]})); then scripts/gaps_table.py "${reports[@]}"; fi
