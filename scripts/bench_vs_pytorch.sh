#!/usr/bin/env bash
# Side-by-side speed of the benchmark Flow-VAE (DESIGN §9): flowvae against PyTorch eager and
# torch.compile, K = 0 and K = 16, run ALTERNATELY in one invocation, with ratios ours/PyTorch.
# --sylvester adds the three Sylvester posteriors (4 layers each: orthogonal M = 32,
# Householder with 8 reflections, triangular) on the same model.
#
#   scripts/bench_vs_pytorch.sh [--steps 300] [--warmup 20] [--rounds 2] [--no-compile]
#                               [--no-nll] [--sylvester] [--only-sylvester]
#
# Builds flowvae in release (CARGO_TARGET_DIR honoured), installs torch with pip when missing
# (plain `pip install torch` from PyPI), and warns when other processes keep the machine
# busy or (on a VM) the hypervisor steals CPU: 2-thread timings collapse under contention.
# Raw JSON lines go to $OUT (default results/bench/raw-<timestamp>.jsonl); the table goes to
# stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

STEPS=300 WARMUP=20 ROUNDS=2 COMPILE=1 NLL=1 PLANAR=1 SYLVESTER=0
while [ $# -gt 0 ]; do
    case "$1" in
        --steps) STEPS=$2; shift 2 ;;
        --warmup) WARMUP=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --no-compile) COMPILE=0; shift ;;
        --no-nll) NLL=0; shift ;;
        --sylvester) SYLVESTER=1; shift ;;
        --only-sylvester) SYLVESTER=1; PLANAR=0; NLL=0; shift ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

PY=${PYTHON:-python3}
TARGET=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p flowvae
BIN="$TARGET/release/flowvae"
if ! "$PY" -c 'import torch' 2>/dev/null; then
    echo "torch missing: pip install torch (large download)" >&2
    "$PY" -m pip install torch
fi

mkdir -p results/bench
OUT=${OUT:-results/bench/raw-$(date -u +%Y%m%dT%H%M%SZ).jsonl}
: > "$OUT"

cores=$(nproc)
# Share of the machine other processes use, from /proc/stat over one idle second just before
# a run. The load average cannot say this here: it still counts the previous benchmark run for
# about a minute, so it warned on the script's own load.
check_load() {
    local busy
    busy=$(
        { awk '/^cpu /{print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat
          sleep 1
          awk '/^cpu /{print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat
        } | paste -sd' ' | awk '{d = $4 - $2; printf "%.2f", (d > 0 ? 1 - ($3 - $1) / d : 0)}'
    )
    if awk -v b="$busy" 'BEGIN { exit !(b > 0.25) }'; then
        echo "WARNING: other processes use ${busy} of the $cores cores: timings are not reliable" >&2
    fi
    echo "$busy"
}

# "steal total" jiffies from /proc/stat: on a VM the hypervisor's steal time says how much of
# the CPU other tenants took, which the load average does not show.
cpu_jiffies() { awk '/^cpu /{t=0; for(i=2;i<=NF;i++) t+=$i; print $9, t}' /proc/stat; }

run() { # label, case (a table row group), command...
    local label=$1 case=$2; shift 2
    local load line before after steal
    load=$(check_load)
    before=$(cpu_jiffies)
    line=$("$@" | tail -n 1)
    after=$(cpu_jiffies)
    steal=$(echo "$before $after" | awk '{d = $4 - $2; printf "%.3f", (d > 0 ? ($3 - $1) / d : 0)}')
    if awk -v s="$steal" 'BEGIN { exit !(s > 0.05) }'; then
        echo "WARNING: $label: the hypervisor stole ${steal} of the CPU during the run: timings are not reliable" >&2
    fi
    echo "$line" | "$PY" -c "import json,sys; d=json.loads(sys.stdin.read()); d['busy_before']=$load; d['steal']=$steal; d['label']='$label'; d['case']='$case'; print(json.dumps(d))" >> "$OUT"
    echo "  $label: $(tail -n 1 "$OUT" | "$PY" -c "import json,sys; d=json.loads(sys.stdin.read()); print(d.get('error') or '%.2f ms/step, %.0f samples/s' % (d['median_ms'], d['samples_per_s']))") (others busy $load, steal $steal)" >&2
}

