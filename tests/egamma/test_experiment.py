"""The e/gamma experiment end to end (tiny), resume of a finished model, and bad inputs."""

import json

import h5py
import numpy as np
import pytest

from experiments import egamma as egamma_experiment
from jaxhep import cli
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


def test_quick_run_trains_both_networks_and_reports(dirs):
    run = egamma_experiment.main([*TINY, "--workdir", dirs["workdir"], "--data-dir", dirs["data"]])
    metrics = json.loads((run.path / "metrics.json").read_text())["models"]
    assert set(metrics) == {"se", "plain"}
    for m in metrics.values():
        assert 0.0 <= m["auc"] <= 1.0 and 0.0 <= m["accuracy"] <= 1.0
        assert np.asarray(m["confusion"]).sum() == m["n_test"] == 90
        assert set(m["report"]) >= {"photon", "electron", "accuracy"}
        # 40 of the 90 test images, both classes (the split's first 45 rows are all photons)
        assert sum(m["embedding_class_counts"]) == 40 and min(m["embedding_class_counts"]) >= 15
    plots = {p.name for p in (run.path / "plots").glob("*.png")}
    assert {"roc.png", "confusion_se.png", "embedding_se.png", "embedding_plain.png"} <= plots
    report = (run.path / "report.md").read_text()
    assert "| se |" in report and "| plain |" in report
    # Resuming a finished run loads the trained models instead of training again.
    again = egamma_experiment.main(["--resume", str(run.path), "--no-progress", "--devices", "1"])
    metrics_again = json.loads((again.path / "metrics.json").read_text())["models"]
    assert metrics_again["se"]["auc"] == approx(metrics["se"]["auc"])


def test_bad_data_file_is_one_clear_message(dirs, tmp_path, capsys):
    bad = tmp_path / "SingleElectronPt50_broken.hdf5"
    with h5py.File(bad, "w") as f:
        f["X"] = np.zeros((4, 2, 32, 32), np.float32)  # channels first: wrong shape
    with pytest.raises(SystemExit) as exit_info:
        cli.run_main(egamma_experiment.main, [*TINY, "--workdir", dirs["workdir"], "--data", str(bad)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and str(bad) in err and "shape" in err
    assert len(err.strip().splitlines()) == 1
