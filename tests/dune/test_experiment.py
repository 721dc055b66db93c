"""The DUNE experiment end to end on tiny settings: each task, the Python API on the run folders,
--print-config and --config, the search, the registry, bad input."""

import json
from pathlib import Path

import numpy as np
import pytest

from experiments import dune as dune_experiment
from jaxhep import cli, metrics
from jaxhep.config import from_dict
from jaxhep.dune import dataset
from jaxhep.dune.api import load_predictor
from jaxhep.dune.config import DuneConfig
from jaxhep.errors import InputError
from jaxhep.export import run_onnx, session
from jaxhep.runs import Run, load_registry
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


def _data(run, dirs) -> dataset.DuneData:
    """The run's own sample, read back from its NPZ file with the keys its networks read."""
    return dataset.load_run(from_dict(DuneConfig, run.config["dune"]), dirs[3])


@pytest.fixture(scope="module")
def direction_run(dirs):
    """One tiny direction run (three_plane and single_plane, 2 members), shared by the tests that read it;
    with the classical fit inside and the volume profiles, so that the export carries moments.py and
    the predictor and ONNX read volume_x beside the cluster images."""
    prior = ["net.direction.prior=moments", "net.direction.profile_bins=4", "net.direction.volume_bins=4"]
    prior += ["net.direction.end_bins=2", "net.direction.head=axis_sense", "net.direction.sense_dense=[8]"]
    sets = [arg for s in ["data.n_events=200", *prior] for arg in ("--set", s)]
    return dune_experiment.main(["direction", *TINY, "--members", "2", *sets, *dirs])


def _classifier_run(dirs, task):
    return dune_experiment.main([task, *TINY, "--members", "1", "--set", f"net.{task}.depth=2", *dirs])


@pytest.fixture(scope="module")
def channel_run(dirs):
    return _classifier_run(dirs, "channel")


@pytest.fixture(scope="module")
def maintrack_run(dirs):
    return _classifier_run(dirs, "maintrack")


def test_direction_compares_three_and_single_plane(direction_run, dirs):
    run = direction_run
    metrics_json = json.loads((run.path / "metrics.json").read_text())["networks"]
    assert set(metrics_json) == {"three_plane", "single_plane"}
    for r in metrics_json.values():
        assert 0 <= r["mean_axis_deg"] <= 90 and 0 <= r["mean_angle_deg"] <= 180
        assert r["mean_axis_deg"] <= r["mean_angle_deg"] + 1e-9  # an axis error never exceeds the angle
        assert len(r["angle_vs_energy"]["mean"]) == 7
        sense = r["head_tail_vs_energy"]  # by energy, weighted by the bins' events: the overall figure
        n = np.asarray(sense["n"])
        assert n.sum() == r["n_test"]
        np.testing.assert_allclose(np.nansum(np.asarray(sense["mean"]) * n) / n.sum(), r["head_tail_correct"])
    assert {"angle_vs_energy.png", "axis_vs_energy.png"} <= {p.name for p in (run.path / "plots").iterdir()}
    assert "Physics floor" in (run.path / "report.md").read_text()
    assert run.config["select"] == "direction" and run.config["dune"]["train"]["precision"] == "float32"
    assert Run.open(run.path).resume_command().startswith("python -m experiments.dune direction --resume ")

    # The Python API: the ensemble's directions on the test rows, read from the NPZ file or given
    # as image arrays, give the run's own test figures.
    data = _data(run, dirs)
    rows, true = data.rows["test"], data.column("direction", "test")
    for network in ("three_plane", "single_plane"):
        predictor = load_predictor(run.path, network)
        directions = predictor.predict(data.source.path)[rows]
        assert directions.shape == (len(rows), 3)
        np.testing.assert_allclose(np.linalg.norm(directions, axis=1), 1.0, atol=1e-5)
        angle = metrics.angular_error_deg(directions, true)
        np.testing.assert_allclose(angle.mean(), metrics_json[network]["mean_angle_deg"], atol=1e-4)
        if network == "three_plane":  # the image arrays, as the model takes them
            images = data.source.read_rows(rows)
            np.testing.assert_allclose(predictor.predict(images), directions, atol=1e-5)
    assert load_predictor(run.path).trained.network == "three_plane"  # the task's first network
    with pytest.raises(InputError, match="no finished direction model 'classifier'"):
        load_predictor(run.path, "classifier")


