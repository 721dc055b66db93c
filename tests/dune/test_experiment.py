"""The DUNE experiment end to end on tiny settings: each task, the search, the registry, bad input."""

import json

import numpy as np
import pytest

from experiments import dune as dune_experiment
from jaxhep import cli
from tests.smoke import smoke_args

TINY = [
    *smoke_args("data.n_events=300", "net.direction.depths=[1,1,2]", "net.direction.base_filters=4"),
    "--epochs",
    "1",
]


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    base = tmp_path_factory.mktemp("dune")
    return ["--workdir", str(base / "runs"), "--data-dir", str(base / "data")]


def test_direction_compares_three_and_single_plane(dirs):
    run = dune_experiment.main(["direction", *TINY, "--members", "1", "--set", "data.n_events=200", *dirs])
    metrics = json.loads((run.path / "metrics.json").read_text())["networks"]
    assert set(metrics) == {"three_plane", "single_plane"}
    for r in metrics.values():
        assert 0 <= r["mean_axis_deg"] <= 90 and 0 <= r["mean_angle_deg"] <= 180
        assert r["mean_axis_deg"] <= r["mean_angle_deg"] + 1e-9  # an axis error never exceeds the angle
        assert len(r["angle_vs_energy"]["mean"]) == 7
    assert {"angle_vs_energy.png", "axis_vs_energy.png"} <= {p.name for p in (run.path / "plots").iterdir()}
    assert "Physics floor" in (run.path / "report.md").read_text()


@pytest.mark.parametrize("task", ["channel", "maintrack"])
def test_classifiers_report_accuracy_and_auc(dirs, task):
    run = dune_experiment.main([task, *TINY, "--members", "1", "--set", f"net.{task}.depth=2", *dirs])
    r = json.loads((run.path / "metrics.json").read_text())["networks"]["classifier"]
    assert 0 <= r["accuracy"] <= 1 and (0 <= r["auc"] <= 1 or np.isnan(r["auc"]))


def test_search_resumes_and_every_trial_is_in_the_registry(dirs, capsys):
    args = ["maintrack", *TINY, "--set", "net.maintrack.depth=1", "--set", "data.n_events=150", *dirs]
    first = dune_experiment.main([*args, "--search", "1"])
    assert len(first.trials) == 1
    again = dune_experiment.main([*args, "--search", "2"])  # resumes: one more trial
    assert len(again.trials) == 2 and again.trials[0]["params"] == first.trials[0]["params"]
    capsys.readouterr()
    table = dune_experiment.main(["registry", *dirs])
    assert table.count("dune-maintrack-classifier-t") == 2
    assert "learning_rate=" in table and "done" in table


def test_missing_file_is_one_clear_message(dirs, tmp_path, capsys):
    missing = tmp_path / "three_plane_matched_50k.npz"
    with pytest.raises(SystemExit) as exit_info:
        cli.run_main(dune_experiment.main, ["direction", *TINY, "--data", str(missing), *dirs])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and str(missing) in err and len(err.strip().splitlines()) == 1
