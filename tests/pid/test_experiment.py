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
from jaxhep.export import export as export_onnx
from jaxhep.export import run_onnx, session
from jaxhep.pid import experiment
from jaxhep.pid import export as pid_export
from jaxhep.pid.api import available_models, load_predictor
from jaxhep.pid.config import PIDConfig
from jaxhep.pid.dataset import load_table
from jaxhep.pid.sim.simulate import simulate_tracks, write_table
from jaxhep.pid.species import FEATURES, GROUPS, SPECIES
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


def _done_run(dirs, models):
    """The first finished run of the module's tiny runs whose models are exactly `models`."""
    done = [Path(r["path"]) for r in load_registry(dirs["workdir"], "pid") if r["status"] == "done"]
    return next(path for path in done if available_models(path) == models)


def _test_rows(dirs, run_dir, n):
    """Raw test rows [n, 21] of the run's table, with rows that lack TOF, TPC, or have TOF's flag
    but NaN values (as a C++ caller may send them)."""
    table = load_table(
        from_dict(PIDConfig, json.loads((run_dir / "config.json").read_text())["pid"]).data, dirs["data"]
    )
    rows = np.stack([table.columns[f][table.test[:n]] for f in FEATURES], axis=1).astype(np.float32)
    tof = [FEATURES.index(f) for f in GROUPS["tof"]]
    tpc = [FEATURES.index(f) for f in GROUPS["tpc"]]
    rows[0:40:3, tof], rows[0:40:3, FEATURES.index("has_tof")] = np.nan, 0.0
    rows[1:40:5, tpc + tof], rows[1:40:5, FEATURES.index("has_tpc")] = np.nan, 0.0
    rows[1:40:5, FEATURES.index("has_tof")] = 0.0
    rows[2, tof] = np.nan  # TOF flag on, values missing
    return rows


def test_export_command_writes_onnx_that_gives_predict_proba_from_raw_columns(dirs, tmp_path, capsys):
    """`export RUN_DIR`: ONNX Runtime on raw columns with NaNs == predict_proba within 1e-5 at two
    batch sizes; the O2Physics per-species files give that species' column from O2-style inputs."""
    import onnx

    run_dir = _done_run(dirs, [("fse", "full")])  # the run that reused the FSE: one model
    out = tmp_path / "onnx"
    records = pid_experiment.main(["export", str(run_dir), "--out", str(out)])
    o2_files = [f"o2physics/fse_full/attention_model_{pdg}.onnx" for pdg in (211, 321, 2212, 11)]
    assert [r["file"] for r in records] == ["fse_full.onnx", *o2_files]
    assert json.loads((out / "export.json").read_text()) == records
    assert f"{out / 'fse_full.onnx'}  (columns['N', 21] -> probabilities" in capsys.readouterr().out

    rows = _test_rows(dirs, run_dir, 300)
    want = load_predictor(run_dir, "fse", "full").predict_proba(
        {f: rows[:, j] for j, f in enumerate(FEATURES)}
    )
    sess = session(out / "fse_full.onnx")
    for batch in (rows[:1], rows):
        got = run_onnx(sess, [batch])[0]
        assert got.shape == (len(batch), 4)
        np.testing.assert_allclose(got, want[: len(batch)], atol=1e-5, rtol=0)
    meta = {p.key: p.value for p in onnx.load(out / "fse_full.onnx").metadata_props}
    assert meta["species"] == ",".join(SPECIES) and meta["feature_columns"] == ",".join(FEATURES)
    assert meta["run_id"] == run_dir.name and (meta["model"], meta["momentum_range"]) == ("fse", "full")

    o2_rows = pid_export.to_o2_units(rows)  # -999 for missing TPC / TOF values, Bayes in percent
    assert (o2_rows == -999.0).any()
    for k, file in enumerate(o2_files):
        got = run_onnx(session(out / file), [o2_rows])[0]
        assert got.shape == (300, 1)
        np.testing.assert_allclose(got[:, 0], want[:, k], atol=1e-5, rtol=0)
    sidecar = json.loads((out / "o2physics/fse_full/attention_model_321.json").read_text())
    assert sidecar["pdg"] == 321 and sidecar["columns_for_training"][3] == "fTPCSignal"
    folder = out / "o2physics/fse_full"  # the two files O2's PidONNXModel reads beside its models
    columns = json.loads((folder / "columns_for_training.json").read_text())["columns_for_training"]
    assert columns == sidecar["columns_for_training"]
    assert json.loads((folder / "scaling_params.json").read_text())["data"] == [
        [c, 0.0, 1.0] for c in columns
    ]


def test_simple_nn_exports_with_its_preprocessing(dirs, tmp_path):
    run_dir = _done_run(
        dirs, [("fse", "0.7-1.5"), ("fse", "full"), ("simple", "0.7-1.5"), ("simple", "full")]
    )
    graphs = pid_export.onnx_graphs(run_dir, models=("simple",), ranges=("0.7-1.5",), o2physics=False)
    assert [g.name for g in graphs] == ["simple_0.7-1.5"]
    export_onnx(graphs, tmp_path)
    rows = _test_rows(dirs, run_dir, 64)
    want = load_predictor(run_dir, "simple", "0.7-1.5").predict_proba(
        {f: rows[:, j] for j, f in enumerate(FEATURES)}
    )
    np.testing.assert_allclose(
        run_onnx(session(tmp_path / "simple_0.7-1.5.onnx"), [rows])[0], want, atol=1e-5
    )


def test_export_of_a_bad_run_dir_is_one_line(dirs, tmp_path, capsys):
    _expect_user_error(capsys, ["export", str(tmp_path / "nowhere")], "nowhere", "not a run folder")
    (tmp_path / "config.json").write_text("{}")
    _expect_user_error(capsys, ["export", str(tmp_path)], "models", "no finished PID model")


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
