"""THE driver of every experiment: parse -> config -> runtime -> run life cycle -> the task.

    python -m experiments.<task> [SELECT] [--cpu | --gpu | --tpu] [--devices N] [--quick]
        [--config FILE] [--print-config] [--epochs N] [--batch-size B] [--seed S]
        [--set key.path=value ...] [--resume RUN_DIR] [--workdir runs] [--data-dir data]
        [the task's own flags] [--cluster auto|none]
        [--coordinator host:port --num-processes N --process-id I]

A task describes itself once (`Task`: its config type, `default` / `quick`, its flags as
aliases of config fields, `load_data` and `train_and_evaluate`); `main(task, argv)` does the
rest the same way for every task, and `run(task)` turns user errors into one line.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jaxhep import interrupt
from jaxhep.config import (
    RUN_RECORD_KEYS,
    changed_fields,
    flat_items,
    from_dict,
    override,
    read_config_file,
    set_value,
    to_dict,
)
from jaxhep.errors import ConfigError, DeviceError, InputError, JaxhepError


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """--help with each flag's default and the examples (the epilog) as written."""


def base_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """An argparse parser with the flags every experiment shares."""
    p = argparse.ArgumentParser(prog=prog, description=description, formatter_class=_HelpFormatter)
    dev = p.add_mutually_exclusive_group()
    dev.add_argument("--cpu", dest="platform", action="store_const", const="cpu", help="run on the CPU")
    dev.add_argument("--gpu", dest="platform", action="store_const", const="gpu", help="run on the GPU(s)")
    dev.add_argument("--tpu", dest="platform", action="store_const", const="tpu", help="run on the TPU(s)")
    p.add_argument("--devices", type=int, metavar="N", help="use only the first N devices (default: all)")
    p.add_argument("--workdir", default="runs", help="where run folders and the registry live")
    p.add_argument("--data-dir", default="data", help="where simulated default data is cached")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a killed run from its folder")
    p.add_argument(
        "--config",
        metavar="FILE",
        help="start from this config: a run's config.json, or a JSON / YAML file of the fields to change",
    )
    p.add_argument(
        "--print-config", action="store_true", help="print every settable field with its value, and exit"
    )
    p.add_argument("--quick", action="store_true", help="a one-minute smoke run on tiny settings")
    p.add_argument("--epochs", type=int, help="maximum number of epochs")
    p.add_argument("--batch-size", type=int, help="global batch size (all devices together)")
    p.add_argument("--seed", type=int, help="random seed of the training")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config field, e.g. --set train.learning_rate=3e-4 (repeatable)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars (e.g. in batch jobs)")
    multi = p.add_argument_group("multi-host (jax.distributed)")
    multi.add_argument(
        "--cluster",
        choices=("auto", "none"),
        default="auto",
        help="auto: start jax.distributed when JAX detects a launcher with several processes (srun, "
        "mpirun, a TPU pod); none: one process whatever the environment says",
    )
    multi.add_argument("--coordinator", help="host:port of process 0, e.g. localhost:12345 (explicit start)")
    multi.add_argument("--num-processes", type=int, help="with --coordinator: the number of processes")
    multi.add_argument("--process-id", type=int, help="with --coordinator: this process's index")
    return p


_UNSET = object()


@dataclass(frozen=True)
class Flag:
    """A task's own flag, an alias of config fields: `Flag("--data", "data.path", "a CSV table")`.

    The value given (with `repeat`, the tuple of the values given, repeats dropped; for a switch
    with `const`, that value) is set on each field of `fields`, as `--set` would set it. A name
    without dashes is a positional argument that selects the default config (`Task.select`)."""

    name: str
    fields: str | tuple[str, ...]
    help: str
    type: Callable[[str], Any] = str
    repeat: bool = False
    choices: tuple | None = None
    const: Any = _UNSET
    metavar: str | None = None

    @property
    def paths(self) -> tuple[str, ...]:
        return (self.fields,) if isinstance(self.fields, str) else tuple(self.fields)

    @property
    def dest(self) -> str:
        return "flag_" + self.name.lstrip("-").replace("-", "_")

    def add_to(self, parser: argparse.ArgumentParser, choices: tuple | None = None) -> None:
        if not self.name.startswith("-"):
            parser.add_argument(self.dest, metavar=self.name, choices=choices or self.choices, help=self.help)
        elif self.const is not _UNSET:
            parser.add_argument(
                self.name, dest=self.dest, action="store_const", const=self.const, help=self.help
            )
        else:
            parser.add_argument(
                self.name,
                dest=self.dest,
                type=self.type,
                action="append" if self.repeat else "store",
                choices=self.choices,
                metavar=self.metavar or self.name.lstrip("-").upper().replace("-", "_"),
                help=self.help + (" (repeatable)" if self.repeat else ""),
            )

    def apply(self, cfg, args: argparse.Namespace):
        """`cfg` with this flag's value (if it was given) set on its fields."""
        value = getattr(args, self.dest, None)
        if value is None:
            return cfg
        if self.repeat:
            value = tuple(dict.fromkeys(value))
        for path in self.paths:
            cfg = set_value(cfg, path, value)
        return cfg


