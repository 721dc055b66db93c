"""The PID experiment end to end: report, reuse, the Python API, resume after a kill, bad inputs."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from experiments import pid as pid_experiment
from jaxhep import cli
from jaxhep.config import from_dict
from jaxhep.pid import experiment
from jaxhep.pid.api import load_predictor
from jaxhep.pid.config import PIDConfig
from jaxhep.pid.dataset import load_table
from jaxhep.pid.sim.simulate import simulate_tracks, write_table
from jaxhep.runs import Run, load_registry
from tests.smoke import smoke_args

ROOT = Path(__file__).resolve().parents[2]
TINY = smoke_args("data.n_tracks=16000", "eval.importance_rows=500")


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    base = tmp_path_factory.mktemp("pid")
    return {"workdir": str(base / "runs"), "data": str(base / "data")}


def _args(dirs, *extra):
    return [*TINY, "--workdir", dirs["workdir"], "--data-dir", dirs["data"], *extra]


def test_quick_run_writes_report_and_reuses_models(dirs):
    run = pid_experiment.main(
        _args(dirs, "--model", "fse", "--model", "simple", "--range", "full", "--range", "0.7-1.5")
    )
    report = (run.path / "report.md").read_text()
    assert "FSE+Attention" in report and "Bayesian PID" in report and "0.7-1.5" in report
    metrics = json.loads((run.path / "metrics.json").read_text())
    assert set(metrics) == {"full", "0.7-1.5"}
    assert set(metrics["full"]) == {"fse", "simple", "bayes"}
    for r in metrics.values():
        for m in r.values():
            assert 0.25 < m["metrics"]["accuracy"] <= 1.0
            assert 0.5 < m["metrics"]["macro_auc"] <= 1.0
    assert "importance" in metrics["full"]["fse"] and len(metrics["full"]["fse"]["importance"]) == 21
    plots = {p.name for p in (run.path / "plots").glob("*.png")}
    assert {
        "roc_macro_full.png",
        "confusion_fse_full.png",
        "eff_purity_0p7-1p5.png",
        "accuracy_by_range.png",
        "importance_full.png",
        "training_fse_full.png",
    } <= plots
    entry = [r for r in load_registry(dirs["workdir"], "pid") if r["run_id"] == run.run_id][0]
    assert entry["status"] == "done" and len(entry["artifacts"]) == 4

    # The Python API reproduces the run's test predictions from the raw table.
    predictor = load_predictor(run.path, "fse", "full")
    table = load_table(from_dict(PIDConfig, run.config["pid"]).data, dirs["data"])
    rows = table.test[:500]
    probs = predictor.predict_proba({k: v[rows] for k, v in table.columns.items()})
    assert probs.shape == (500, 4)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    assert np.mean(probs.argmax(1) == table.labels[rows]) > 0.6

    # Same settings again: the trained models are reused, not retrained.
    again = pid_experiment.main(_args(dirs, "--model", "fse", "--range", "full"))
    again_metrics = json.loads((again.path / "metrics.json").read_text())
    assert again_metrics["full"]["fse"]["reused_from"]
    assert (
        again_metrics["full"]["fse"]["metrics"]["accuracy"] == metrics["full"]["fse"]["metrics"]["accuracy"]
    )


def test_print_config_and_a_runs_config_json_given_back(dirs, capsys):
    pid_experiment.main(["--quick", "--print-config", "--model", "dnn", "--workdir", dirs["workdir"]])
    lines = capsys.readouterr().out.splitlines()
    assert 'models = ["dnn"]' in lines and 'train.precision = "float32"' in lines and "reuse = true" in lines
    first = [r for r in load_registry(dirs["workdir"], "pid") if r["status"] == "done"][0]
    config = Path(first["path"]) / "config.json"
    again = pid_experiment.main(
        ["--config", str(config), "--workdir", dirs["workdir"], "--data-dir", dirs["data"]]
    )
    assert again.config["pid"] == json.loads(config.read_text())["pid"]  # the same run (models reused)
    assert json.loads((again.path / "metrics.json").read_text())["full"]["fse"]["reused_from"]


def _cli(args, env=None, timeout=400, kill_after_epoch=None):
    faults = ["-m", "tests.faults", "--kill-after-epoch", str(kill_after_epoch)] if kill_after_epoch else []
    return subprocess.run(
        [sys.executable, *(faults or ["-m"]), "experiments.pid", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "JAX_PLATFORMS": "cpu", **(env or {})},
    )


def test_killed_run_resumes_to_the_same_result(dirs):
    args = _args(dirs, "--model", "fse", "--range", "1-3", "--epochs", "4", "--set", "train.patience=10")
    killed = _cli(args, kill_after_epoch=2)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    # killed without a word: the registry lists it as stale (its process is gone), not as running
    run_dir = Path([r for r in load_registry(dirs["workdir"], "pid") if r["status"] == "stale"][-1]["path"])
    assert len(json.loads((run_dir / "config.json").read_text())) and not (run_dir / "report.md").exists()
    resumed = _cli(["--resume", str(run_dir), "--workdir", dirs["workdir"], "--data-dir", dirs["data"]])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    straight = _cli([*args, "--force-train"])
    assert straight.returncode == 0, straight.stderr[-2000:]
    done = [r for r in load_registry(dirs["workdir"], "pid") if r["status"] == "done"]
    straight_dir = Path(done[-1]["path"])
    epochs_a = [(h["epoch"], h["loss"], h["val_accuracy"]) for h in Run.open(run_dir).read_log()]
    epochs_b = [(h["epoch"], h["loss"], h["val_accuracy"]) for h in Run.open(straight_dir).read_log()]
    assert [e[0] for e in epochs_a] == [1, 2, 3, 4]  # 1-2 before the kill, 3-4 after resume
    assert epochs_a == epochs_b
    a = json.loads((run_dir / "metrics.json").read_text())["1-3"]["fse"]["metrics"]
    b = json.loads((straight_dir / "metrics.json").read_text())["1-3"]["fse"]["metrics"]
    assert a["accuracy"] == b["accuracy"] and a["macro_auc"] == b["macro_auc"]


def test_sigterm_stops_at_a_safe_point_and_the_printed_command_resumes(dirs):
    """What SLURM / Kubernetes send before a kill: the run saves, says how to continue, is marked
    "interrupted", and that command finishes it with every epoch once in metrics.jsonl."""
    workdir = str(Path(dirs["workdir"]).parent / "sigterm")
    args = [*_args(dirs, "--model", "simple", "--range", "full", "--epochs", "3"), "--workdir", workdir]
    proc = subprocess.Popen(
        [sys.executable, "-m", "experiments.pid", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    try:
        for _ in range(1200):  # until the first epoch's record is written
            logs = list(Path(workdir).glob("pid/*/metrics.jsonl"))
            if logs and logs[0].read_text().strip() or proc.poll() is not None:
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 143, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("interrupted (SIGTERM): stopped at a safe point, saved a checkpoint"), last
    command = last.split("continue with: ")[1].split()
    assert command[:3] == ["python", "-m", "experiments.pid"] and command[3] == "--resume"
    entry = [r for r in load_registry(workdir, "pid")][-1]
    assert entry["status"] == "interrupted" and entry["signal"] == "SIGTERM"
    resumed = _cli([*command[3:], "--workdir", workdir, "--data-dir", dirs["data"], "--no-progress"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert load_registry(workdir, "pid")[-1]["status"] == "done"
    assert [r["epoch"] for r in Run.open(command[4]).read_log()] == [1, 2, 3]


def _expect_user_error(capsys, argv, *fragments):
    with pytest.raises(SystemExit) as exit_info:
        cli.run_main(pid_experiment.main, argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, err


def test_tpu_without_tpu_is_one_clear_message(dirs, capsys):
    _expect_user_error(capsys, _args(dirs, "--tpu"), "--tpu", "no TPU")


def test_bad_tables_are_one_clear_message(dirs, tmp_path, capsys):
    columns = simulate_tracks(2000, seed=1)
    missing = {k: v for k, v in columns.items() if k not in ("tof_beta", "dca_z")}
    write_table(missing, tmp_path / "missing.csv")
    _expect_user_error(
        capsys, _args(dirs, "--data", str(tmp_path / "missing.csv")), "missing.csv", "tof_beta", "dca_z"
    )
    all_nan = dict(columns, tpc_signal=np.full(2000, np.nan, np.float32))
    write_table(all_nan, tmp_path / "nan.parquet")
    _expect_user_error(
        capsys, _args(dirs, "--data", str(tmp_path / "nan.parquet")), "nan.parquet", "tpc_signal"
    )
    (tmp_path / "empty.csv").write_text("")
    _expect_user_error(capsys, _args(dirs, "--data", str(tmp_path / "empty.csv")), "empty.csv")
    _expect_user_error(capsys, _args(dirs, "--range", "3-1"), "3-1")


def test_infinite_values_are_one_clear_message_before_training(dirs, tmp_path, capsys, monkeypatch):
    columns = simulate_tracks(2000, seed=1)
    columns["pt"][5] = np.inf
    columns["tpc_signal"][[3, 9]] = -np.inf
    write_table(columns, tmp_path / "inf.csv")

    def no_training(*args, **kwargs):
        raise AssertionError("training started on a table with infinities")

    monkeypatch.setattr(experiment, "train_model", no_training)
    _expect_user_error(
        capsys,
        _args(dirs, "--data", str(tmp_path / "inf.csv")),
        "inf.csv",
        "pt (1 row(s), first row 5)",
        "tpc_signal (2 row(s), first row 3)",
        "NaN",
    )
