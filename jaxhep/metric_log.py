"""Metric logs a physicist can open: TensorBoard event files and one console line per epoch.

Both are `jaxhep.train.fit` callbacks, added by `fit` itself (`default_callbacks`):

    <run>/tensorboard/<training>/events.out.tfevents.*   one event per epoch, its scalars
    stdout: [pid fse/full] epoch 3/10  loss 0.3124  val_accuracy 0.9012  val_loss 0.2803  12.3 s

`<training>` is the training's log_prefix values joined by "/" (PID: `fse/full`), so each model
of a run is a TensorBoard "run" of its own and one chart overlays them all (`val_accuracy` of nine
PID models as nine lines). The scalars are the numeric fields of the metrics.jsonl record, under
the same names, at global step = the record's `step`.

metrics.jsonl stays the record of the training: when a training starts (or resumes, after
`fit` dropped the records of the epochs it redoes), its event folder is rewritten from the
records that metrics.jsonl keeps, then one event is appended and flushed (fsync) per epoch. So
the event files hold each epoch once, with the values of metrics.jsonl, whatever a kill cut.

The writer is tensorboardX's synchronous `EventsWriter`, not its `SummaryWriter`: the latter
hands events to a background thread through a queue, and its `flush` does not wait for that
queue, so a job killed after an epoch could lose the epoch's events.
"""

from __future__ import annotations

import datetime as _dt
import re
import sys
import time
from pathlib import Path

from tensorboardX.event_file_writer import EventsWriter
from tensorboardX.proto.event_pb2 import Event
from tensorboardX.proto.summary_pb2 import Summary
from tqdm.auto import tqdm

from jaxhep.runs import Run, is_primary

EVENT_DIR = "tensorboard"  # inside the run folder
EVENT_FILE_GLOB = "events.out.tfevents.*"


def training_tag(log_prefix: dict | None, desc: str = "train") -> str:
    """The name of one training inside a run: its log_prefix values joined by "/" ("fse/full"),
    or `desc` without a log_prefix."""
    parts = [str(v) for v in (log_prefix or {}).values()]
    return "/".join(parts) if parts else desc


def event_dir(run: Run, log_prefix: dict | None, desc: str = "train") -> Path:
    """The folder of one training's event files: <run>/tensorboard/<tag>, each log_prefix value a
    safe folder name (characters outside [A-Za-z0-9._+-], "/" too, become "_")."""
    parts = [str(v) for v in (log_prefix or {}).values()] or [desc]
    return run.path.joinpath(EVENT_DIR, *map(_safe_part, parts))


def _safe_part(part: str) -> str:
    part = re.sub(r"[^A-Za-z0-9._+-]", "_", part)
    return "_" if part in ("", ".", "..") else part


def scalars(record: dict, log_prefix: dict | None = None) -> dict[str, float]:
    """The numeric fields of a metrics record, as TensorBoard scalars: all but the global step
    (`step`, the x axis), the log_prefix labels and non-numbers (text, booleans)."""
    skip = {"step", *(log_prefix or {})}
    return {
        key: float(value)
        for key, value in record.items()
        if key not in skip and isinstance(value, (int, float)) and not isinstance(value, bool)
    }


class TensorBoardLog:
    """A `fit` callback writing each epoch's record as scalars to the training's event folder.

    Created when the training (re)starts: the folder's event files are replaced by one holding
    the records metrics.jsonl keeps for this training (none on a fresh start). Only the primary
    process writes. `close()` at the end of the training."""

    def __init__(self, run: Run, log_prefix: dict | None = None, desc: str = "train"):
        self.prefix = dict(log_prefix or {})
        self.directory = event_dir(run, log_prefix, desc)
        self._writer = None
        if not is_primary():
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        for old in self.directory.glob(EVENT_FILE_GLOB):  # only this folder: a nested tag keeps its own
            old.unlink()
        self._writer = EventsWriter(str(self.directory / "events"))
        for record in run.training_records(self.prefix):
            self._write(record, _wall_time(record))
        self._writer.flush()

    def __call__(self, record: dict, trainer=None, checkpoints=None) -> None:
        if self._writer is None:
            return
        self._write(record, time.time())
        self._writer.flush()  # on disk before the next epoch: a killed job keeps its curves

    def _write(self, record: dict, wall_time: float) -> None:
        values = [Summary.Value(tag=k, simple_value=v) for k, v in scalars(record, self.prefix).items()]
        event = Event(wall_time=wall_time, step=int(record["step"]), summary=Summary(value=values))
        self._writer.write_event(event)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _wall_time(record: dict) -> float:
    """When a metrics.jsonl record was written (its `time`, local ISO seconds); now if it has none."""
    try:
        return _dt.datetime.fromisoformat(record["time"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return time.time()


def console_line(label: str, record: dict, epochs: int, seconds: float) -> str:
    """One short line for an epoch: the training loss, every validation metric (`val_*`), the
    epoch's wall time. E.g. "[pid fse/full] epoch 3/10  loss 0.3124  val_accuracy 0.9012  12.3 s"."""
    fields = [f"[{label}] epoch {record['epoch']}/{epochs}"]
    if "loss" in record:
        fields.append(f"loss {_short(record['loss'])}")
    fields += [f"{k} {_short(v)}" for k, v in record.items() if k.startswith("val_")]
    fields.append(f"{seconds:.1f} s")
    return "  ".join(fields)


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


class ConsoleLine:
    """A `fit` callback printing `console_line` after every epoch on the primary process, with or
    without progress bars (through tqdm.write when they are on, so a bar is not cut in two). The
    time is the wall time since the previous epoch's line (the first: since the training started,
    compilation included), validation and checkpointing included."""

    def __init__(self, label: str):
        self.label = label
        self._last = time.perf_counter()

    def __call__(self, record: dict, trainer, checkpoints=None) -> None:
        now = time.perf_counter()
        seconds, self._last = now - self._last, now
        if not is_primary():
            return
        line = console_line(self.label, record, trainer.cfg.epochs, seconds)
        if trainer.cfg.progress:
            tqdm.write(line, file=sys.stdout)
            sys.stdout.flush()
        else:
            print(line, flush=True)

    def close(self) -> None:
        pass


def default_callbacks(run: Run | None, desc: str, log_prefix: dict | None) -> tuple:
    """The callbacks every `fit` runs before the task's own: the console line, and with a run
    its TensorBoard log. Each has `close()`, which `fit` calls when the training ends."""
    tag = training_tag(log_prefix, desc)
    console = ConsoleLine(f"{run.task} {tag}" if run is not None else tag)
    return (console,) if run is None else (TensorBoardLog(run, log_prefix, desc), console)
