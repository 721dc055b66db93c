# Sourced by the device scripts: the time budget of one script. Set BUDGET_S (seconds for the whole
# script) and NAME (the log prefix) before sourcing; the clock starts here.
# shellcheck shell=bash
T0=$SECONDS
left() {  # seconds of the budget left, at least 1 (`timeout 0` would mean no limit)
    local s=$((BUDGET_S - (SECONDS - T0)))
    echo $((s > 1 ? s : 1))
}
say() { echo "[$NAME $((SECONDS - T0)) s] $*"; }
