"""The e/gamma experiment end to end (tiny), resume of a finished model, the Python API on the
run's own HDF5 files, --print-config, --config files, and bad inputs and settings."""

import dataclasses
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from experiments import egamma as egamma_experiment
from jaxhep import cli, metrics
from jaxhep.config import changed_fields, from_dict
from jaxhep.egamma import config as egamma_config
from jaxhep.egamma import dataset
from jaxhep.egamma.api import load_predictor
from jaxhep.egamma.config import EgammaConfig
from jaxhep.egamma.experiment import input_workers
from jaxhep.egamma.sim.simulate import write_hdf5
from jaxhep.errors import InputError
from jaxhep.export import run_onnx, session
from jaxhep.train import TrainConfig
from tests.approx import approx
from tests.smoke import smoke_args

TINY = [
    *smoke_args("data.max_rows=600", "embed_rows=40", "widths=[4,8]", "blocks_per_stage=[1,1]"),
    "--epochs",
    "1",
]


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    base = tmp_path_factory.mktemp("egamma")
    return {"workdir": str(base / "runs"), "data": str(base / "data")}


@pytest.fixture(scope="module")
def tiny_run(dirs):
    """One tiny run of both networks, shared by the tests that read a finished run."""
    return egamma_experiment.main([*TINY, "--workdir", dirs["workdir"], "--data-dir", dirs["data"]])


def test_quick_run_trains_both_networks_and_reports(tiny_run):
    run = tiny_run
    out = json.loads((run.path / "metrics.json").read_text())
    metrics_ = out["models"]
    assert set(metrics_) == {"se", "plain"}
    assert len(out["data_fingerprint"]) == 12 and "data_fingerprint" not in run.config
    for m in metrics_.values():
        assert 0.0 <= m["auc"] <= 1.0 and 0.0 <= m["accuracy"] <= 1.0
        assert np.asarray(m["confusion"]).sum() == m["n_test"] == 90
        assert set(m["report"]) >= {"photon", "electron", "accuracy"}
        # 40 of the 90 test images, both classes (the split's first 45 rows are all photons)
        assert sum(m["embedding_class_counts"]) == 40 and min(m["embedding_class_counts"]) >= 15
    plots = {p.name for p in (run.path / "plots").glob("*.png")}
    assert {"roc.png", "confusion_se.png", "embedding_se.png", "embedding_plain.png"} <= plots
    report = (run.path / "report.md").read_text()
    assert "| se |" in report and "| plain |" in report
    # the precision the driver resolved is the run's, and its models record it
    assert run.config["egamma"]["train"]["precision"] == "float32"
    assert json.loads((run.path / "models" / "se" / "model.json").read_text())["precision"] == "float32"
    # Resuming a finished run loads the trained models instead of training again.
    again = egamma_experiment.main(["--resume", str(run.path), "--no-progress", "--devices", "1"])
    metrics_again = json.loads((again.path / "metrics.json").read_text())["models"]
    assert metrics_again["se"]["auc"] == approx(metrics_["se"]["auc"])


def _read_x(path) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return f["X"][()]


def test_predictor_reproduces_the_runs_test_figures_from_its_hdf5_files(tiny_run, dirs, tmp_path):
    run = tiny_run
    figures = json.loads((run.path / "metrics.json").read_text())["models"]
    data = dataset.load(from_dict(EgammaConfig, run.config["egamma"]).data, dirs["data"])
    rows, labels = data.rows["test"], data.labels("test")
    # The test rows as a user has them: X read straight from the run's HDF5 files, no normalisation.
    images = np.concatenate([_read_x(p) for p in data.source.paths])[rows]
    path = write_hdf5(tmp_path / "test_rows.hdf5", images, labels)
    for name in ("se", "plain"):
        predictor = load_predictor(run.path, name)
        assert predictor.threshold_logit == figures[name]["threshold_logit"]
        proba = predictor.predict_proba(images)
        assert proba.shape == (90,) and ((proba > 0) & (proba < 1)).all()
        assert metrics.roc_auc(labels, proba) == approx(figures[name]["auc"], abs=1e-4)
        predicted = predictor.predict(path)
        assert set(np.unique(predicted)) <= {0, 1}
        assert np.mean(predicted == labels) == figures[name]["accuracy"]
        np.testing.assert_allclose(predictor.predict_proba(path), proba, rtol=1e-6)
    with pytest.raises(ValueError, match="32, 32, 2"):
        predictor.predict(images.transpose(0, 3, 1, 2))  # channels first
    with pytest.raises(InputError, match="no finished model 'peer'"):
        load_predictor(run.path, "peer")