@pytest.mark.parametrize("task", ["channel", "maintrack"])
def test_classifiers_report_accuracy_and_auc(dirs, task, request):
    run = request.getfixturevalue(f"{task}_run")
    r = json.loads((run.path / "metrics.json").read_text())["networks"]["classifier"]
    assert 0 <= r["accuracy"] <= 1 and (0 <= r["auc"] <= 1 or np.isnan(r["auc"]))
    # The Python API reproduces the test accuracy from the NPZ file.
    data = _data(run, dirs)
    prob = load_predictor(run.path).predict(data.source.path)[data.rows["test"]]
    labels = data.column(dataset.LABEL[task], "test")
    assert prob.shape == labels.shape and np.all((prob >= 0) & (prob <= 1))
    np.testing.assert_allclose(np.mean((prob >= 0.5) == (labels > 0)), r["accuracy"], atol=1e-4)


def _print_config(capsys, *args) -> list[str]:
    capsys.readouterr()
    dune_experiment.main(list(args))
    return capsys.readouterr().out.splitlines()


def test_print_config_shows_every_field_and_starts_no_run(dirs, tmp_path, capsys):
    workdir = tmp_path / "runs"
    lines = _print_config(
        capsys, "channel", "--quick", "--print-config", "--members", "3", "--workdir", str(workdir)
    )
    assert 'task = "channel"' in lines and 'train.precision = "auto"' in lines
    assert "net.members = 3" in lines and "train.grad_clip_norm = 1.0" in lines
    assert 'train.monitor = "val_auc"' in lines and "net.direction.base_filters = 8" in lines
    assert not workdir.exists()
    # A hand-written file naming one field changes exactly that field.
    (tmp_path / "one.yaml").write_text("net:\n  bootstrap: online\n")
    changed = _print_config(
        capsys, "channel", "--quick", "--print-config", "--config", str(tmp_path / "one.yaml")
    )
    default = _print_config(capsys, "channel", "--quick", "--print-config")
    assert [line for line in changed if line not in default] == ['net.bootstrap = "online"']
    assert len(changed) == len(default)


def test_onnx_export_of_direction_equals_the_predictor_at_two_batch_sizes(direction_run, dirs, tmp_path):
    run = direction_run
    records = dune_experiment.main(["export", str(run.path), "--out", str(tmp_path)])
    assert {r["file"] for r in records} == {"direction_three_plane.onnx", "direction_single_plane.onnx"}
    assert json.loads((tmp_path / "export.json").read_text()) == records
    data = _data(run, dirs)
    rows = data.rows["test"]
    for network in ("three_plane", "single_plane"):
        predictor = load_predictor(run.path, network)
        sess = session(tmp_path / f"direction_{network}.onnx")
        assert [i.name for i in sess.get_inputs()] == list(predictor.input_keys)
        assert sess.get_modelmeta().custom_metadata_map["members"] == "2"
        for batch in (rows[:1], rows):  # two batch sizes: N is dynamic
            images = data.source.read_rows(batch)
            want = predictor.outputs(images)
            direction, members, agreement, spread = run_onnx(sess, [images[k] for k in predictor.input_keys])
            np.testing.assert_allclose(direction, predictor.predict(images), rtol=0, atol=1e-5)
            np.testing.assert_allclose(members, want["members"], rtol=0, atol=1e-5)
            np.testing.assert_allclose(agreement, want["sense_agreement"], rtol=0, atol=1e-5)
            np.testing.assert_allclose(spread, np.radians(want["spread_deg"]), rtol=0, atol=1e-5)
            assert members.shape == (len(batch), 2, 3)