@dataclass(frozen=True)
class Task:
    """What the driver needs of a task; `experiments/<task>.py` builds one from the task's package.

    default(*selected) / quick(*selected) -> config (`selected`: the value of `select`, if any);
    check(cfg) raises ConfigError for a config that cannot run;
    load_data(cfg, runtime) -> data: reads or simulates the input, so a bad input fails (one
        line naming the file) before a run folder exists;
    train_and_evaluate(cfg, data, run, runtime) -> summary: trains, evaluates, writes report.md,
        plots and metrics.json into the run, and returns the summary the registry keeps;
    search(cfg, data, n_trials, runtime) -> result: `--search N`, when the task has one;
    commands: other values of the `select` positional that run instead of a training
        (DUNE's `registry`), each `command(args)`;
    registry_params(cfg) -> dict: what the registry's `params` column shows of a finished run;
    onnx_graphs(run_dir) -> [export.OnnxGraph]: the run's models for `export RUN_DIR`.
    """

    name: str  # runs/<name>/, the key of the config in config.json
    doc: str  # the entry point's docstring: its first line is the description, the rest examples
    config_type: type
    default: Callable[..., Any]
    quick: Callable[..., Any]
    load_data: Callable[[Any, Runtime], Any]
    train_and_evaluate: Callable[[Any, Any, Any, Runtime], dict]
    flags: tuple[Flag, ...] = ()
    select: Flag | None = None
    check: Callable[[Any], None] | None = None
    search: Callable[[Any, Any, int, Runtime], Any] | None = None
    commands: dict[str, Callable[[argparse.Namespace], Any]] = field(default_factory=dict)
    registry_params: Callable[[Any], dict] | None = None
    onnx_graphs: Callable[[Any], list] | None = None

    @classmethod
    def of(cls, name: str, doc: str, config_type: type, config, experiment, export=None, **extra) -> Task:
        """The Task of a package's standard modules: `config.default / quick / FLAGS` (and `check`,
        `SELECT`, `registry_params` where the task has them), `experiment.load_data /
        train_and_evaluate`, `export.onnx_graphs`; `extra`: the other fields (search, commands)."""
        return cls(
            name,
            doc,
            config_type,
            config.default,
            config.quick,
            experiment.load_data,
            experiment.train_and_evaluate,
            flags=config.FLAGS,
            select=getattr(config, "SELECT", None),
            check=getattr(config, "check", None),
            registry_params=getattr(config, "registry_params", None),
            onnx_graphs=getattr(export, "onnx_graphs", None),
            **extra,
        )

    def parser(self) -> argparse.ArgumentParser:
        lines = self.doc.strip().splitlines()
        p = base_parser(f"python -m experiments.{self.name}", lines[0])
        p.epilog = "\n".join(lines[1:]).strip() or None
        if self.select is not None:
            self.select.add_to(p, (*self.select.choices, *self.commands))
        for flag in self.flags:
            flag.add_to(p)
        if self.search is not None:
            p.add_argument(
                "--search", type=int, metavar="N", help="hyper-parameter search: N trials in all (resumes)"
            )
        return p


