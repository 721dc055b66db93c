#!/bin/bash
# Wall time of each task's `--quick` run, A against B in alternation (same sitting, same venv).
#
#   benchmarks/quick_runs.sh OUT SRC_A SRC_B [ROUNDS] [TASK ...]
#
# SRC_A / SRC_B are source trees (e.g. this checkout and `git archive REV | tar -x -C DIR`), run
# in turn with the active Python; each run gets a fresh workdir (a finished model in the
# workdir would be reused and time nothing) and the shared data folder OUT/data (simulated once,
# by a first, untimed run of each task, unless OUT/data holds files already).
# TASKs default to: pid tracking egamma "dune direction".
# Writes OUT/times.tsv (label, round, task, exit status, wall seconds, CPU seconds = user + system of
# the run and its children) and each run's log beside it. The CPU seconds are the figure to compare
# when something else shares the machine: the wall time then measures the neighbours too.
set -u
out=$(realpath -m "$1"); a=$(realpath "$2"); b=$(realpath "$3"); rounds=${4:-2}
shift $(( $# < 4 ? $# : 4 ))
tasks=("$@"); [ ${#tasks[@]} -gt 0 ] || tasks=(pid tracking egamma "dune direction")
mkdir -p "$out/data"
if [ -z "$(ls -A "$out/data")" ]; then  # simulate the data outside the timed runs
  for t in "${tasks[@]}"; do
    (cd "$a" && python -m experiments.$t --quick --no-progress --workdir "$out/warm" --data-dir "$out/data" \
       > "$out/warm_${t%% *}.log" 2>&1)
  done
  rm -rf "$out/warm"
fi
for r in $(seq 1 "$rounds"); do
  for label in A B; do
    src=$a; [ $label = B ] && src=$b
    for t in "${tasks[@]}"; do
      name=${t%% *}; work="$out/runs_${label}_$r"
      (cd "$src" && /usr/bin/time -o "$out/time.tmp" -f "%e %U %S" python -m experiments.$t --quick \
         --no-progress --workdir "$work" --data-dir "$out/data" > "$out/${label}_${r}_$name.log" 2>&1)
      rc=$?
      read -r wall user sys < "$out/time.tmp"
      printf '%s\t%s\t%s\t%s\t%s\t%.1f\n' "$label" "$r" "$name" "$rc" "$wall" "$(echo "$user + $sys" | bc)" \
        | tee -a "$out/times.tsv"
    done
  done
done
