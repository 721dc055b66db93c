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
