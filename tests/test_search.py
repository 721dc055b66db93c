"""Hyper-parameter search: resumable SQLite study, memory-checked trials, failures survived, registry."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

from jaxhep.errors import ConfigError, NonFiniteLossError  # noqa: E402
from jaxhep.runs import Run, format_registry, load_registry  # noqa: E402
from jaxhep.search import TRIAL_COLUMNS, check_space, run_search  # noqa: E402

SPACE = {"x": ("float", -5.0, 5.0), "n": ("int", 1, 4), "act": ("categorical", ["relu", "gelu"])}


def quadratic(params):
    return (params["x"] - 2.0) ** 2 + (0.0 if params["act"] == "relu" else 0.1)


def quiet(_line):
    pass


@pytest.fixture
def db_dir(tmp_path):
    """Where the study database goes: memory-backed when possible.

    Every trial commits to SQLite, and each commit waits for the disk (~12 ms here, ~0.2 s
    a trial); a real trial takes minutes, a toy one microseconds.
    """
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path / "search"
        return
    path = Path(tempfile.mkdtemp(prefix="jaxhep-search-", dir=shm))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_trials_run_and_the_best_is_near_the_optimum(db_dir):
    result = run_search("q", db_dir, 20, quadratic, SPACE, seed=1, log=quiet)
    assert len(result.trials) == 20 and result.counts == {"done": 20}
    assert abs(result.best_params["x"] - 2.0) < 0.5 and result.best_value < 0.25
    assert result.best_value == min(t["value"] for t in result.trials)
    assert set(result.best_params) == {"x", "n", "act"}
    assert (db_dir / "search.db").is_file() and result.storage == db_dir / "search.db"
    lines = result.table().splitlines()
    assert lines[0] == "| trial | status | value | params | message | elapsed_s |" and len(lines) == 22


def test_maximize_and_a_log_scale(db_dir):
    space = {"lr": ("float", 1e-4, 1e-1, "log"), "k": ("int", 2, 64, "log")}
    result = run_search(
        "m", db_dir, 8, lambda p: -abs(p["lr"] - 1e-2), space, direction="maximize", log=quiet
    )
    assert all(1e-4 <= t["params"]["lr"] <= 1e-1 and 2 <= t["params"]["k"] <= 64 for t in result.trials)
    assert result.best_value == max(t["value"] for t in result.trials)
    with pytest.raises(ConfigError, match="created to maximize"):
        run_search("m", db_dir, 9, lambda p: 0.0, space, direction="minimize", log=quiet)


def test_a_second_run_resumes_until_n_trials_in_total(db_dir):
    first = run_search("r", db_dir, 4, quadratic, SPACE, log=quiet)
    lines = []
    second = run_search("r", db_dir, 7, quadratic, SPACE, log=lines.append)
    assert [t["trial"] for t in second.trials] == list(range(7))
    assert second.trials[:4] == first.trials  # earlier trials kept as they were
    assert "resuming" in lines[0] and "4 of 7" in lines[0]
    # the resumed sampler is not a replay of the first run's random start
    xs = [t["params"]["x"] for t in second.trials]
    assert len(set(xs)) == 7
    again = run_search("r", db_dir, 7, quadratic, SPACE, log=quiet)  # nothing left to do
    assert len(again.trials) == 7
    other = run_search("other", db_dir, 2, quadratic, SPACE, log=quiet)  # another study, same file
    assert len(other.trials) == 2


def test_a_trial_that_does_not_fit_is_skipped_and_the_search_completes(db_dir):
    checked = []

    def memory_check(params):  # "device" of 10 GB; x > 0 needs 20 GB
        checked.append(params)
        return (20e9 if params["x"] > 0 else 1e9), 10e9

    lines, seen = [], []

    def objective(params):
        seen.append(params["x"])
        return quadratic(params)

    result = run_search("mem", db_dir, 12, objective, SPACE, memory_check=memory_check, log=lines.append)
    skipped = [t for t in result.trials if t["status"] == "skipped"]
    done = [t for t in result.trials if t["status"] == "done"]
    assert len(result.trials) == 12 and skipped and done
    assert all(t["params"]["x"] > 0 for t in skipped) and all(x <= 0 for x in seen)
    assert all(t["message"] == "needs 20 GB, device has 10 GB" for t in skipped)
    assert any("skipped: needs 20 GB, device has 10 GB" in line for line in lines)
    assert result.best_params["x"] <= 0
    assert len(checked) == len({repr(sorted(p.items())) for p in checked}) == 12  # each point once

    # the same point twice is estimated once (compiling a train step for the estimate is slow)
    checked.clear()
    again = run_search(
        "few", db_dir, 6, quadratic, {"x": [3.0], "act": ["relu"]}, memory_check=memory_check, log=quiet
    )
    assert [t["status"] for t in again.trials] == ["skipped"] * 6 and len(checked) == 1


def test_an_objective_that_raises_fails_one_trial_and_the_search_goes_on(db_dir):
    calls = []

    def objective(params):
        calls.append(1)
        if len(calls) == 2:
            raise NonFiniteLossError("the loss became NaN/inf at step 7\nmore detail")
        if len(calls) == 3:
            return float("nan")
        return quadratic(params)

    def bad_estimate(params):
        raise ValueError("cannot compile")

    lines = []
    result = run_search("f", db_dir, 5, objective, SPACE, log=lines.append)
    status = [t["status"] for t in result.trials]
    assert status == ["done", "failed", "failed", "done", "done"]
    # the message is one line: the error text folds its line breaks
    assert result.trials[1]["message"] == "NonFiniteLossError: the loss became NaN/inf at step 7 more detail"
    assert result.trials[2]["message"] == "objective returned nan"
    assert any("trial 1 failed: NonFiniteLossError" in line for line in lines)
    failed_check = run_search("g", db_dir, 1, quadratic, SPACE, memory_check=bad_estimate, log=quiet)
    assert failed_check.trials[0]["message"] == "memory estimate failed: ValueError: cannot compile"
    assert failed_check.best_params is None and failed_check.best_value is None


def test_keyboard_interrupt_stops_the_search_and_a_rerun_finishes_it(db_dir):
    def objective(params):
        if params["n"] > 0 and not getattr(objective, "armed", False):
            objective.armed = True
            raise KeyboardInterrupt
        return quadratic(params)

    run_search("k", db_dir, 1, quadratic, SPACE, log=quiet)
    with pytest.raises(KeyboardInterrupt):
        run_search("k", db_dir, 4, objective, SPACE, log=quiet)
    result = run_search("k", db_dir, 4, objective, SPACE, log=quiet)
    status = [t["status"] for t in result.trials]
    assert status == ["done", "interrupted", "done", "done", "done"]  # the cut trial does not count


def test_a_trial_left_running_by_a_killed_process_is_rerun(tmp_path, db_dir):
    """A crash mid-trial leaves it RUNNING in the database; the rerun marks it interrupted and goes on.

    The crash is staged (a trial asked for and owned by a process that has exited) rather than
    a SIGKILLed child, which would spend seconds importing JAX and optuna.
    """
    space = {"x": ("float", 0.0, 1.0)}
    run_search("crash", db_dir, 1, lambda p: p["x"], space, registry_workdir=tmp_path, log=quiet)
    study = optuna.load_study(study_name="crash", storage=f"sqlite:///{db_dir / 'search.db'}")
    child = subprocess.Popen(["true"])
    child.wait()
    run = Run.create(tmp_path, "search", {"trial": 1}, name="crash-t1")
    ghost = study.ask()
    ghost.set_user_attr("owner", {"host": socket.gethostname(), "pid": child.pid, "run": str(run.path)})
    alive = study.ask()  # a live process's trial (this one's) is left alone
    alive.set_user_attr("owner", {"host": socket.gethostname(), "pid": os.getpid(), "run": None})
    lines = []
    result = run_search(
        "crash", db_dir, 3, lambda p: p["x"], space, registry_workdir=tmp_path, log=lines.append
    )
    assert [t["status"] for t in result.trials] == ["done", "interrupted", "running", "done", "done"]
    assert any("trial 1 was cut short by a crash" in line for line in lines)
    rows = load_registry(tmp_path)
    assert [r["status"] for r in rows] == ["done", "interrupted", "done", "done"]


def test_every_trial_is_in_the_registry(tmp_path, db_dir):
    workdir = tmp_path / "runs"

    def objective(params, run):  # a second parameter receives the trial's run folder
        run.log({"epoch": 1, "val_loss": quadratic(params)})
        if params["n"] == 4:
            raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 3.2GiB")
        return {"val_loss": quadratic(params), "val_angle_deg": 70.9}

    def memory_check(params):
        return (5e9 if params["act"] == "gelu" else 1e6), 4e9

    result = run_search(
        "ed-v5", db_dir, 8, objective, SPACE, memory_check=memory_check,
        registry_workdir=workdir, task="dune", metric="val_loss", config={"model": "three_plane"}, log=quiet,
    )  # fmt: skip
    rows = load_registry(workdir, task="dune")
    assert len(rows) == 8 and all(r["run_id"].endswith(f"-ed-v5-t{i}") for i, r in enumerate(rows))
    statuses = {r["status"] for r in rows}
    assert "done" in statuses and "skipped" in statuses
    for row, trial in zip(rows, result.trials):
        assert row["status"] == trial["status"] and row["params"] == trial["params"]
        expected = {
            "model": "three_plane",
            "search": "ed-v5",
            "trial": trial["trial"],
            "params": trial["params"],
        }
        assert row["config"] == expected
        written = json.loads((workdir / "dune" / row["run_id"] / "config.json").read_text())
        assert written.pop("provenance")["versions"]["jax"] and written == row["config"]
        assert "time" in row and "elapsed_s" in row
        if row["status"] == "done":
            assert row["summary"] == {"val_loss": trial["value"], "val_angle_deg": 70.9}
            assert (workdir / "dune" / row["run_id"] / "metrics.jsonl").is_file()
        elif row["status"] == "skipped":
            assert row["skipped"] == "needs 5 GB, device has 4 GB" and row["estimate_bytes"] == 5e9
        else:
            assert row["error"].startswith("RuntimeError: RESOURCE_EXHAUSTED")
    table = format_registry(rows, TRIAL_COLUMNS).splitlines()
    assert table[0] == "| task | run_id | status | time | elapsed_s | params | summary |"
    assert any("skipped=needs 5 GB, device has 4 GB" in line and "act=gelu" in line for line in table)
    assert any("val_loss=" in line and "| done |" in line for line in table)


def test_a_callable_space_and_bad_spaces(db_dir):
    def space(trial):
        depth = trial.suggest_int("depth", 1, 3)
        return {"depth": depth, "widths": [16 * (i + 1) for i in range(depth)]}

    result = run_search("c", db_dir, 3, lambda p: len(p["widths"]), space, log=quiet)
    assert all(len(t["params"]["widths"]) == t["params"]["depth"] for t in result.trials)
    assert result.best_params["widths"] == [16 * (i + 1) for i in range(result.best_params["depth"])]
    for bad in (
        {"x": ("float", 1.0)},
        {"x": ("float", 2.0, 1.0)},
        {"x": ("float", 0.0, 1.0, "log")},
        {"x": ("int", 0.5, 3)},
        {"x": ("normal", 0, 1)},
        {"x": ("categorical", [])},
        {},
    ):
        with pytest.raises(ConfigError):
            check_space(bad)
    check_space({"x": ["a", "b"], "y": ("int", 0, 10, 2)})
    with pytest.raises(ConfigError, match="metric="):
        run_search("d", db_dir, 1, lambda p: {"a": 1.0}, {"x": ["a"]}, log=quiet)
