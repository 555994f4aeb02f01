#!/usr/bin/env bash
# End-to-end check of `flowvae sweep --slurm` on a throw-away single-node Slurm "cluster".
#
# Run as root on Debian 12 (bookworm) from anywhere in the checkout:
#
#   scripts/slurm_local_test.sh
#
# It installs Debian's slurm-wlm and munge if missing, starts munged (only if none answers),
# slurmctld and slurmd on 127.0.0.1 with a private slurm.conf (via SLURM_CONF; nothing in
# /etc/slurm is written), builds flowvae, writes a tiny sweep (digits, 2 epochs, 2 flow stacks
# x 2 seeds), submits the generated submit.sh, waits for the queue to drain and checks that
# every point has summary.json and that comparison.md has mean ± std. It prints PASS or FAIL.
# On exit it cancels its jobs and stops the daemons it started.
#
# Environment:
#   SLURM_TEST_DIR      work folder (config, state, logs, sweep); default /tmp/flowvae-slurm-test.
#                       Wiped at the start; removed after a PASS unless KEEP=1.
#   SLURM_TEST_TIMEOUT  seconds to wait for the queue to drain (default 600).
#   SLURM_TEST_PORT     slurmctld port; slurmd uses the next one (default 16817).
#   KEEP=1              keep the work folder after a PASS too.
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$(pwd)

work=${SLURM_TEST_DIR:-/tmp/flowvae-slurm-test}
timeout=${SLURM_TEST_TIMEOUT:-600}
ctld_port=${SLURM_TEST_PORT:-16817}
slurmd_port=$((ctld_port + 1))
start_time=$(date +%s)

log() { printf '[slurm-test %4ds] %s\n' "$(($(date +%s) - start_time))" "$*"; }
fail() {
  log "FAIL: $*"
  exit 1
}

[ "$(id -u)" = 0 ] || fail "run this as root (it installs packages and starts daemons)"

# ---------------------------------------------------------------- 1. packages
need=()
for pkg in slurm-wlm munge; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  # No systemd here: package scripts must not try to start the services (policy-rc.d says no).
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
log "$(slurmctld -V)"

# ------------------------------------------------- stale daemons from a killed earlier run
# Only processes recorded in our own pid files, and only if they are what we started.
stop_pidfile() { # pidfile expected-comm
  local pidfile=$1 comm=$2 pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile" 2>/dev/null || true)
  if [[ "$pid" =~ ^[0-9]+$ ]] && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$comm" ]; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
      [ -d /proc/"$pid" ] || break
      sleep 0.2
    done
    if [ -d /proc/"$pid" ]; then
      kill -9 "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pidfile"
}
cancel_jobs() { # with SLURM_CONF set: cancel every job of the test cluster, wait for them to go
  scancel --quiet --user=root 2>/dev/null || return 0
  for _ in $(seq 30); do
    [ -z "$(squeue -h 2>/dev/null)" ] && break
    sleep 1
  done
}
if [ -f "$work/slurm.conf" ] && [ -f "$work/run/slurmctld.pid" ]; then
  log "stopping what an earlier, interrupted run left in $work"
  SLURM_CONF="$work/slurm.conf" cancel_jobs
fi
stop_pidfile "$work/run/slurmd.pid" slurmd
stop_pidfile "$work/run/slurmctld.pid" slurmctld
stop_pidfile "$work/munge/munged.pid" munged

rm -rf "$work"
mkdir -p "$work"/{run,log,state,spool,sweep}
chmod 755 "$work"

# ------------------------------------------------------------------- 2. build first
# (so that the daemons are not up while cargo works)
log "building flowvae (cargo build -q -p flowvae)"
cargo build -q -p flowvae || fail "cargo build -q -p flowvae failed"
exe="$repo/target/debug/flowvae"
[ -x "$exe" ] || fail "$exe was not built"

