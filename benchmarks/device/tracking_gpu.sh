#!/usr/bin/env bash
# Tracking on one GPU: the time per mu = 200 event by stage, then the default command until the
# budget is spent.
#
#   bash benchmarks/device/tracking_gpu.sh [OUT]        # from the repository root; OUT defaults to device_out
#   DRY=1 bash benchmarks/device/tracking_gpu.sh out    # the same steps on the CPU at --quick size
#
# Steps: (1) `benchmarks/tracking.py --pipeline untrained`: read -> graph (host) -> filter -> prune ->
# classify (GPU) -> tracks -> submission of simulated mu = 200 events with the default config's two
# classifiers (random weights, the filter keeping KEEP of the edges), one JSON line with the median
# seconds per stage and the peak GPU memory; (2) `python -m experiments.tracking --gpu`, the default
# run (60 events at mu = 200, graphs down to 0.2 GeV, both stages), stopped by SIGTERM when the budget
# is spent (a checkpoint at a safe point, the run marked interrupted, its log ends with the --resume
# command); its per-epoch lines give the time of the whole default run; (3) the run folder without
# checkpoints is packed. See benchmarks/device/README.md.
set -euo pipefail

OUT=${1:-device_out}
BUDGET_S=${BUDGET_S:-570}  # seconds for the whole script (the device's per-command limit)
WORK=${WORK:-/tmp/tracking_device}
DATA_DIR=${DATA_DIR:-data}
KEEP=${KEEP:-0.3}  # fraction of the edges the untrained filter keeps (what a trained one keeps at mu = 200)
DRY=${DRY:-0}
PYTHON=${PYTHON:-python3}

if [[ "$DRY" == 1 ]]; then
    DEVICE="--cpu --quick"
    PIPELINE="--pipeline untrained --pileup 10 --events 2"
else
    DEVICE="--gpu"
    PIPELINE="--pipeline untrained --pileup 200 --events 5"
fi

mkdir -p "$OUT" "$WORK"
NAME=tracking_gpu
# shellcheck source=benchmarks/device/budget.sh
. "$(dirname "$0")/budget.sh"
say "out $OUT, run in $WORK, data in $DATA_DIR, budget ${BUDGET_S} s, DRY=$DRY"

# (1) time per event, by stage
say "$PYTHON benchmarks/tracking.py $PIPELINE --keep $KEEP > $OUT/pipeline.jsonl"
# shellcheck disable=SC2086  # $PIPELINE and $cmd below are word lists
if ! timeout "$(left)" "$PYTHON" benchmarks/tracking.py $PIPELINE --keep "$KEEP" \
    >"$OUT/pipeline.jsonl" 2>"$OUT/pipeline.log"; then
    say "the pipeline timing stopped early (see $OUT/pipeline.log)"
fi

# (2) the default run until the budget is spent
cmd="$PYTHON -m experiments.tracking $DEVICE --no-progress --workdir $WORK/runs --data-dir $DATA_DIR"
say "$cmd > $OUT/default.log"
# shellcheck disable=SC2086
if timeout -s TERM "$(left)" $cmd >"$OUT/default.log" 2>&1; then
    say "default run: done"
else
    rc=$?
    say "default run: exit $rc (124: the budget ran out; the run is interrupted, see the last line of $OUT/default.log)"
fi

# (3) the run folder without checkpoints: report.md, metrics, plots, config.json, registry
if [[ -d "$WORK/runs" ]]; then
    tar czf "$OUT/tracking_runs.tgz" --exclude='ckpt*' --exclude=filter_scores.npz -C "$WORK" runs
    say "packed $WORK/runs into $OUT/tracking_runs.tgz"
fi
grep -H "seconds_per_event" "$OUT/pipeline.jsonl" || true
grep -H "epoch\|score" "$OUT/default.log" || true
