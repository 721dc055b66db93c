#!/usr/bin/env bash
# DUNE on one GPU: the 5-member ensemble race, then the default-size runs sharing the GPU.
#
#   bash benchmarks/device/dune_gpu.sh [OUT]          # from the repository root; OUT defaults to device_out
#   RUNS="three three_sym" bash benchmarks/device/dune_gpu.sh out
#   DRY=1 bash benchmarks/device/dune_gpu.sh out      # the same steps on the CPU at --quick size
#
# Steps: (1) the default 50 k-event ES and mixed samples are simulated on the host CPUs while the GPU
# runs `benchmarks/dune.py --race` (vmap vs unroll vs 5 single models; one JSON line per leg);
# (2) the runs named in RUNS start together, each a process with a share of the GPU's memory, and
# stop when the time budget is spent (SIGTERM: a checkpoint at a safe point, the run marked
# interrupted, `--resume` continues it); (3) their run folders, without checkpoints, are packed.
# See benchmarks/device/README.md.
set -euo pipefail

OUT=${1:-device_out}
RUNS=${RUNS:-"three single channel"}  # of: three single three_sym three_fit channel maintrack
BUDGET_S=${BUDGET_S:-570}             # seconds for the whole script (the device's per-command limit)
WORK=${WORK:-/tmp/dune_device}        # run folders (checkpoints stay here)
DATA_DIR=${DATA_DIR:-data}
DRY=${DRY:-0}
PYTHON=${PYTHON:-python3}

if [[ "$DRY" == 1 ]]; then
    DEVICE="--cpu --quick"
    N_EVENTS=1500  # the --quick sample
    RACE="--race --batch 8 --steps 1"
    MEM_FRACTION=""
else
    DEVICE="--gpu"
    N_EVENTS=50000  # the default sample (DataConfig.n_events)
    RACE="--race --batch 256"
    MEM_FRACTION=${MEM_FRACTION:-0.22}  # of the GPU's memory per run
fi

mkdir -p "$OUT" "$WORK"
NAME=dune_gpu
# shellcheck source=benchmarks/device/budget.sh
. "$(dirname "$0")/budget.sh"

command_of() {  # the experiment's command line of a RUNS name
    case "$1" in
        three) echo "direction --network three_plane" ;;
        single) echo "direction --network single_plane" ;;
        three_sym) echo "direction --network three_plane --set net.symmetries=true" ;;
        three_fit)  # the fit inside, the volume, the end profiles, the sense MLP: the best CPU run
            local d="--set net.direction"
            echo "direction --network three_plane $d.prior=moments $d.profile_bins=16 $d.start_mm=15" \
                "$d.head=axis_sense $d.volume_bins=16 $d.end_bins=8 $d.sense_dense=[256,256]"
            ;;
        channel) echo "channel" ;;
        maintrack) echo "maintrack" ;;
        *)
            echo "unknown run name $1 (three single three_sym three_fit channel maintrack)" >&2
            return 2
            ;;
    esac
}
for name in $RUNS; do command_of "$name" >/dev/null; done # fail early on a typo
say "out $OUT, runs in $WORK, data in $DATA_DIR, RUNS=\"$RUNS\", budget ${BUDGET_S} s, DRY=$DRY"

# (1) simulate on the host while the GPU races
simulate() {  # kind: es (direction, maintrack) or mixed (channel)
    "$PYTHON" - "$DATA_DIR" "$N_EVENTS" "$1" <<'EOF'
import sys, time

from jaxhep.dune.sim.simulate import default_path, simulate_dataset

data_dir, n, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
t0 = time.time()
path = simulate_dataset(default_path(data_dir, n, 0, kind), n, 0, kind)
print(f"{path}: {time.time() - t0:.0f} s", flush=True)
EOF
}
SIM_PIDS=()
for kind in es mixed; do
    say "simulate $N_EVENTS $kind events -> $OUT/sim_$kind.log"
    simulate "$kind" >"$OUT/sim_$kind.log" 2>&1 &
    SIM_PIDS+=($!)
done

say "$PYTHON benchmarks/dune.py $RACE > $OUT/race.jsonl"
# shellcheck disable=SC2086  # $RACE and $cmd below are word lists
if ! timeout "$(left)" "$PYTHON" benchmarks/dune.py $RACE >"$OUT/race.jsonl" 2>"$OUT/race.log"; then
    say "the race stopped early (its finished legs are in $OUT/race.jsonl; see $OUT/race.log)"
fi

for pid in "${SIM_PIDS[@]}"; do
    wait "$pid" || { say "simulation failed, see $OUT/sim_*.log"; exit 1; }
done
say "samples ready: $(cat "$OUT"/sim_*.log | tr '\n' ' ')"

# (2) the default runs, sharing the GPU until the budget is spent
declare -A RUN_PIDS
for name in $RUNS; do
    args=$(command_of "$name")
    cmd="$PYTHON -m experiments.dune $args $DEVICE --no-progress --workdir $WORK/runs_$name --data-dir $DATA_DIR"
    say "$cmd > $OUT/$name.log"
    # shellcheck disable=SC2086
    env ${MEM_FRACTION:+XLA_PYTHON_CLIENT_MEM_FRACTION=$MEM_FRACTION} timeout -s TERM "$(left)" $cmd \
        >"$OUT/$name.log" 2>&1 &
    RUN_PIDS[$name]=$!
done
for name in "${!RUN_PIDS[@]}"; do
    if wait "${RUN_PIDS[$name]}"; then
        say "$name: done"
    else
        rc=$?
        say "$name: exit $rc (124: the budget ran out; the run is interrupted, see the last line of $OUT/$name.log)"
    fi
done

# (3) the run folders without checkpoints: report.md, metrics, plots, config.json, registry
FOLDERS=()
for name in $RUNS; do
    if [[ -d "$WORK/runs_$name" ]]; then FOLDERS+=("runs_$name"); fi
done
if ((${#FOLDERS[@]})); then
    tar czf "$OUT/dune_runs.tgz" --exclude=ckpt -C "$WORK" "${FOLDERS[@]}"
    say "packed ${FOLDERS[*]} into $OUT/dune_runs.tgz; each run's result is in its report.md"
fi
grep -H "\[dune\] .*error\|\[dune\] .*accuracy" "$OUT"/*.log || true
