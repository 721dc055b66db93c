"""Run folders (config, metrics log, atomic writes) and the registry of every run."""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxhep import runs
from jaxhep.errors import InputError
from jaxhep.runs import REGISTRY, Run, find_artifact, format_registry, load_registry

CONFIG = {"train": {"epochs": 3, "learning_rate": 1e-3}, "models": ["dnn"]}


def test_create_makes_the_run_folder_with_its_config(tmp_path):
    run = Run.create(tmp_path, "pid", CONFIG, name="smoke")
    assert run.path == tmp_path / "pid" / run.run_id
    assert run.path.is_dir() and run.run_id.endswith("-smoke")
    written = json.loads((run.path / "config.json").read_text())
    assert run.config == written and {k: v for k, v in written.items() if k != "provenance"} == CONFIG
    # how the run was made: the command as typed, the versions, the git revision of this checkout
    made = written["provenance"]
    assert made["command"] == shlex.join(sys.orig_argv)
    assert made["versions"]["jax"] == jax.__version__ and made["python"] == platform.python_version()
    assert made["git"] is None or len(made["git"]["revision"]) == 40
    # a second run with the same config gets its own folder
    other = Run.create(tmp_path, "pid", CONFIG)
    assert other.path != run.path and other.path.is_dir()
    # and each is registered as running, with its config
    rows = load_registry(tmp_path)
    assert [r["run_id"] for r in rows] == [run.run_id, other.run_id]
    assert all(r["status"] == "running" and r["config"] == CONFIG and r["task"] == "pid" for r in rows)
    assert rows[0]["path"] == str(run.path)


def test_log_appends_records_that_read_log_returns_in_order(tmp_path):
    run = Run.create(tmp_path, "toy", {})
    assert run.read_log() == []
    run.log({"epoch": 1, "loss": np.float32(0.5), "hist": np.arange(3)})
    run.log({"epoch": 2, "loss": 0.25, "where": Path("a/b")})
    run.log({"event": "x"}, stream="events.jsonl")
    records = run.read_log()
    assert [r["epoch"] for r in records] == [1, 2]
    assert records[0]["loss"] == 0.5 and records[0]["hist"] == [0, 1, 2]
    assert records[1]["where"] == "a/b"
    assert all("time" in r for r in records)
    assert [r["event"] for r in run.read_log("events.jsonl")] == ["x"]
    assert len((run.path / "metrics.jsonl").read_text().splitlines()) == 2


def test_write_json_is_atomic(tmp_path, monkeypatch):
    run = Run.create(tmp_path, "toy", {})
    path = run.write_json("result.json", {"auc": np.float64(0.91), "n": np.int64(7)})
    assert path == run.path / "result.json"
    assert json.loads(path.read_text()) == {"auc": 0.91, "n": 7}
    run.write_json("result.json", {"auc": 0.95})  # replaces the old content
    assert json.loads(path.read_text()) == {"auc": 0.95}
    run.write_text("report.md", "# hi\n")
    assert (run.path / "report.md").read_text() == "# hi\n"
    assert sorted(p.name for p in run.path.iterdir()) == ["config.json", "report.md", "result.json"]

    # a crash before the rename leaves the previous version whole, never a half-written file
    def crash(src, dst):
        raise OSError("killed")

    monkeypatch.setattr(runs.os, "replace", crash)
    with pytest.raises(OSError, match="killed"):
        run.write_json("result.json", {"auc": 0.99, "big": list(range(1000))})
    assert json.loads(path.read_text()) == {"auc": 0.95}
    # an object that JSON cannot hold fails before anything is written
    monkeypatch.undo()
    with pytest.raises(TypeError):
        run.write_json("result.json", {"bad": object()})
    assert json.loads(path.read_text()) == {"auc": 0.95}


def test_registry_merges_records_per_run_and_skips_a_cut_line(tmp_path):
    a = Run.create(tmp_path, "pid", {"x": 1})
    b = Run.create(tmp_path, "dune", {"x": 2})
    a.set_status("done", summary={"auc": 0.9})
    b.set_status("failed", error="boom")
    Run(tmp_path, "other", a.run_id).set_status("done")  # same run id, other task: another run
    # a crash in the middle of an append leaves a cut last line
    with open(tmp_path / REGISTRY, "a") as f:
        f.write('{"run_id": "' + a.run_id + '", "task": "pid", "status": "runn')
    rows = load_registry(tmp_path)
    assert [(r["task"], r["status"]) for r in rows] == [
        ("pid", "done"),
        ("dune", "failed"),
        ("other", "done"),
    ]
    ra, rb, _ = rows
    assert ra["config"] == {"x": 1} and ra["summary"] == {"auc": 0.9}  # earlier fields kept
    assert rb["error"] == "boom" and "summary" not in rb
    assert [r["run_id"] for r in load_registry(tmp_path, task="dune")] == [b.run_id]
    assert load_registry(tmp_path / "nowhere") == []


