#!/usr/bin/env bash
# The one prepared device check of issue 20, for a GPU machine (written for the H200 machine:
# driver 580 / CUDA 13.0, PyTorch cu130 with the nvidia-* pip libraries, no Rust, no network).
# Budget: about 6 minutes; every step has its own timeout and a failed step does not stop the
# others.
#
#   scripts/gpu-check.sh OUT_DIR [BINARY]
#
# BINARY: the CUDA build of flowvae, plain or xz-compressed (default target/cuda/flowvae.xz,
# what scripts/build-cuda.sh writes; carry that path to the machine). Writes into OUT_DIR:
#   steps.jsonl    one line per step: name, exit code, milliseconds
#   results.jsonl  every JSON line the steps printed (agreement, flowvae and PyTorch benches)
#   <step>.out / <step>.err, and runs/ (a short training on the embedded digits)
# Steps: nvidia-smi; the CPU-vs-GPU agreement of four posteriors (flowvae bench agree, exit 1
# above 1e-4); flowvae bench train at K = 0 and 16, batch 100 and 1000, alternating with
# scripts/bench_pytorch.py on the same settings (PyTorch eager, CUDA); flowvae bench nll; the
# quickstart Flow-VAE trained on the GPU and, for comparison, on the CPU.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/gpu-check.sh OUT_DIR [BINARY]}
source_bin=${2:-target/cuda/flowvae.xz}
mkdir -p "$out"
python=${PYTHON:-python3}

say() { echo "$(date -u +%T) $*" | tee -a "$out/check.log"; }

# step NAME TIMEOUT_S COMMAND...: runs it, records exit code and time, keeps its JSON lines.
step() {
  local name=$1 limit=$2
  shift 2
  say "start $name"
  local started=$(date +%s%N)
  timeout "$limit" "$@" > "$out/$name.out" 2> "$out/$name.err"
  local rc=$?
  local ms=$((($(date +%s%N) - started) / 1000000))
  echo "{\"step\": \"$name\", \"rc\": $rc, \"ms\": $ms}" >> "$out/steps.jsonl"
  grep -h '^{' "$out/$name.out" | sed "s/^{/{\"step\": \"$name\", /" >> "$out/results.jsonl"
  say "done $name: rc $rc, ${ms} ms"
}

# The binary.
bin=$out/flowvae-cuda
case $source_bin in
  *.xz) xz -dc "$source_bin" > "$bin" ;;
  *) cp "$source_bin" "$bin" ;;
esac
chmod +x "$bin"

# CUDA's user-space libraries (cublas, curand, nvrtc, cudart) from the image's pip packages;
# the driver's libcuda.so.1 comes from the system.
libs=$("$python" - <<'PY' 2>/dev/null
import glob, os
try:
    import nvidia
    roots = list(nvidia.__path__)
except ImportError:
    roots = []
print(":".join(sorted({d for r in roots for d in glob.glob(os.path.join(r, "*", "lib"))})))
PY
)
export LD_LIBRARY_PATH=${libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
say "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"

step nvidia-smi 30 nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv
step version 30 "$bin" --version
step agree 120 "$bin" --device cuda bench agree --json
for k in 0 16; do
  for batch in 100 1000; do
    settings=(--k "$k" --batch "$batch" --steps 200 --warmup 20)
    step "train-flowvae-k$k-b$batch" 90 "$bin" --device cuda bench train "${settings[@]}" --json
    step "train-pytorch-k$k-b$batch" 90 "$python" scripts/bench_pytorch.py --device cuda "${settings[@]}"
  done
done
step nll-flowvae 90 "$bin" --device cuda bench nll --k 16 --json
step quickstart-cuda 120 "$bin" --device cuda run experiments/quickstart.yaml \
  --results "$out/runs" --run-id cuda
step quickstart-cpu 120 "$bin" run experiments/quickstart.yaml --results "$out/runs" --run-id cpu
say "finished: $out/steps.jsonl, $out/results.jsonl"
