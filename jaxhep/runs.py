"""Run directories and the registry of every run.

    <workdir>/<task>/<run-id>/config.json     resolved configuration
                              metrics.jsonl   one JSON record per epoch (and per event)
                              tensorboard/    the same per-epoch scalars as TensorBoard events
                              plots/*.png     figures
                              report.md       the human summary
                              ...             task outputs, checkpoints
    <workdir>/registry.jsonl                  append-only: one line per status change

The registry is what the DUNE seed kept by hand: every run and trial with its config,
hyper-parameters, result, status and time, written automatically. Appends of single
short lines are atomic on POSIX, so concurrent runs can share it. Only process 0 of a
multi-host job writes.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import jax

REGISTRY = "registry.jsonl"


def is_primary() -> bool:
    """True on the process that writes files (process 0)."""
    return jax.process_index() == 0


def config_hash(obj: Any) -> str:
    """Short stable hash of a JSON-able object (configs, data fingerprints)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _now() -> str:
    return _dt.datetime.now().isoformat(timespec="seconds")


class Run:
    """One run's folder, with helpers to write its config, metrics, plots and report."""

    def __init__(self, workdir: str | Path, task: str, run_id: str):
        self.workdir, self.task, self.run_id = Path(workdir), task, run_id
        self.path = self.workdir / task / run_id
        self._t0 = time.time()

    @classmethod
    def create(cls, workdir: str | Path, task: str, config: dict, name: str | None = None) -> Run:
        """Make a new run folder `<workdir>/<task>/<timestamp>-<hash>[-name]` and register it."""
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        run_id = f"{stamp}-{config_hash([config, time.time_ns()])[:6]}" + (f"-{name}" if name else "")
        run = cls(workdir, task, run_id)
        if is_primary():
            run.path.mkdir(parents=True, exist_ok=False)
            run.write_json("config.json", {**config, "provenance": provenance()})
        run.set_status("running", config=config, **_owner())
        return run

    @classmethod
    def open(cls, path: str | Path) -> Run:
        """An existing run folder (for --resume or for loading a trained model)."""
        path = Path(path)
        if not (path / "config.json").is_file():
            from jaxhep.errors import InputError

            raise InputError(path, "not a run directory (no config.json)")
        return cls(path.parent.parent, path.parent.name, path.name)

    @property
    def config(self) -> dict:
        """The run's config.json; a damaged one is an InputError naming it."""
        from jaxhep.errors import InputError

        path = self.path / "config.json"
        try:
            config = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            problem = "empty" if isinstance(err, json.JSONDecodeError) and not err.doc.strip() else str(err)
            raise InputError(
                path, f"not a readable run config ({problem}); the run cannot be resumed"
            ) from None
        if not isinstance(config, dict):
            raise InputError(path, "not a run config (a JSON object is expected)")
        return config

    def resume_command(self) -> str:
        """The command that continues this run: its experiment's, with the positional that selected
        its config (`select` in config.json: DUNE's `direction`, ...)."""
        select = self.config.get("select")
        return " ".join(
            [
                "python -m",
                f"experiments.{self.task}",
                *([select] if select else []),
                "--resume",
                str(self.path),
            ]
        )

    @contextlib.contextmanager
    def recorded(self, resumed: bool = False):
        """The run's registry status follows the block: "running" (again, when `resumed`),
        "interrupted" on Ctrl-C / SIGTERM (the exception then carries the `--resume` command),
        "failed" with the error on any other exception. The caller records "done" after it."""
        if resumed:
            self.set_status("running", resumed=True, **_owner())
        try:
            yield self
        except KeyboardInterrupt as err:
            self.set_status("interrupted", signal=getattr(err, "signal", "SIGINT"))
            err.resume_command = self.resume_command()
            raise
        except BaseException as err:
            self.set_status("failed", error=(str(err) or type(err).__name__)[:500])
            raise

    def drop_epochs_after(self, epoch: int, prefix: dict, stream: str = "metrics.jsonl") -> None:
        """Remove the per-epoch records past `epoch` of the training that `prefix` names (its
        log_prefix: model, range, member...), which a resumed training is about to redo: after a
        kill between a record and its checkpoint, or a fall back to an older checkpoint, they
        would otherwise appear twice. Written atomically; other trainings' records stay."""
        path = self.path / stream
        if not is_primary() or not path.exists():
            return
        lines = path.read_text().splitlines()
        kept = [line for line in lines if not _redone(line, epoch, prefix)]
        if len(kept) != len(lines):
            _atomic_write(path, "".join(line + "\n" for line in kept))

    def training_records(self, prefix: dict, stream: str = "metrics.jsonl") -> list[dict]:
        """The per-epoch records (those with an `epoch` and a `step`) of the training that `prefix`
        (its log_prefix) names, in order; a line cut by a kill is skipped."""
        return [r for r in self.read_log(stream) if _of_training(r, prefix) and "epoch" in r and "step" in r]

    def sub(self, *parts: str) -> Path:
        """A folder inside the run, created on first use."""
        p = self.path.joinpath(*parts)
        if is_primary():
            p.mkdir(parents=True, exist_ok=True)
        return p

    def plot_path(self, name: str) -> Path:
        return self.sub("plots") / name

    def write_json(self, name: str, obj: Any) -> Path:
        """Write `obj` as JSON atomically (temp file + rename)."""
        path = self.path / name
        if is_primary():
            _atomic_write(path, json.dumps(obj, indent=2, default=_json_default))
        return path

    def write_text(self, name: str, text: str) -> Path:
        path = self.path / name
        if is_primary():
            _atomic_write(path, text)
        return path

    def log(self, record: dict, stream: str = "metrics.jsonl") -> None:
        """Append one record (a JSON line) to the run's metrics log."""
        if is_primary():
            with open(self.path / stream, "a") as f:
                f.write(json.dumps({"time": _now(), **record}, default=_json_default) + "\n")

    def read_log(self, stream: str = "metrics.jsonl") -> list[dict]:
        """The records of `stream` in order; a line cut by a kill mid-append is skipped."""
        path = self.path / stream
        if not path.exists():
            return []
        records = []
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:  # also a blank line
                continue
        return records

    def set_status(self, status: str, **fields) -> None:
        """Record a status change ("running", "done", "failed", "skipped", ...) in the registry."""
        if not is_primary():
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        entry = {
            "run_id": self.run_id,
            "task": self.task,
            "path": str(self.path),
            "status": status,
            "time": _now(),
            "elapsed_s": round(time.time() - self._t0, 1),
            **fields,
        }
        line = (json.dumps(entry, default=_json_default) + "\n").encode()
        with open(self.workdir / REGISTRY, "ab+") as f:
            # After a crash mid-append the file ends in a cut line: start on a fresh line, or
            # this record would be glued to it and lost with it.
            if f.seek(0, os.SEEK_END) > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    line = b"\n" + line
            f.write(line)


