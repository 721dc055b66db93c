"""The shared command line: flags onto a fresh config; a resumed run keeps its own."""

from dataclasses import dataclass, field

from jaxhep import cli
from jaxhep.config import to_dict
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
    args = parser.parse_args(["--resume", str(run.path), "--no-progress", "--epochs", "7"])
    resumed, same = cli.resolve_config(args, ToyConfig, "toy", lambda q: ToyConfig())
    assert same.path == run.path
    assert resumed.train.epochs == 3  # the run's own settings, not this command's
    assert not resumed.train.progress  # display only: a batch job resuming wants no bars