# One case, alternating implementations: case name, flowvae's flags, bench_pytorch.py's flags.
case_round() {
    local case=$1 ours=$2 theirs=$3
    echo "round $round, $case" >&2
    # shellcheck disable=SC2086 # the flag strings are word lists
    run "flowvae" "$case" "$BIN" bench train $ours --steps "$STEPS" --warmup "$WARMUP" --json
    # shellcheck disable=SC2086
    run "pytorch-eager" "$case" "$PY" scripts/bench_pytorch.py $theirs --steps "$STEPS" --warmup "$WARMUP"
    if [ "$COMPILE" = 1 ]; then
        # shellcheck disable=SC2086
        run "pytorch-compile" "$case" "$PY" scripts/bench_pytorch.py $theirs --steps "$STEPS" --warmup "$WARMUP" --compile
    fi
}

declare -A SYLVESTER_STACK=(
    [sylvester_orthogonal]='[{sylvester_orthogonal: {k: 4, m: 32}}]'
    [sylvester_householder]='[{sylvester_householder: {k: 4, reflections: 8}}]'
    [sylvester_triangular]='[{sylvester_triangular: {k: 4}}]'
)
for round in $(seq 1 "$ROUNDS"); do
    if [ "$PLANAR" = 1 ]; then
        for k in 0 16; do
            case_round "K=$k" "--k $k" "--k $k"
        done
    fi
    if [ "$SYLVESTER" = 1 ]; then
        for kind in sylvester_orthogonal sylvester_householder sylvester_triangular; do
            echo "round $round, $kind" >&2
            run "flowvae" "$kind" "$BIN" bench train --flow "${SYLVESTER_STACK[$kind]}" --steps "$STEPS" --warmup "$WARMUP" --json
            run "pytorch-eager" "$kind" "$PY" scripts/bench_pytorch.py --flow "$kind" --steps "$STEPS" --warmup "$WARMUP"
            if [ "$COMPILE" = 1 ]; then
                run "pytorch-compile" "$kind" "$PY" scripts/bench_pytorch.py --flow "$kind" --steps "$STEPS" --warmup "$WARMUP" --compile
            fi
        done
    fi
done
if [ "$NLL" = 1 ]; then
    check_load > /dev/null
    "$BIN" bench nll --k 16 --json >> "$OUT"
fi

"$PY" - "$OUT" <<'PYEOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
train = [r for r in rows if "median_ms" in r]
def best(label, case):
    xs = [r["median_ms"] for r in train if r.get("label") == label and r.get("case") == case]
    return statistics.median(xs) if xs else None
cases = list(dict.fromkeys(r.get("case") for r in train))
print("| posterior | impl | median ms/step | samples/s | ours / this (speed ratio) |")
print("|---|---|---|---|---|")
for case in cases:
    ours = best("flowvae", case)
    for label in ("flowvae", "pytorch-eager", "pytorch-compile"):
        ms = best(label, case)
        if ms is None:
            continue
        ratio = "" if label == "flowvae" or ours is None else f"{ms / ours:.2f}x"
        print(f"| {case} | {label} | {ms:.2f} | {100 / (ms / 1e3):.0f} | {ratio} |")
for r in rows:
    if "amortized_samples_per_s" in r:
        print(f"\nNLL (K={r['k']}, {r['images']} images, S={r['samples']}, chunk {r['chunk']}): "
              f"encoder once {r['amortized_samples_per_s']:.0f} samples/s, replicated "
              f"{r['replicated_samples_per_s']:.0f} samples/s, {r['speedup']:.2f}x")
loads = [r["busy_before"] for r in rows if "busy_before" in r]
if loads:
    print(f"\nshare of the cores other processes used before runs: min {min(loads):.2f}, max {max(loads):.2f}")
steals = [r["steal"] for r in rows if "steal" in r]
if steals:
    print(f"CPU stolen by the hypervisor during runs: max {max(steals):.1%}")
print(f"raw: {sys.argv[1]}")
PYEOF