# The packages whose versions decide a run's numbers, recorded in every config.json.
_PACKAGES = (
    "jax",
    "jaxlib",
    "flax",
    "optax",
    "orbax-checkpoint",
    "grain",
    "numpy",
    "jraph",
    "h5py",
    "pyarrow",
)


def provenance() -> dict:
    """How a run was made: the command line, Python and package versions, the git revision of
    the jaxhep checkout (None outside one; `dirty` when it has uncommitted changes)."""
    import platform
    import shlex
    import subprocess
    import sys
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    root = Path(__file__).resolve().parents[1]
    git = None
    if (root / ".git").exists():
        try:
            rev = subprocess.run(
                ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
            )
            dirty = subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=10,
            )
            if rev.returncode == 0:
                git = {"revision": rev.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
        except (OSError, subprocess.SubprocessError):  # no git on this machine: the run goes on
            git = None
    return {
        "command": shlex.join(sys.orig_argv),  # as typed: python -m experiments.pid --quick
        "python": platform.python_version(),
        "versions": {name: installed(name) for name in _PACKAGES},
        "git": git,
    }


def _redone(line: str, epoch: int, prefix: dict) -> bool:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return False
    return _of_training(record, prefix) and record.get("epoch", 0) > epoch


def _of_training(record, prefix: dict) -> bool:
    """Whether a metrics record belongs to the training that `prefix` (its log_prefix) names."""
    return isinstance(record, dict) and all(record.get(k) == v for k, v in prefix.items())


def _owner() -> dict:
    """Who runs this: host and process id, so a listing can tell a dead run from a live one."""
    import socket

    return {"host": socket.gethostname(), "pid": os.getpid()}


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _stale(entry: dict) -> bool:
    """A "running" run whose process on this host is gone (killed, or the machine rebooted)."""
    import socket

    if entry.get("status") != "running" or "pid" not in entry:
        return False
    return entry.get("host") == socket.gethostname() and not pid_alive(int(entry["pid"]))


def load_registry(workdir: str | Path, task: str | None = None) -> list[dict]:
    """Every run of the registry, its records merged (later fields win), oldest first.

    A run still "running" whose process on this host is gone is listed as "stale": killed
    without a word (SIGKILL, out of memory, a crash of the machine); `--resume` continues it."""
    path = Path(workdir) / REGISTRY
    runs: dict[str, dict] = {}
    if not path.exists():
        return []
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:  # a line cut by a crash: skip it, keep the rest
            continue
        if task and entry.get("task") != task:
            continue
        key = f"{entry.get('task')}/{entry.get('run_id')}"
        runs.setdefault(key, {}).update(entry)
    for entry in runs.values():
        if _stale(entry):
            entry["status"] = "stale"
    return list(runs.values())


def find_artifact(workdir: str | Path, key: str) -> Path | None:
    """The newest finished artifact (e.g. a trained model) registered under `key`, if its folder exists."""
    found = None
    for run in load_registry(workdir):
        for art in run.get("artifacts", []):
            if art.get("key") == key and Path(art["path"]).exists():
                found = Path(art["path"])
    return found


def format_registry(
    rows: list[dict], columns: tuple[str, ...] = ("task", "run_id", "status", "time", "elapsed_s", "summary")
) -> str:
    """The registry as a markdown table."""

    def cell(row, col):
        value = row.get(col, "")
        if isinstance(value, float):
            return f"{value:.4g}"
        if isinstance(value, dict):
            return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in value.items())
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r, c) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _json_default(obj):
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
