"""Checkpoints: the only module that touches orbax.

A checkpoint holds three items: the train state (model variables + optimiser state, as
a pytree of arrays), the loop's bookkeeping (epoch, step, early-stopping counters,
history) and the input iterator's state (JSON). Two managers live side by side under a
run's `ckpt/`: `latest/` keeps the newest N, `best/` keeps the one with the best
validation metric. orbax writes into a temporary folder and renames it when complete,
so a killed process never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

STATE, LOOP, DATA = "state", "loop", "data"


class Checkpoints:
    """`latest/` (newest `keep`) and `best/` (one) checkpoint managers of one training."""

    def __init__(self, directory: str | Path, keep: int = 3, asynchronous: bool | None = None):
        self.directory = Path(directory).absolute()
        # Asynchronous saves write in a background thread while training goes on; orbax
        # still commits each checkpoint by an atomic rename once it is complete. With
        # several processes the commit needs a cross-process barrier that the background
        # thread timed out on (tests/test_distributed.py), so multi-host saves are synchronous.
        if asynchronous is None:
            asynchronous = jax.process_count() == 1
        opts = dict(create=True, enable_async_checkpointing=asynchronous, cleanup_tmp_directories=True)
        self.latest = ocp.CheckpointManager(
            self.directory / "latest", options=ocp.CheckpointManagerOptions(max_to_keep=keep, **opts)
        )
        self.best = ocp.CheckpointManager(
            self.directory / "best", options=ocp.CheckpointManagerOptions(max_to_keep=1, **opts)
        )

    @staticmethod
    def _args(state, loop: dict, data: dict | None):
        items = {STATE: ocp.args.StandardSave(state), LOOP: ocp.args.JsonSave(loop)}
        items[DATA] = ocp.args.JsonSave(data or {})
        return ocp.args.Composite(**items)

    def save(self, step: int, state, loop: dict, data: dict | None, is_best: bool) -> None:
        """Save as the newest checkpoint, and also as the best one when `is_best`."""
        self.latest.save(step, args=self._args(state, loop, data), force=True)
        if is_best:
            self.best.save(step, args=self._args(state, loop, data), force=True)

    def save_best(self, step: int, state, loop: dict, data: dict | None) -> None:
        """Save as the best checkpoint only (one whose save a kill cut short, again)."""
        self.best.save(step, args=self._args(state, loop, data), force=True)

    def wait(self) -> None:
        """Block until every save in flight is committed."""
        self.latest.wait_until_finished()
        self.best.wait_until_finished()

    def latest_step(self) -> int | None:
        return self.latest.latest_step()

    def restore_newest_good(self, abstract_state) -> tuple[Any, dict, dict, list[str]]:
        """(state, loop, data, skipped) from the newest `latest/` checkpoint that restores.

        A damaged one (a truncated or overwritten file, a missing item: anything orbax cannot
        read) is moved aside into `set_aside/` (kept, not deleted) with a line in `skipped` saying
        which and why, and the next older one is tried. `best/` checkpoints newer than the one
        restored are moved aside too: training redoes those steps and saves them again. No
        checkpoint that restores: an InputError naming the folder and each one's problem."""
        from jaxhep.errors import InputError

        self.wait()
        skipped = []
        for step in sorted(self.latest.all_steps(), reverse=True):
            try:
                state, loop, data = self.restore(abstract_state, "latest", step)
            except Exception as err:  # orbax / TensorStore / JSON errors of a damaged checkpoint
                skipped.append(f"step {step} ({_first_line(err)})")
                self._set_aside("latest", step)
                continue
            self.set_aside_best_after(step)
            return state, loop, data, skipped
        raise InputError(
            self.directory / "latest",
            f"no checkpoint here can be restored (each moved aside into {self.directory / 'set_aside'}); "
            "start the run again without --resume. " + "; ".join(skipped),
        )

    def restore_best(self, abstract_state) -> tuple[Any, dict, dict]:
        """(state, loop, data) of the best checkpoint; if it is damaged, the same step from
        `latest/` (which keeps the newest few); else an InputError naming it."""
        from jaxhep.errors import InputError

        step = self.best.latest_step()
        try:
            return self.restore(abstract_state, "best", step)
        except Exception as err:  # orbax / TensorStore / JSON errors of a damaged checkpoint
            if step in self.latest.all_steps():
                return self.restore(abstract_state, "latest", step)
            raise InputError(
                self.directory / "best" / str(step),
                f"the best checkpoint does not restore ({_first_line(err)}) and latest/ no longer holds "
                "its step; train again without --resume",
            ) from None

    def set_aside_best_after(self, step: int) -> None:
        """Move the `best/` checkpoints newer than `step` into `set_aside/`: a training that goes
        on from `step` redoes them and saves them again."""
        for newer in [s for s in self.best.all_steps() if s > step]:
            self._set_aside("best", newer)

    def _set_aside(self, which: str, step: int) -> None:
        """Move checkpoint `step` of `which` out of its manager's sight, into `set_aside/`."""
        import time

        source = self.directory / which / str(step)
        if source.exists():
            target = self.directory / "set_aside" / f"{which}-{step}-{time.strftime('%Y%m%d-%H%M%S')}"
            target.parent.mkdir(parents=True, exist_ok=True)
            source.rename(target)
        (self.latest if which == "latest" else self.best).reload()

    def restore(
        self, abstract_state, which: str = "latest", step: int | None = None
    ) -> tuple[Any, dict, dict]:
        """Restore (state, loop, data) from `which` ("latest" or "best").

        `abstract_state` is a pytree of jax.ShapeDtypeStruct (with shardings) saying how
        to lay the arrays out, e.g. `abstract_like(current_state)`.
        """
        self.wait()
        manager = self.latest if which == "latest" else self.best
        step = manager.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no {which} checkpoint in {self.directory}")
        restored = manager.restore(
            step,
            args=ocp.args.Composite(
                **{
                    STATE: ocp.args.StandardRestore(abstract_state),
                    LOOP: ocp.args.JsonRestore(),
                    DATA: ocp.args.JsonRestore(),
                }
            ),
        )
        return restored[STATE], restored[LOOP], restored[DATA]

    def close(self) -> None:
        self.wait()
        self.latest.close()
        self.best.close()