def main(task: Task, argv: list[str] | None = None):
    """One experiment, the same way for every task; returns the Run (the search's result, the
    config with --print-config, a command's result)."""
    from jaxhep.runs import Run

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["export"] and task.onnx_graphs is not None:
        from jaxhep.export import export_command

        return export_command(task.name, task.onnx_graphs, argv[1:])
    args = task.parser().parse_args(argv)
    selected = getattr(args, task.select.dest) if task.select is not None else None
    if selected in task.commands:
        return task.commands[selected](args)
    cfg, run = resolve_config(task, args)
    if args.print_config:
        print("\n".join(f"{k} = {_shown(v)}" for k, v in flat_items(cfg)))
        return cfg
    runtime = setup_runtime(args)
    # A new run records the resolved value; a run made before the field existed resumes with "auto".
    cfg = resolve_precision(cfg, runtime.platform)
    data = task.load_data(cfg, runtime)
    if getattr(args, "search", None):
        return task.search(cfg, data, args.search, runtime)
    resumed = run is not None
    if run is None:
        config = {task.name: to_dict(cfg), "argv": argv}
        if selected is not None:
            config["select"] = selected
        run = Run.create(args.workdir, task.name, config, name="quick" if args.quick else selected)
    print(f"[{task.name}] run {run.path} | {runtime.description}", flush=True)
    with run.recorded(resumed=resumed):
        summary = task.train_and_evaluate(cfg, data, run, runtime)
    params = {"params": task.registry_params(cfg)} if task.registry_params else {}
    run.set_status("done", summary=summary, **params)
    print(f"[{task.name}] report: {run.path / 'report.md'}", flush=True)
    return run


def run(task: Task, argv: list[str] | None = None) -> None:
    """`main(task, argv)` with user errors as one line (`run_main`): what `__main__` calls."""
    run_main(lambda a: main(task, a), argv)


def _shown(value) -> str:
    """A value as --set takes it: JSON, tuples as lists."""
    import json

    return json.dumps(value, default=str)


def resolve_config(task: Task, args: argparse.Namespace):
    """(config, run) of an experiment: a --resume run's own config (and that run; of the flags only
    --no-progress applies), or `default` / `quick` -> `--config FILE` -> the task's flags -> the
    shared train flags -> `--set`, with no run yet.

    A flag given with --resume must agree with the run's own setting (the same command with --resume
    added is fine); one that would change it is a ConfigError naming it, not silently ignored.
    """
    from jaxhep.runs import Run

    flags = ((task.select,) if task.select is not None else ()) + task.flags

    def with_flags(cfg):
        for flag in flags:
            cfg = flag.apply(cfg, args)
        cfg = dataclasses.replace(cfg, train=with_train_flags(cfg.train, args))
        return override(cfg, args.overrides)

    def checked(cfg):
        check_train_config(cfg.train)
        if task.check is not None:
            task.check(cfg)
        return cfg

    if not args.resume:
        selected = () if task.select is None else (getattr(args, task.select.dest),)
        base = (task.quick if args.quick else task.default)(*selected)
        if args.config:
            base = read_config_file(args.config, task.config_type, task.name, base)
        return checked(with_flags(base)), None
    if args.config:
        raise ConfigError("--config and --resume: a resumed run keeps its own config; give one of them")
    run = Run.open(args.resume)
    config = run.config
    if task.name not in config:
        other = next(
            (k for k in config if k not in RUN_RECORD_KEYS),
            "another task",
        )
        raise ConfigError(
            f"--resume {args.resume}: a {other} run, not a {task.name} one; continue it with "
            f"{run.resume_command()}"
        )
    selected, recorded = getattr(args, task.select.dest, None) if task.select else None, config.get("select")
    if selected is not None and recorded is not None and selected != recorded:  # DUNE: direction vs channel
        raise ConfigError(
            f"--resume {args.resume}: a {recorded} run, not a {selected} one; continue it with "
            f"{run.resume_command()}"
        )
    try:
        kept = checked(from_dict(task.config_type, config[task.name]))
    except (ConfigError, TypeError, AttributeError) as err:  # a wrong type or shape, or out of range
        raise InputError(run.path / "config.json", f"{err}; the run cannot be resumed") from None
    cfg = with_flags(kept)
    changed = changed_fields(kept, cfg)
    changed.pop("train.progress", None)  # --no-progress: display, not a setting of the run
    if changed:
        named = "; ".join(f"{k}={new!r} (the run has {old!r})" for k, (old, new) in changed.items())
        raise ConfigError(
            f"--resume {args.resume} continues that run with its own settings; these flags would "
            f"change them: {named}. Drop them, or start a new run without --resume."
        )
    return cfg, run


def with_train_flags(train, args: argparse.Namespace):
    """A TrainConfig with the shared flags --epochs, --batch-size, --seed, --no-progress applied."""
    changes = {f: getattr(args, f) for f in ("epochs", "batch_size", "seed") if getattr(args, f) is not None}
    if args.no_progress:
        changes["progress"] = False
    return dataclasses.replace(train, **changes)


PRECISIONS = ("auto", "float32", "bfloat16")


