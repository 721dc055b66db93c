"""Fault injection for the resume tests, kept out of the library: a `fit` callback that SIGKILLs
the process right after an epoch's checkpoint is written, as a crash or the OOM killer would.

    python -m tests.faults --kill-after-epoch 2 experiments.pid --quick ...

runs `python -m experiments.pid --quick ...` with every training's `fit` given that callback.
"""

from __future__ import annotations

import argparse
import os
import runpy
import signal
import sys


def kill_after_epoch(n: int):
    """A `jaxhep.train.fit` callback: SIGKILL once epoch `n`'s checkpoint is on disk."""

    def callback(record, trainer, checkpoints):
        if record["epoch"] == n:
            checkpoints.wait()
            os.kill(os.getpid(), signal.SIGKILL)

    return callback


def with_callback(callback) -> None:
    """Make every later call of `jaxhep.train.fit` (which `fit_model` calls) take `callback` too."""
    from jaxhep import train

    original = train.fit

    def fit(*args, callbacks=(), **kwargs):
        return original(*args, callbacks=(*callbacks, callback), **kwargs)

    train.fit = fit


if __name__ == "__main__":
    # Our two arguments, then the module and its own arguments untouched.
    p = argparse.ArgumentParser(prog="python -m tests.faults")
    p.add_argument("--kill-after-epoch", type=int, required=True)
    p.add_argument("module")
    args = p.parse_args(sys.argv[1:4])
    with_callback(kill_after_epoch(args.kill_after_epoch))
    sys.argv = [args.module, *sys.argv[4:]]
    runpy.run_module(args.module, run_name="__main__", alter_sys=True)