# ------------------------------------------------------------------ cleanup on exit
started_munged=
jobs_submitted=
export SLURM_CONF="$work/slurm.conf"
cleanup() {
  local rc=$?
  set +e
  if [ -n "$jobs_submitted" ] && [ -f "$work/run/slurmctld.pid" ]; then
    # Cancel whatever is still queued or running, and give slurmd time to end the steps.
    cancel_jobs
  fi
  stop_pidfile "$work/run/slurmd.pid" slurmd
  stop_pidfile "$work/run/slurmctld.pid" slurmctld
  if [ -n "$started_munged" ]; then
    stop_pidfile "$work/munge/munged.pid" munged
  fi
  if [ "$rc" = 0 ] && [ "${KEEP:-0}" != 1 ]; then
    rm -rf "$work"
  else
    echo "work folder kept: $work (logs in $work/log, sweep in $work/sweep)"
  fi
  log "daemons stopped"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --------------------------------------------------------------------------- 3. munge
if [ ! -s /etc/munge/munge.key ]; then
  log "creating /etc/munge/munge.key"
  mkdir -p /etc/munge
  if command -v mungekey >/dev/null; then
    mungekey --create --keyfile=/etc/munge/munge.key
  else
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  fi
  chown munge:munge /etc/munge /etc/munge/munge.key
  chmod 700 /etc/munge
  chmod 400 /etc/munge/munge.key
fi
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  log "munged already running; using it"
else
  log "starting munged"
  install -d -o munge -g munge -m 755 /run/munge
  install -d -o munge -g munge -m 700 /var/lib/munge /var/log/munge
  # munged runs as the munge user, as Debian's service does; its pid file lives in our folder.
  install -d -o munge -g munge -m 755 "$work/munge"
  runuser -u munge -- /usr/sbin/munged --pid-file="$work/munge/munged.pid"
  started_munged=1
  for _ in $(seq 50); do
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
    sleep 0.2
  done
  munge -n | unmunge >/dev/null || fail "munged does not answer"
fi

# -------------------------------------------------------------------------- slurm.conf
cpus=$(nproc)
avail_mb=$(awk '/^MemAvailable:/ {print int($2 / 1024)}' /proc/meminfo)
mem_mb=$((avail_mb * 9 / 10))
[ "$mem_mb" -ge 512 ] || mem_mb=512
cat >"$SLURM_CONF" <<EOF
# Throw-away single-node cluster of scripts/slurm_local_test.sh; everything on 127.0.0.1.
ClusterName=flowvae-local
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
# slurmctld and slurmd bind to the configured address (127.0.0.1), not to every interface.
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/run/slurmctld.pid
SlurmdPidFile=$work/run/slurmd.pid
SlurmctldLogFile=$work/log/slurmctld.log
SlurmdLogFile=$work/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
MailProg=/bin/true
# Keep finished jobs visible to scontrol for a while (there is no accounting database).
MinJobAge=600
NodeName=localhost NodeAddr=127.0.0.1 NodeHostname=localhost CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
log "slurm.conf: $cpus CPUs, RealMemory=${mem_mb} MB, ports $ctld_port/$slurmd_port on 127.0.0.1"

# ----------------------------------------------------------------------------- daemons
slurmctld -f "$SLURM_CONF" || fail "slurmctld did not start (see $work/log/slurmctld.log)"
slurmd -f "$SLURM_CONF" -N localhost || fail "slurmd did not start (see $work/log/slurmd.log)"

log "waiting for the node to be idle"
state=
for _ in $(seq 120); do
  state=$(sinfo -h -N -n localhost -o '%t' 2>/dev/null || true)
  [ "$state" = idle ] && break
  sleep 1
done
if [ "$state" != idle ]; then
  sinfo -N -l || true
  tail -n 20 "$work/log/slurmctld.log" "$work/log/slurmd.log" || true
  fail "node state is '${state:-unknown}', not idle"
fi
sinfo

# ------------------------------------------------------------------------- 4. the sweep
# The files of crates/cli/tests/sweep.rs: digits, 2 epochs, 2 flow stacks x 2 seeds.
cat >"$work/sweep/base.yaml" <<'EOF'
name: base
seed: 0
data:
  source: digits
model:
  latent: 4
  encoder: {hidden: [32]}
  decoder: {hidden: [32]}
train:
  epochs: 2
  batch_size: 100
eval:
  nll_samples: 20
  nll_chunk: 20
  nll_batch: 100
EOF
cat >"$work/sweep/sweep.yaml" <<'EOF'
name: tiny_sweep
base: base.yaml
grid:
  flow:
    - []
    - [{planar: {k: 2}}]
seeds: [0, 1]
EOF

"$exe" sweep "$work/sweep/sweep.yaml" --slurm --results "$work/results"
sweep_dir=$(find "$work/results/tiny_sweep" -mindepth 1 -maxdepth 1 -type d | head -n 1)
if [ -z "$sweep_dir" ] || [ ! -x "$sweep_dir/submit.sh" ]; then
  fail "no submit.sh under $work/results"
fi
for f in sweep.sbatch compare.sbatch submit.sh; do
  echo "----- $f"
  cat "$sweep_dir/$f"
done
echo "-----"

show_task_logs() {
  local f
  for f in "$sweep_dir"/slurm-*.log; do
    [ -f "$f" ] || continue
    echo "----- $f (last lines)"
    tail -n 20 "$f"
  done
}

jobs_submitted=1
log "running $sweep_dir/submit.sh"
RUST_LOG=${RUST_LOG:-warn} "$sweep_dir/submit.sh"

log "waiting (at most ${timeout}s) for the queue to drain"
deadline=$(($(date +%s) + timeout))
last=
while :; do
  queue=$(squeue -h -o '%i %j %T %r' 2>/dev/null) || fail "squeue failed"
  [ -z "$queue" ] && break
  if grep -q DependencyNeverSatisfied <<<"$queue"; then
    echo "$queue"
    show_task_logs
    fail "an array task failed, so the comparison can never run (see $sweep_dir/slurm-*.log)"
  fi
  if [ "$queue" != "$last" ]; then
    log "queue:"
    while read -r q; do echo "    $q"; done <<<"$queue"
    last=$queue
  fi
  [ "$(date +%s)" -lt "$deadline" ] || fail "the queue did not drain within ${timeout}s"
  sleep 5
done
log "queue empty"

# ------------------------------------------------------------------------------ checks
problems=()
# Every job record slurmctld still holds (MinJobAge=600): one line per array task.
while read -r line; do
  [ -n "$line" ] || continue
  job=$(grep -o 'JobId=[0-9]*' <<<"$line" | head -n 1 | cut -d= -f2)
  jstate=$(grep -o 'JobState=[A-Z_]*' <<<"$line" | cut -d= -f2)
  name=$(grep -o 'JobName=[^ ]*' <<<"$line" | cut -d= -f2)
  task=$(grep -o 'ArrayTaskId=[^ ]*' <<<"$line" | cut -d= -f2 || true)
  echo "    job $job ${name}${task:+[$task]}: $jstate"
  [ "$jstate" = COMPLETED ] || problems+=("job $job ($name${task:+[$task]}) ended $jstate")
done < <(scontrol show job -o 2>/dev/null || true)
for point in p00-seed0 p00-seed1 p01-seed0 p01-seed1; do
  [ -f "$sweep_dir/$point/summary.json" ] || problems+=("$point has no summary.json")
done
if [ ! -f "$sweep_dir/comparison.md" ]; then
  problems+=("no comparison.md")
elif ! grep -q '±' "$sweep_dir/comparison.md"; then
  problems+=("comparison.md has no mean ± std")
fi
ls "$sweep_dir"/slurm-*.log >/dev/null 2>&1 || problems+=("no slurm-*.log files")

if [ ${#problems[@]} -gt 0 ]; then
  for p in "${problems[@]}"; do echo "  - $p"; done
  show_task_logs
  fail "${#problems[@]} problem(s)"
fi
echo "----- comparison.md"
cat "$sweep_dir/comparison.md"
log "PASS: 4 points as a Slurm job array, then the dependent comparison ($(slurmctld -V))"