def resolve_precision(cfg, platform: str):
    """`cfg` with train.precision "auto" made what it means on `platform`: float32 on the CPU
    (bfloat16 is emulated there, slower), bfloat16 on GPU / TPU (twice the matrix throughput;
    parameters, losses and metrics stay float32). Done once, before config.json is written."""
    if cfg.train.precision != "auto":
        return cfg
    precision = "float32" if platform == "cpu" else "bfloat16"
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, precision=precision))


# The shared flags' names, for messages about the TrainConfig fields they set.
_FLAG_OF = {"epochs": "--epochs", "batch_size": "--batch-size", "seed": "--seed"}


def check_train_config(train) -> None:
    """A ConfigError naming the flag (or `train.<field>`) of the first TrainConfig value that
    cannot train: a count below one, a learning rate that is not positive, an unknown name."""

    def name(f: str) -> str:
        return _FLAG_OF.get(f, f"train.{f}")

    for f in (
        "epochs",
        "batch_size",
        "steps_per_call",
        "grad_accum_steps",
        "keep_checkpoints",
        "eval_batch_size",
    ):
        if getattr(train, f) < 1:
            raise ConfigError(f"{name(f)} {getattr(train, f)}: must be at least 1")
    for f in ("patience", "warmup_steps", "weight_decay"):
        if getattr(train, f) < 0:
            raise ConfigError(f"{name(f)} {getattr(train, f)}: must not be negative")
    if not train.learning_rate > 0 or not math.isfinite(train.learning_rate):
        raise ConfigError(f"train.learning_rate {train.learning_rate}: must be a positive number")
    if train.grad_clip_norm is not None and not train.grad_clip_norm > 0:
        raise ConfigError(f"train.grad_clip_norm {train.grad_clip_norm}: must be positive, or null for none")
    if train.precision not in PRECISIONS:
        raise ConfigError(f"train.precision {train.precision!r}: must be one of {', '.join(PRECISIONS)}")
    if train.monitor_mode not in ("max", "min"):
        raise ConfigError(f"train.monitor_mode {train.monitor_mode!r}: must be 'max' or 'min'")


@dataclass
class Runtime:
    """What an experiment runs on: the mesh, a description for the report, and where runs and
    cached simulated data live."""

    mesh: object
    platform: str
    description: str
    workdir: str = "runs"
    data_dir: str = "data"


def setup_runtime(args: argparse.Namespace) -> Runtime:
    """Start multi-host JAX if asked, pick the devices, build the data-parallel mesh."""
    from jaxhep import mesh as mesh_lib

    mesh_lib.add_cpu_xla_flags()
    mesh_lib.initialize_distributed(args.coordinator, args.num_processes, args.process_id, args.cluster)
    devices = mesh_lib.select_devices(args.platform)
    if args.devices is not None:
        if not 1 <= args.devices <= len(devices):
            raise DeviceError(
                f"--devices {args.devices}: this machine has {len(devices)} {devices[0].platform} device(s)"
            )
        devices = devices[: args.devices]
    mesh = mesh_lib.make_mesh(devices)
    return Runtime(mesh, devices[0].platform, mesh_lib.describe(mesh), args.workdir, args.data_dir)


def run_main(main: Callable[[list[str] | None], object], argv: list[str] | None = None) -> None:
    """Call `main(argv)`; a JaxhepError becomes one line on stderr and exit status 2.

    Ctrl-C and SIGTERM stop the training at a safe point (`jaxhep.interrupt`): one line says
    what was saved and the command that continues the run; the exit status is the signal's."""
    interrupt.install()
    try:
        main(argv)
    except JaxhepError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as err:
        print(interrupted_message(err), file=sys.stderr)
        sys.exit(interrupt.EXIT_STATUS.get(getattr(err, "signal", "SIGINT"), 130))
    except Exception:  # a bug, not a user error: keep the traceback
        traceback.print_exc()
        sys.exit(1)


def interrupted_message(err: KeyboardInterrupt) -> str:
    """One line: which signal, what was kept, and the `--resume` command (if a run was started)."""
    sig = getattr(err, "signal", "SIGINT")
    saved = getattr(err, "saved", None)
    resume = getattr(err, "resume_command", None)
    if resume is None:
        return f"interrupted ({sig}) before a run was started; nothing was written"
    kept = f"stopped at a safe point, saved {saved}" if saved else "finished work is kept in the run folder"
    return f"interrupted ({sig}): {kept}; continue with: {resume}"