def test_onnx_export_command_writes_files_that_equal_the_predictor(tiny_run, dirs, tmp_path):
    run = tiny_run
    records = egamma_experiment.main(["export", str(run.path), "--out", str(tmp_path)])
    assert [r["file"] for r in records] == ["plain.onnx", "se.onnx"]
    assert json.loads((tmp_path / "export.json").read_text()) == records
    assert all(
        r["inputs"] == [{"name": "images", "shape": ["N", 32, 32, 2], "dtype": "float32"}] for r in records
    )
    data = dataset.load(from_dict(EgammaConfig, run.config["egamma"]).data, dirs["data"])
    images = np.concatenate([_read_x(p) for p in data.source.paths])[
        data.rows["test"]
    ]  # raw, as in the files
    for name in ("se", "plain"):
        predictor = load_predictor(run.path, name)
        sess = session(tmp_path / f"{name}.onnx")
        meta = sess.get_modelmeta().custom_metadata_map
        assert float(meta["threshold_logit"]) == predictor.threshold_logit and meta["run_id"] == run.path.name
        assert (
            json.loads((tmp_path / f"{name}.json").read_text())["normalisation"]
            == predictor.trained.stats.to_dict()
        )
        for rows in (images[:1], images):  # two batch sizes: N is dynamic
            logit, p_electron = run_onnx(sess, [rows])
            np.testing.assert_allclose(logit, predictor.logits(rows), rtol=0, atol=1e-5)
            np.testing.assert_allclose(p_electron, predictor.predict_proba(rows), rtol=0, atol=1e-5)
        np.testing.assert_array_equal(logit >= predictor.threshold_logit, predictor.predict(images) == 1)


def test_print_config_lists_every_field_and_makes_no_run(dirs, tmp_path, capsys):
    workdir = tmp_path / "runs"
    cfg = egamma_experiment.main(
        ["--quick", "--print-config", "--model", "plain", "--workers", "2", "--workdir", str(workdir)]
    )
    lines = capsys.readouterr().out.splitlines()
    # data 8, models, widths, blocks_per_stage, train, loss 4, augment 7, embed_rows
    assert (
        isinstance(cfg, EgammaConfig)
        and len(lines) == 8 + 3 + len(dataclasses.fields(TrainConfig)) + 4 + 7 + 1
    )
    assert 'train.precision = "auto"' in lines and 'models = ["plain"]' in lines
    assert "data.workers = 2" in lines and "data.paths = []" in lines and "embed_rows = 500" in lines
    assert not workdir.exists()


def _config_only(monkeypatch):
    """The experiment with its training replaced by nothing: the config handling alone, fast."""
    task = dataclasses.replace(egamma_experiment.TASK, train_and_evaluate=lambda cfg, data, run, rt: {})
    monkeypatch.setattr(egamma_experiment, "TASK", task)


def test_a_runs_config_json_given_back_gives_the_same_config(tiny_run, dirs, monkeypatch):
    _config_only(monkeypatch)
    config = tiny_run.path / "config.json"
    first = json.loads(config.read_text())["egamma"]
    where = ["--workdir", dirs["workdir"], "--data-dir", dirs["data"], "--devices", "1"]
    for quick in ([], ["--quick"]):
        again = egamma_experiment.main([*quick, "--config", str(config), *where])
        assert again.path != tiny_run.path and again.config["egamma"] == first


@pytest.mark.parametrize(
    ("name", "text"),
    [("change.yaml", "train:\n  learning_rate: 0.01\n"), ("change.json", '{"embed_rows": 7}')],
)
def test_a_hand_written_config_file_changes_exactly_its_field(dirs, tmp_path, monkeypatch, name, text):
    _config_only(monkeypatch)
    (tmp_path / name).write_text(text)
    where = ["--workdir", dirs["workdir"], "--data-dir", dirs["data"], "--devices", "1"]
    run = egamma_experiment.main(["--quick", "--no-progress", "--config", str(tmp_path / name), *where])
    quick = egamma_config.quick()
    # what the driver sets besides the file: the CPU's precision, and --no-progress
    quick = dataclasses.replace(
        quick, train=dataclasses.replace(quick.train, precision="float32", progress=False)
    )
    changed = changed_fields(quick, from_dict(EgammaConfig, run.config["egamma"]))
    assert changed == (
        {"train.learning_rate": (2e-3, 0.01)} if name.endswith("yaml") else {"embed_rows": (500, 7)}
    )


def _one_line_error(capsys, argv) -> str:
    with pytest.raises(SystemExit) as exit_info:
        cli.run_main(egamma_experiment.main, argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.strip().splitlines()) == 1, err
    return err


def test_bad_data_file_is_one_clear_message(dirs, tmp_path, capsys):
    bad = tmp_path / "SingleElectronPt50_broken.hdf5"
    with h5py.File(bad, "w") as f:
        f["X"] = np.zeros((4, 2, 32, 32), np.float32)  # channels first: wrong shape
    err = _one_line_error(capsys, [*TINY, "--workdir", str(tmp_path / "runs"), "--data", str(bad)])
    assert str(bad) in err and "shape" in err
    assert not (tmp_path / "runs").exists()  # failed before a run folder was made


@pytest.mark.parametrize(
    ("setting", "fragment"),
    [
        ("models=[]", "nothing to do: no network selected"),
        ("models=(se,resnet50)", "models ['resnet50']: e/gamma has se, plain"),
        ("widths=[4,8,16]", "widths / blocks_per_stage"),
        ("loss.kind=hinge", "loss.kind 'hinge'"),
        ("data.workers=-1", "--workers -1"),
    ],
)
def test_settings_that_cannot_run_are_one_line_before_a_run(tmp_path, capsys, setting, fragment):
    err = _one_line_error(capsys, [*smoke_args(setting), "--workdir", str(tmp_path / "runs")])
    assert fragment in err, err
    assert not Path(tmp_path / "runs").exists()


def test_input_workers_are_the_setting_or_none_on_the_cpu():
    assert input_workers(None, "cpu") == 0 and input_workers(3, "cpu") == 3 and input_workers(0, "gpu") == 0
    assert 0 <= input_workers(None, "gpu") <= 8
