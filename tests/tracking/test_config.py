"""The tracking config: --print-config, --config FILE (a run's own config.json, a hand-written file),
the task's flags, the checks, the global batch and configs of runs made before train.precision."""

import json
from pathlib import Path

import pytest

from experiments import tracking as tracking_experiment
from jaxhep import cli
from jaxhep.config import changed_fields, flat_items
from jaxhep.errors import InputError
from jaxhep.tracking import config
from jaxhep.tracking.config import run_config
from jaxhep.tracking.training import global_batch
from tests.smoke import smoke_args


def test_print_config_prints_every_field_with_the_flags_and_starts_no_run(tmp_path, capsys):
    workdir = tmp_path / "runs"
    argv = ["--quick", "--print-config", "--pt-min", "1.5", "--graph", "knn", "--workdir", str(workdir)]
    cfg = tracking_experiment.main(argv)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" = ")[0] for line in lines] == [k for k, _ in flat_items(config.quick())]
    assert 'train.precision = "auto"' in lines and "train.batch_size = 1" in lines
    # --pt-min sets both the training labels' cut and the headline score's
    assert "data.pt_min = 1.5" in lines and "eval.pt_min = 1.5" in lines and 'data.method = "knn"' in lines
    assert changed_fields(config.quick(), cfg).keys() == {"data.pt_min", "eval.pt_min", "data.method"}
    assert not workdir.exists()


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_a_hand_written_file_changes_exactly_its_fields(tmp_path, suffix, capsys):
    path = tmp_path / f"changes{suffix}"
    if suffix == ".yaml":
        path.write_text("cascade:\n  target_recall: 0.99\n")
    else:
        path.write_text(json.dumps({"cascade": {"target_recall": 0.99}}))
    cfg = tracking_experiment.main(["--quick", "--config", str(path), "--print-config"])
    assert changed_fields(config.quick(), cfg) == {"cascade.target_recall": (0.995, 0.99)}


def test_a_runs_config_json_given_back_makes_the_same_run(dirs, quick_run, capsys):
    path = quick_run.path / "config.json"
    first = json.loads(path.read_text())["tracking"]
    # with --quick (printed only): the file's settings win over the quick ones
    cfg = tracking_experiment.main(["--quick", "--config", str(path), "--print-config"])
    assert cfg == config.run_config(json.loads(path.read_text()), path)
    # without: a new run, on one device as the first, with the same config and the same figures
    again = tracking_experiment.main(
        ["--config", str(path), "--devices", "1", "--workdir", dirs["workdir"], "--data-dir", dirs["data"]]
    )
    assert again.path != quick_run.path and again.config["tracking"] == first
    a, b = (json.loads((r.path / "metrics.json").read_text()) for r in (quick_run, again))
    assert (
        a["test"] == b["test"] and a["tracks"] == b["tracks"] and a["filter"]["test"] == b["filter"]["test"]
    )


@pytest.mark.parametrize(
    ("setting", "fragment"),
    [
        ("cascade.stages=3", "cascade.stages must be 1 or 2"),
        ("data.method=delaunay", "data.method 'delaunay'"),
        ("eval.track_method=kalman", "eval.track_method 'kalman'"),
        ("data.pt_floor=0", "data.pt_floor must be positive"),
        ("cascade.filter_layers=-1", "cascade.filter_layers must be"),
        ("cascade.filter_width=33", "must be a multiple of model.heads 2"),
        ("eval.threshold=best", "eval.threshold 'best': must be score or f1"),
    ],
)
def test_settings_that_cannot_run_are_one_line_before_a_run(tmp_path, capsys, setting, fragment):
    workdir = tmp_path / "runs"
    with pytest.raises(SystemExit) as exit_info:
        cli.run(tracking_experiment.TASK, smoke_args(setting, workdir=workdir))
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error: ") and fragment in err, err
    assert not workdir.exists()


def test_the_batch_is_global_and_whole_graphs_per_device():
    assert [global_batch(b, 1) for b in (1, 2, 5)] == [1, 2, 5]
    assert [global_batch(b, 8) for b in (1, 8, 9, 16)] == [8, 8, 16, 16]
    assert global_batch(3, 2) == 4


def test_config_of_a_run_made_before_train_precision():
    section = json.loads(json.dumps({"model": {"width": 32, "dtype": "bfloat16"}, "train": {"epochs": 3}}))
    cfg = run_config({"tracking": section}, Path("config.json"))
    assert cfg.train.precision == "bfloat16" and cfg.model.width == 32 and cfg.train.epochs == 3
    assert "dtype" in section["model"]  # the run's own dict is left as it was
    with pytest.raises(InputError, match="not the config of a tracking run"):
        run_config({"pid": {}}, Path("config.json"))
