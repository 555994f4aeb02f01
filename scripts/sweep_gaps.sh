#!/usr/bin/env bash
# The inference-gap reports of a sweep: `flowvae gaps` on the first 100 test images of every
# finished run whose best checkpoint is on disk and that has no report yet, written to
# <sweep>/gaps/seed<S>_<model>_test.json (the names scripts/gaps_table.py reads), then the
# table of them all.
#   scripts/sweep_gaps.sh <sweep folder> [flowvae binary]
# (default binary: target/release/flowvae; one thread). 2–8 CPU-minutes per run. Runs
# still training (no summary.json) and runs whose checkpoints are gone (they are not
# committed) are listed as skipped; existing reports are kept, so a rerun only adds.
set -euo pipefail
cd "$(dirname "$0")/.."
sweep=${1:?usage: scripts/sweep_gaps.sh <sweep folder> [flowvae binary]}
bin=$(realpath "${2:-target/release/flowvae}")
[[ -f $sweep/points.csv ]] || { echo "$sweep/points.csv: not a sweep folder" >&2; exit 2; }
mkdir -p "$sweep/gaps"

# shellcheck source=sweep_runs.sh
source scripts/sweep_runs.sh

finished_runs "$sweep" | while read -r run; do
  name_run "$run"
  out=$sweep/gaps/${seed}_${model}_test.json
  if [[ -f $out ]]; then continue; fi
  if [[ ! -f $run/checkpoints/best.safetensors ]]; then
    echo "skipped $run: no checkpoint on disk (scripts/retrain_gaps.sh retrains it)"
    continue
  fi
  FLOWVAE_THREADS=1 "$bin" gaps "$run" --split test --images 100 --steps 500 \
    --eval-samples 1000 --out "$out" > /dev/null
  echo "wrote $out"
done

shopt -s nullglob
reports=("$sweep"/gaps/*.json)
if ((${#reports[@]})); then scripts/gaps_table.py "${reports[@]}"; fi