def _first_line(err: BaseException, limit: int = 160) -> str:
    """`Type: first line of the message`, cut to `limit` characters (orbax's run to pages)."""
    text = (str(err).strip().splitlines() or [""])[0]
    text = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def abstract_like(tree):
    """ShapeDtypeStructs (keeping each array's sharding) describing `tree` for restore."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree)


def save_weights(path: str | Path, model_state) -> None:
    """Export a model's variables alone (no optimiser) for inference, atomically."""
    path = Path(path).absolute()
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(path, model_state, force=True)


def load_weights(path: str | Path, abstract_state):
    """Read variables written by `save_weights` into the layout of `abstract_state`."""
    path = Path(path).absolute()
    if not path.exists():
        from jaxhep.errors import InputError

        raise InputError(path, "no saved weights here (was the training finished?)")
    with ocp.StandardCheckpointer() as ckptr:
        return ckptr.restore(path, abstract_state)


def save_model(directory: str | Path, model, meta: dict) -> Path:
    """A finished model folder: `weights/` (its variables) + `model.json` (meta + weights path).

    model.json is written last, by a rename, so its presence means the folder is complete
    (what a resumed run checks before training again). Only the primary process writes.
    """

    from flax import nnx

    directory = Path(directory)
    save_weights(directory / "weights", nnx.state(model))
    return write_model_json(directory, meta, directory / "weights")


def write_model_json(directory: str | Path, meta: dict, weights: str | Path) -> Path:
    """`directory/model.json` = meta + the weights' path, written by a rename (primary only).

    `weights` may lie in another folder (a finished model reused by a later run). The path is kept
    relative to `directory`, so a run folder (or a workdir of runs) still loads after a move or
    a copy to another machine."""
    import json
    import os

    from jaxhep.runs import is_primary

    directory = Path(directory)
    if is_primary():
        directory.mkdir(parents=True, exist_ok=True)
        record = {**meta, "weights": os.path.relpath(Path(weights).absolute(), directory.absolute())}
        tmp = directory / ".model.json.tmp"
        tmp.write_text(json.dumps(record, indent=2, default=float))
        tmp.replace(directory / "model.json")
    return directory / "model.json"


def load_model(directory: str | Path, build) -> tuple[Any, dict]:
    """(model in eval mode, meta) of a folder from `save_model`; build(meta) -> an initialised model."""
    import json

    from flax import nnx

    meta = json.loads((Path(directory) / "model.json").read_text())
    model = build(meta)
    model.eval()
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), nnx.state(model))
    # relative to the folder; an absolute path (model.json before 2026-11-27) is taken as it is
    nnx.update(model, load_weights(Path(directory) / meta["weights"], abstract))
    return model, meta
