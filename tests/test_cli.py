"""The shared command line: flags onto a fresh config; a resumed run keeps its own."""

import dataclasses
import re
from dataclasses import dataclass, field

import pytest

from jaxhep import cli
from jaxhep.config import to_dict
from jaxhep.errors import ConfigError
from jaxhep.runs import Run
from jaxhep.train import TrainConfig


@dataclass(frozen=True)
class ToyData:
    path: str | None = None
    pt_min: float = 1.0
    cut: float = 1.0


@dataclass(frozen=True)
class ToyConfig:
    data: ToyData = field(default_factory=ToyData)
    models: tuple[str, ...] = ("a", "b")
    reuse: bool = True
    train: TrainConfig = field(default_factory=TrainConfig)


def _toy_task(**kwargs) -> cli.Task:
    """A task whose training records what it was given (no JAX work)."""

    def train_and_evaluate(cfg, data, run, runtime):
        run.write_text("report.md", f"{data}\n")
        return {"models": list(cfg.models)}

    return cli.Task(
        "toy",
        "A toy experiment.\n\npython -m experiments.toy --quick",
        ToyConfig,
        default=ToyConfig,
        quick=lambda: ToyConfig(train=TrainConfig(epochs=2)),
        load_data=lambda cfg, runtime: f"data from {cfg.data.path}",
        train_and_evaluate=train_and_evaluate,
        flags=(
            cli.Flag("--data", "data.path", "a file"),
            cli.Flag("--pt-min", ("data.pt_min", "data.cut"), "a cut", type=float),
            cli.Flag("--model", "models", "a network", repeat=True, choices=("a", "b", "c")),
            cli.Flag("--force-train", "reuse", "train again", const=False),
        ),
        **kwargs,
    )


def _resolve(argv):
    task = _toy_task()
    return cli.resolve_config(task, task.parser().parse_args(argv))


def test_flags_are_aliases_of_config_fields():
    cfg, run = _resolve(["--data", "x.csv", "--pt-min", "2", "--model", "c", "--model", "a", "--model", "c"])
    assert run is None and cfg.data == ToyData("x.csv", 2.0, 2.0)
    assert cfg.models == ("c", "a") and cfg.reuse  # repeats dropped, order kept; a switch not given
    assert _resolve(["--force-train"])[0].reuse is False
    assert _resolve(["--quick"])[0].train.epochs == 2
    # --set comes last: it overrides a flag's value
    assert _resolve(["--data", "x.csv", "--set", "data.path=y.csv"])[0].data.path == "y.csv"


def test_a_resumed_run_keeps_its_config_and_takes_only_no_progress(tmp_path):
    cfg, run = _resolve(["--epochs", "3"])
    assert run is None and cfg.train.epochs == 3 and cfg.train.progress
    run = Run.create(tmp_path, "toy", {"toy": to_dict(cfg)})
    # the same command again with --resume added: its flags agree with the run's own settings
    resumed, same = _resolve(["--resume", str(run.path), "--no-progress", "--epochs", "3"])
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
    run = Run.create(tmp_path, "toy", {"toy": to_dict(ToyConfig(train=TrainConfig(epochs=3)))})
    with pytest.raises(ConfigError, match=re.escape(named)) as err:
        _resolve(["--resume", str(run.path), *flags])
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


def test_resume_of_another_dune_tasks_run_names_its_task(tmp_path, capsys):
    from experiments import dune

    config = {"dune": {"task": "direction", "train": {}}, "argv": [], "select": "direction"}
    run = Run.create(tmp_path, "dune", config)
    err = _one_line_error(capsys, dune.main, ["channel", "--resume", str(run.path)])
    assert "a direction run, not a channel one" in err
    assert f"experiments.dune direction --resume {run.path}" in err


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


def test_the_driver_runs_a_task_once_and_records_it(tmp_path, capsys):
    from jaxhep.runs import load_registry

    run = cli.main(
        _toy_task(), ["--workdir", str(tmp_path), "--data", "f.csv", "--model", "b", "--devices", "1"]
    )
    config = run.config
    assert config["toy"]["data"]["path"] == "f.csv" and config["toy"]["models"] == ["b"]
    assert config["toy"]["train"]["precision"] == "float32"  # "auto" resolved on the CPU, recorded
    assert config["argv"][:2] == ["--workdir", str(tmp_path)] and "command" in config["provenance"]
    assert (run.path / "report.md").read_text() == "data from f.csv\n"
    entry = load_registry(tmp_path, "toy")[-1]
    assert entry["status"] == "done" and entry["summary"] == {"models": ["b"]}
    out = capsys.readouterr().out
    assert f"[toy] run {run.path}" in out and f"[toy] report: {run.path / 'report.md'}" in out


