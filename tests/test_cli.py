"""The shared command line: flags onto a fresh config; a resumed run keeps its own."""

import re
from dataclasses import dataclass, field

import pytest

from jaxhep import cli
from jaxhep.config import to_dict
from jaxhep.errors import ConfigError
from jaxhep.runs import Run
from jaxhep.train import TrainConfig


@dataclass(frozen=True)
class ToyConfig:
    train: TrainConfig = field(default_factory=TrainConfig)


def test_a_resumed_run_keeps_its_config_and_takes_only_no_progress(tmp_path):
    parser = cli.base_parser("python -m toy", "a toy experiment")
    cfg, run = cli.resolve_config(
        parser.parse_args(["--epochs", "3"]), ToyConfig, "toy", lambda q: ToyConfig()
    )
    assert run is None and cfg.train.epochs == 3 and cfg.train.progress
    run = Run.create(tmp_path, "toy", {"toy": to_dict(cfg)})
    # the same command again with --resume added: its flags agree with the run's own settings
    args = parser.parse_args(["--resume", str(run.path), "--no-progress", "--epochs", "3"])
    resumed, same = cli.resolve_config(args, ToyConfig, "toy", lambda q: ToyConfig())
    assert same.path == run.path
    assert resumed.train.epochs == 3
    assert not resumed.train.progress  # display only: a batch job resuming wants no bars
    assert resumed.train.learning_rate == TrainConfig().learning_rate


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--epochs", "7"], "train.epochs=7 (the run has 3)"),
        (["--set", "train.learning_rate=0.5", "--seed", "0"], "train.learning_rate=0.5"),
    ],
)
def test_a_flag_that_would_change_a_resumed_run_is_an_error(tmp_path, flags, named):
    run = Run.create(tmp_path, "toy", {"toy": to_dict(ToyConfig(TrainConfig(epochs=3)))})
    parser = cli.base_parser("python -m toy", "a toy experiment")
    args = parser.parse_args(["--resume", str(run.path), *flags])
    with pytest.raises(ConfigError, match=re.escape(named)) as err:
        cli.resolve_config(args, ToyConfig, "toy", lambda q: ToyConfig())
    assert str(run.path) in str(err.value) and "train.seed" not in str(err.value)  # --seed 0 agrees


def _one_line_error(capsys, main, argv) -> str:
    """run_main(main, argv): exit status 2 and one line on stderr, which is returned."""
    with pytest.raises(SystemExit) as exit_info:
        cli.run_main(main, argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--epochs", "0"], "--epochs 0: must be at least 1"),
        (["--epochs", "-1"], "--epochs -1: must be at least 1"),
        (["--batch-size", "0"], "--batch-size 0: must be at least 1"),
        (["--batch-size", "-5"], "--batch-size -5: must be at least 1"),
        (["--set", "train.learning_rate=-1"], "train.learning_rate -1.0: must be a positive number"),
        (["--set", "train.patience=-2"], "train.patience -2: must not be negative"),
    ],
)
def test_flags_that_cannot_train_are_one_clear_line(tmp_path, capsys, flags, named):
    from experiments import pid

    err = _one_line_error(capsys, pid.main, ["--quick", "--workdir", str(tmp_path), *flags])
    assert named in err, err
    assert not (tmp_path / "pid").exists()  # refused before any run folder is made


def test_resume_of_another_tasks_run_names_its_task(tmp_path, capsys):
    from experiments import pid

    run = Run.create(tmp_path, "tracking", {"tracking": {"train": {}}, "argv": []})
    err = _one_line_error(capsys, pid.main, ["--resume", str(run.path)])
    assert "a tracking run, not a pid one" in err and f"experiments.tracking --resume {run.path}" in err


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ('{"pid": {"train": {"epo', "Unterminated string"),
        ('{"pid": {"train": {"learning_rate": "fast"}}}', "train.learning_rate: expected a number"),
        ('{"pid": {"train": {"epochs": -3}}}', "--epochs -3: must be at least 1"),
        ("[1, 2]", "a JSON object is expected"),
    ],
)
def test_a_damaged_run_config_names_the_file(tmp_path, capsys, text, problem):
    from experiments import pid

    run = Run.create(tmp_path, "pid", {"pid": {}})
    (run.path / "config.json").write_text(text)
    err = _one_line_error(capsys, pid.main, ["--resume", str(run.path)])
    assert str(run.path / "config.json") in err and problem in err, err


@pytest.mark.parametrize(
    ("signal_name", "saved", "expected"),
    [
        ("SIGTERM", "a checkpoint at the end of epoch 2", "interrupted (SIGTERM): stopped at a safe point"),
        ("SIGINT", None, "interrupted (SIGINT): finished work is kept in the run folder"),
    ],
)
def test_an_interrupted_run_prints_its_real_resume_command_and_is_marked(
    tmp_path, capsys, signal_name, saved, expected
):
    from jaxhep import interrupt
    from jaxhep.runs import load_registry

    run = Run.create(tmp_path, "pid", {"pid": {}})

    def main(argv):
        with run.recorded():
            raise interrupt.Interrupted(signal_name, saved)

    with pytest.raises(SystemExit) as exit_info:
        cli.run_main(main, [])
    assert exit_info.value.code == interrupt.EXIT_STATUS[signal_name]
    err = capsys.readouterr().err
    assert err.startswith(expected) and err.count("\n") == 1, err
    assert err.rstrip().endswith(f"continue with: python -m experiments.pid --resume {run.path}")
    assert "RUN_DIR" not in err
    entry = load_registry(tmp_path)[0]
    assert entry["status"] == "interrupted" and entry["signal"] == signal_name
