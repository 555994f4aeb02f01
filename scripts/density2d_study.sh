#!/usr/bin/env bash
# The 2-D density study of issue 16: RealNVP, MAF, NSF coupling and NSF autoregressive at the
# same parameter budget on four targets, one run each (seed 0), then the table.
#   scripts/density2d_study.sh [flowvae binary]      (default: target/release/flowvae)
# Runs land in results/density2d/<flow>-<target>/; finished runs (summary.json present) are
# kept, so the script continues where it stopped. The table goes to results/density2d/table.md
# (results/density2d/README.md holds the committed table with its discussion).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/flowvae}
flows=(realnvp maf nsf_coupling nsf_autoregressive)
targets=(two_moons eight_gaussians checkerboard rings)
for target in "${targets[@]}"; do
  for flow in "${flows[@]}"; do
    run=results/density2d/$flow-$target
    if [[ -f $run/summary.json ]]; then continue; fi
    if [[ -d $run ]]; then
      echo "$run exists without summary.json (an interrupted run): remove it to rerun" >&2
      exit 1
    fi
    "$bin" run "experiments/density2d_$flow.yaml" --set "target.samples=$target" --run-id "$flow-$target"
  done
done
python3 - "${flows[*]}" "${targets[*]}" <<'PY'
import json, sys
flows, targets = sys.argv[1].split(), sys.argv[2].split()
names = {"realnvp": "RealNVP", "maf": "MAF", "nsf_coupling": "NSF coupling",
         "nsf_autoregressive": "NSF autoregressive"}
def summary(flow, target):
    with open(f"results/density2d/{flow}-{target}/summary.json") as f:
        return json.load(f)
lines = ["| flow | parameters | " + " | ".join(targets) + " | train s (mean) |",
         "|---" * (len(targets) + 3) + "|"]
for flow in flows:
    runs = [summary(flow, t) for t in targets]
    nll = " | ".join(f"{r['final']['test_nll']:.3f}" for r in runs)
    seconds = sum(r["train_seconds"] for r in runs) / len(runs)
    lines.append(f"| {names[flow]} | {runs[0]['parameters']:,} | {nll} | {seconds:.0f} |")
lines += ["", "| target | " + " | ".join(names[f] for f in flows) + " |",
          "|---" * (len(flows) + 1) + "|"]
for target in targets:
    cells = " | ".join(f'<img src="{f}-{target}/plots/density.png" width="260">' for f in flows)
    lines.append(f"| {target} | {cells} |")
with open("results/density2d/table.md", "w") as f:
    f.write("\n".join(lines) + "\n")
print("\n".join(lines[: len(flows) + 2]))
PY
