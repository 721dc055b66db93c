"""Flags shared by every experiment, and the wrapper that turns user errors into one line.

python -m experiments.<task> [--cpu | --gpu | --tpu] [--data PATH] [--workdir runs]
    [--epochs N] [--batch-size B] [--resume RUN_DIR] [--set key.path=value ...] [--quick]
    [--coordinator host:port --num-processes N --process-id I]
"""

from __future__ import annotations

import argparse
import math
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from jaxhep import interrupt
from jaxhep.errors import ConfigError, DeviceError, InputError, JaxhepError


def base_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """An argparse parser with the flags every experiment shares."""
    p = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    dev = p.add_mutually_exclusive_group()
    dev.add_argument("--cpu", dest="platform", action="store_const", const="cpu", help="run on the CPU")
    dev.add_argument("--gpu", dest="platform", action="store_const", const="gpu", help="run on the GPU(s)")
    dev.add_argument("--tpu", dest="platform", action="store_const", const="tpu", help="run on the TPU(s)")
    p.add_argument("--devices", type=int, metavar="N", help="use only the first N devices (default: all)")
    p.add_argument("--workdir", default="runs", help="where run folders and the registry live")
    p.add_argument("--data-dir", default="data", help="where simulated default data is cached")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a killed run from its folder")
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
    multi.add_argument("--coordinator", help="host:port of process 0, e.g. localhost:12345")
    multi.add_argument("--num-processes", type=int)
    multi.add_argument("--process-id", type=int)
    return p


def with_train_flags(train, args: argparse.Namespace):
    """A TrainConfig with the shared flags --epochs, --batch-size, --seed, --no-progress applied."""
    import dataclasses

    changes = {f: getattr(args, f) for f in ("epochs", "batch_size", "seed") if getattr(args, f) is not None}
    if args.no_progress:
        changes["progress"] = False
    return dataclasses.replace(train, **changes)


def resolve_config(args: argparse.Namespace, config_cls, key: str, defaults, task_flags=None):
    """(config, run) of an experiment: a --resume run's own config (and that run; of the flags only
    --no-progress applies), or
    `defaults(args.quick)` -> `task_flags(cfg, args)` (the task's own flags) -> the shared
    train flags (`with_train_flags`) -> `--set` overrides, with no run yet.

    `config_cls` has a `train: TrainConfig` field; `key` is where `Run.create` stored it.
    A flag given with --resume must agree with the run's own setting (the same command with --resume
    added is fine); one that would change it is a ConfigError naming it, not silently ignored.
    """
    import dataclasses

    from jaxhep.config import changed_fields, from_dict, override
    from jaxhep.runs import Run

    def with_flags(cfg):
        if task_flags is not None:
            cfg = task_flags(cfg, args)
        cfg = dataclasses.replace(cfg, train=with_train_flags(cfg.train, args))
        return override(cfg, args.overrides)

    if not args.resume:
        cfg = with_flags(defaults(args.quick))
        check_train_config(cfg.train)
        return cfg, None
    run = Run.open(args.resume)
    config = run.config
    if key not in config:
        other = next((k for k in config if k not in ("argv", "data_fingerprint")), "another task")
        raise ConfigError(
            f"--resume {args.resume}: a {other} run, not a {key} one; continue it with {run.resume_command()}"
        )
    try:
        kept = from_dict(config_cls, config[key])
        check_train_config(kept.train)
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
    if train.monitor_mode not in ("max", "min"):
        raise ConfigError(f"train.monitor_mode {train.monitor_mode!r}: must be 'max' or 'min'")


@dataclass
class Runtime:
    """What an experiment runs on: the mesh and a description for the report."""

    mesh: object
    platform: str
    description: str


def setup_runtime(args: argparse.Namespace) -> Runtime:
    """Start multi-host JAX if asked, pick the devices, build the data-parallel mesh."""
    from jaxhep import mesh as mesh_lib

    mesh_lib.add_cpu_xla_flags()
    mesh_lib.initialize_distributed(args.coordinator, args.num_processes, args.process_id)
    devices = mesh_lib.select_devices(args.platform)
    if args.devices is not None:
        if not 1 <= args.devices <= len(devices):
            raise DeviceError(
                f"--devices {args.devices}: this machine has {len(devices)} {devices[0].platform} device(s)"
            )
        devices = devices[: args.devices]
    mesh = mesh_lib.make_mesh(devices)
    return Runtime(mesh, devices[0].platform, mesh_lib.describe(mesh))


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