def test_a_record_written_after_a_cut_line_is_not_lost(tmp_path):
    """The next run after a crash must not glue its record onto the cut line (and lose it)."""
    a = Run.create(tmp_path, "pid", {"x": 1})
    with open(tmp_path / REGISTRY, "a") as f:
        f.write('{"run_id": "' + a.run_id + '", "task": "pid", "status": "runn')
    a.set_status("done", summary={"auc": 0.9})
    b = Run.create(tmp_path, "pid", {"x": 2})
    rows = load_registry(tmp_path)
    assert [(r["run_id"], r["status"]) for r in rows] == [(a.run_id, "done"), (b.run_id, "running")]


def test_find_artifact_returns_the_newest_existing_path(tmp_path):
    old, new = tmp_path / "m_old", tmp_path / "m_new"
    old.mkdir()
    new.mkdir()
    r1 = Run.create(tmp_path, "pid", {})
    r1.set_status(
        "done", artifacts=[{"key": "dnn-abc", "path": str(old)}, {"key": "fse-abc", "path": str(old)}]
    )
    r2 = Run.create(tmp_path, "pid", {})
    r2.set_status("done", artifacts=[{"key": "dnn-abc", "path": str(new)}])
    assert find_artifact(tmp_path, "dnn-abc") == new
    assert find_artifact(tmp_path, "fse-abc") == old
    assert find_artifact(tmp_path, "nope") is None
    new.rmdir()  # a deleted folder is not a usable artifact
    assert find_artifact(tmp_path, "dnn-abc") == old
    old.rmdir()
    assert find_artifact(tmp_path, "dnn-abc") is None


def test_format_registry_is_a_markdown_table():
    rows = [
        {
            "task": "pid",
            "run_id": "r1",
            "status": "done",
            "time": "t",
            "elapsed_s": 12.3456,
            "summary": {"auc": 0.912345, "n": 3},
        },
        {"task": "dune", "run_id": "r2", "status": "running"},
    ]
    lines = format_registry(rows).splitlines()
    assert lines[0] == "| task | run_id | status | time | elapsed_s | summary |"
    assert lines[1] == "|---|---|---|---|---|---|"
    assert lines[2] == "| pid | r1 | done | t | 12.35 | auc=0.9123, n=3 |"
    assert lines[3] == "| dune | r2 | running |  |  |  |"
    assert format_registry([], columns=("a", "b")).splitlines() == ["| a | b |", "|---|---|"]


def test_open_reads_an_existing_run_and_rejects_other_folders(tmp_path):
    run = Run.create(tmp_path, "pid", CONFIG)
    opened = Run.open(run.path)
    assert (opened.workdir, opened.task, opened.run_id) == (tmp_path, "pid", run.run_id)
    assert opened.config == run.config and opened.config["models"] == CONFIG["models"]
    empty = tmp_path / "pid" / "not-a-run"
    empty.mkdir()
    with pytest.raises(InputError, match="not a run directory") as info:
        Run.open(empty)
    assert info.value.path == str(empty)
    with pytest.raises(InputError):
        Run.open(tmp_path / "missing")


def test_sub_and_plot_path_create_folders_inside_the_run(tmp_path):
    run = Run.create(tmp_path, "pid", {})
    p = run.plot_path("roc.png")
    assert p == run.path / "plots" / "roc.png" and p.parent.is_dir()
    assert run.sub("models", "dnn").is_dir()
    assert os.path.commonpath([p, run.path]) == str(run.path)


def test_a_running_run_whose_process_is_gone_is_listed_as_stale(tmp_path, monkeypatch):
    import subprocess
    import sys

    live = Run.create(tmp_path, "pid", CONFIG)  # this process: alive
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead = Run.create(tmp_path, "pid", CONFIG)
    dead.set_status("running", pid=int(gone.stdout))  # as if that process had made it and died
    done = Run.create(tmp_path, "pid", CONFIG)
    done.set_status("done")
    status = {r["run_id"]: r["status"] for r in load_registry(tmp_path)}
    assert status == {live.run_id: "running", dead.run_id: "stale", done.run_id: "done"}