def test_print_config_lists_every_field_and_runs_nothing(tmp_path, capsys):
    cfg = cli.main(_toy_task(), ["--workdir", str(tmp_path), "--print-config", "--pt-min", "3"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 + 1 + 1 + len(dataclasses.fields(TrainConfig))
    assert "data.path = null" in lines and "data.cut = 3.0" in lines and 'models = ["a", "b"]' in lines
    assert 'train.precision = "auto"' in lines and isinstance(cfg, ToyConfig)
    assert not tmp_path.joinpath("toy").exists()


def test_a_runs_config_json_reproduces_it_and_a_written_file_changes_its_fields(tmp_path):
    first = cli.main(_toy_task(), ["--workdir", str(tmp_path), "--data", "f.csv", "--epochs", "4"])
    again = cli.main(_toy_task(), ["--workdir", str(tmp_path), "--config", str(first.path / "config.json")])
    assert again.path != first.path and again.config["toy"] == first.config["toy"]
    written = tmp_path / "mine.yaml"
    written.write_text("data:\n  cut: 0.5\nmodels: [c]\n")
    cfg, _ = _resolve(["--config", str(written), "--model", "a"])  # flags apply over the file
    assert cfg == ToyConfig(data=ToyData(cut=0.5), models=("a",))
    written_json = tmp_path / "mine.json"
    written_json.write_text('{"train": {"learning_rate": 0.01}}')
    cfg, _ = _resolve(["--quick", "--config", str(written_json)])  # over the quick config
    assert cfg.train == TrainConfig(epochs=2, learning_rate=0.01)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"data": {"colour": 3}}', "unknown config key 'data.colour'"),
        ('{"train": {"epochs": "many"}}', "train.epochs: expected an integer"),
        ("data: [1, 2", "not a readable config file"),
        ('{"pid": {}, "provenance": {}}', "the config of a pid run, not of a toy one"),
        ("[1]", "a mapping of sections is expected"),
    ],
)
def test_a_bad_config_file_is_one_line_naming_it(tmp_path, capsys, text, problem):
    path = tmp_path / ("bad.yaml" if text.startswith("data:") else "bad.json")
    path.write_text(text)
    err = _one_line_error(capsys, lambda a: cli.main(_toy_task(), a), ["--config", str(path)])
    assert str(path) in err and problem in err, err


def test_config_and_resume_together_and_an_unknown_precision_are_refused(tmp_path, capsys):
    run = Run.create(tmp_path, "toy", {"toy": to_dict(ToyConfig())})
    err = _one_line_error(
        capsys, lambda a: cli.main(_toy_task(), a), ["--resume", str(run.path), "--config", "x.json"]
    )
    assert "--config and --resume" in err
    err = _one_line_error(capsys, lambda a: cli.main(_toy_task(), a), ["--set", "train.precision=fp16"])
    assert "train.precision 'fp16': must be one of auto, float32, bfloat16" in err


def test_a_selecting_positional_picks_the_defaults_and_names_the_run(tmp_path, capsys):
    task = dataclasses.replace(
        _toy_task(commands={"registry": lambda args: f"table of {args.workdir}"}),
        config_type=SelectedConfig,
        select=cli.Flag("kind", "kind", "what to train", choices=("left", "right")),
    )
    task = dataclasses.replace(task, default=lambda kind: SelectedConfig(kind=kind, data=ToyData(path=kind)))
    run = cli.main(task, ["right", "--workdir", str(tmp_path)])
    assert run.run_id.endswith("-right") and run.config["toy"]["kind"] == "right"
    assert run.resume_command() == f"python -m experiments.toy right --resume {run.path}"
    assert (run.path / "report.md").read_text() == "data from right\n"
    assert cli.main(task, ["registry", "--workdir", "w"]) == "table of w"
    err = _one_line_error(capsys, lambda a: cli.main(task, a), ["left", "--resume", str(run.path)])
    assert (
        f"a right run, not a left one; continue it with python -m experiments.toy right --resume {run.path}"
        in err
    )


@dataclass(frozen=True)
class SelectedConfig:
    kind: str = "left"
    data: ToyData = field(default_factory=ToyData)
    models: tuple[str, ...] = ("a",)
    reuse: bool = True
    train: TrainConfig = field(default_factory=TrainConfig)


def test_num_processes_without_a_coordinator_is_one_line_before_a_run(tmp_path, capsys):
    err = _one_line_error(
        capsys, lambda a: cli.main(_toy_task(), a), ["--workdir", str(tmp_path), "--num-processes", "2"]
    )
    assert "--num-processes without --coordinator" in err
    assert not (tmp_path / "toy").exists()  # nothing written