@pytest.mark.parametrize("task", ["channel", "maintrack"])
def test_onnx_export_of_classifiers_equals_the_predictor(dirs, task, request, tmp_path):
    run = request.getfixturevalue(f"{task}_run")
    (record,) = dune_experiment.main(["export", str(run.path), "--out", str(tmp_path)])
    assert record["outputs"] == ["prob", "prob_std", "member_prob"]
    predictor = load_predictor(run.path)
    sess = session(tmp_path / record["file"])
    data = _data(run, dirs)
    for batch in (data.rows["test"][:2], data.rows["test"]):
        images = data.source.read_rows(batch)
        want = predictor.outputs(images)
        prob, prob_std, member_prob = run_onnx(sess, [images[k] for k in predictor.input_keys])
        np.testing.assert_allclose(prob, predictor.predict(images), rtol=0, atol=1e-5)
        np.testing.assert_allclose(prob_std, want["prob_std"], rtol=0, atol=1e-5)
        np.testing.assert_allclose(member_prob, 1 / (1 + np.exp(-want["members"])), rtol=0, atol=1e-5)


def test_a_runs_config_json_given_back_gives_the_same_config(dirs, maintrack_run):
    configs = [
        Path(r["path"], "config.json") for r in load_registry(dirs[1], "dune") if r["status"] == "done"
    ]
    first = next(c for c in configs if json.loads(c.read_text()).get("select") == "maintrack")
    for quick in ([], ["--quick"]):
        again = dune_experiment.main(
            ["maintrack", "--config", str(first), *quick, "--devices", "1", "--no-progress", *dirs]
        )
        assert again.config["dune"] == json.loads(first.read_text())["dune"]


def test_search_resumes_and_every_trial_is_in_the_registry(dirs, maintrack_run, capsys):
    args = ["maintrack", *TINY, "--set", "net.maintrack.depth=1", "--set", "data.n_events=150", *dirs]
    first = dune_experiment.main([*args, "--search", "1"])
    assert len(first.trials) == 1
    again = dune_experiment.main([*args, "--search", "2"])  # resumes: one more trial
    assert len(again.trials) == 2 and again.trials[0]["params"] == first.trials[0]["params"]
    capsys.readouterr()
    table = dune_experiment.main(["registry", *dirs])
    assert table.count("dune-maintrack-classifier-t") == 2
    assert "learning_rate=" in table and "done" in table
    # A run's row: its task, network and key settings, as the seed's registry kept them.
    row = next(line for line in table.splitlines() if maintrack_run.run_id in line)
    assert "| maintrack | classifier | done |" in row
    assert "members=1, epochs=1" in row and "depth=2" in row


def test_missing_file_and_unknown_network_are_one_clear_message(dirs, tmp_path, capsys):
    missing = tmp_path / "three_plane_matched_50k.npz"
    dirs = ["--workdir", str(tmp_path / "runs"), *dirs[2:]]  # its own, to see that no run folder is made
    for argv, fragment in (
        (["direction", *TINY, "--data", str(missing), *dirs], str(missing)),
        (["channel", *TINY, "--network", "three_plane", *dirs], "task channel has networks ('classifier',)"),
        # start segments need all three planes: said before the three-plane network trains
        (
            ["direction", *TINY, "--set", "net.direction.prior=moments", "--set", "net.direction.start_mm=15"]
            + dirs,
            "(single_plane): start_mm (>= 0) are start-segment fits",
        ),
        (["direction", *TINY, "--set", "net.direction.prior=pca", *dirs], "unknown direction prior 'pca'"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            cli.run_main(dune_experiment.main, argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and fragment in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("config.json")), argv
