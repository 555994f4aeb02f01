# Sourced by scripts/sweep_gaps.sh and scripts/retrain_gaps.sh: the finished runs of a sweep
# folder and the names their gap reports get.

# The finished runs of sweep folder $1, one per line: a point folder itself (a grid sweep, one
# model per point) or the model folders of a point (a `variants` sweep).
finished_runs() {
  local point run
  for point in "$1"/p*-seed*/; do
    if [[ -f $point/metrics.csv ]]; then
      [[ -f $point/summary.json ]] && echo "${point%/}"
    else
      for run in "$point"*/; do [[ -f $run/summary.json ]] && echo "${run%/}"; done
    fi
  done
  return 0
}

# Sets `point`, `model` and `seed` for run folder $1. A grid point's model is named by the
# point (`p03`), as its grid label (`flow=[…]`) is not a file name.
name_run() {
  if [[ $(basename "$1") == p*-seed* ]]; then
    point=$1
    model=$(basename "$1")
    model=${model%%-*}
  else
    point=${1%/*}
    model=$(basename "$1")
  fi
  seed=${point##*-}
}
