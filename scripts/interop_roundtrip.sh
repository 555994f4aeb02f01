#!/usr/bin/env bash
# Interop check: a checkpoint written by flowvae is read by Python's `safetensors`, written
# back by Python, and flowvae evaluates the Python-written file to the same test NLL.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c "import safetensors, numpy" 2>/dev/null || pip install -q safetensors numpy
cargo build -q -p flowvae
bin=target/debug/flowvae
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
$bin run experiments/quickstart.yaml --results "$work" --run-id a \
  --set 'variants=[]' --set 'flow=[{planar: {k: 4}}]' --set train.epochs=3 --set eval.nll_samples=50 >/dev/null
run="$work/quickstart/a"
cp -r "$run" "$work/python"
python3 scripts/check_safetensors.py "$run/checkpoints/best.safetensors" \
  --rewrite "$work/python/checkpoints/best.safetensors"
a=$($bin eval "$run" --samples 50 | grep -o 'test NLL [0-9.]*')
b=$($bin eval "$work/python" --samples 50 | grep -o 'test NLL [0-9.]*')
echo "flowvae-written: $a; python-written: $b"
[ "$a" = "$b" ] && echo "interop round trip: OK" || { echo "interop round trip: MISMATCH" >&2; exit 1; }
