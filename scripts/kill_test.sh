#!/usr/bin/env bash
# Crash-safety check: SIGKILLs a Flow-VAE run at random moments (training, checkpoint writes,
# evaluation) up to KILLS times, resuming after each, then checks that metrics.csv (without
# its wall-time column), the best checkpoint and the test NLL equal an uninterrupted run's.
#   scripts/kill_test.sh [KILLS=20] [SEED=1]
set -euo pipefail
cd "$(dirname "$0")/.."
kills_wanted=${1:-20}
seed=${2:-1}
cargo build -q -p flowvae
bin=$PWD/target/debug/flowvae
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/exp.yaml" <<YAML
name: kill
seed: 3
data: {source: digits}
model: {latent: 8, encoder: {hidden: [256, 128]}, decoder: {hidden: [128, 256]}}
flow: [{planar: {k: 4}}, {affine_coupling: {k: 2, hidden: [64]}}]
objective: {warmup_epochs: 5}
train: {epochs: 15, batch_size: 20}
eval: {nll_samples: 3000, nll_chunk: 500, nll_batch: 50}
YAML
export RUST_LOG=error
"$bin" run "$work/exp.yaml" --results "$work" --run-id full >/dev/null
run="$work/kill/killed"
RANDOM=$seed
kills=0
phases=()
"$bin" run "$work/exp.yaml" --results "$work" --run-id killed >/dev/null 2>&1 &
pid=$!
while [ "$kills" -lt "$kills_wanted" ]; do
  sleep "$((RANDOM % 2)).$(printf "%03d" $((RANDOM % 1000)))"
  if ! kill -0 "$pid" 2>/dev/null; then
    wait "$pid" || true
    [ -f "$run/summary.json" ] && break
  else
    rows=$(($(wc -l < "$run/metrics.csv" 2>/dev/null || echo 1) - 1))
    if [ "$rows" -ge 15 ]; then phases+=("evaluation"); else phases+=("epoch $rows"); fi
    kill -9 "$pid"; wait "$pid" 2>/dev/null || true
    kills=$((kills + 1))
  fi
  "$bin" run --resume "$run" >/dev/null 2>&1 &
  pid=$!
done
wait "$pid" || true
[ -f "$run/summary.json" ] || "$bin" run --resume "$run" >/dev/null
echo "kills: $kills at: ${phases[*]:-none}"
strip() { sed 's/,[^,]*$//' "$1/metrics.csv"; }
nll() { grep -o '"nll": [-0-9.e]*' "$1/summary.json"; }
if diff <(strip "$work/kill/full") <(strip "$run") >/dev/null \
   && cmp -s "$work/kill/full/checkpoints/best.safetensors" "$run/checkpoints/best.safetensors" \
   && [ "$(nll "$work/kill/full")" = "$(nll "$run")" ]; then
  echo "PASS: $kills kills survived; metrics, best checkpoint and test NLL identical"
else
  echo "FAIL: the resumed run differs from the uninterrupted one" >&2
  exit 1
fi
