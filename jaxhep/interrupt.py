"""Ctrl-C and SIGTERM: stop training at a safe point, not wherever the signal lands.

SLURM, Kubernetes and `kill` send SIGTERM some seconds before they kill a job; Ctrl-C sends
SIGINT. `install()` (called by `jaxhep.cli.run_main`) handles both the same way:

- inside `safe_points()` (the training loop), the first signal only sets a flag; the loop sees
  it after the compiled call in flight (`requested()`), saves a checkpoint there and raises
  `Interrupted`, so `--resume` continues from that very step. A second signal raises at once.
- anywhere else (reading data, evaluation, plots) the signal raises `Interrupted` at once:
  every file jaxhep writes is written whole or not at all (temp file + rename, orbax's atomic
  commits), so there is nothing to tidy up, and a resumed run redoes only that part.

`Interrupted` is a KeyboardInterrupt, so `except Exception` never swallows it; the run's
`Run.recorded()` block marks the run "interrupted" and `run_main` prints the `--resume` command.
"""

from __future__ import annotations

import contextlib
import signal
import threading

# Exit statuses of a process ended by the signal (128 + its number), as shells report them.
EXIT_STATUS = {"SIGINT": 130, "SIGTERM": 143}

_requested: str | None = None
_depth = 0  # how many safe_points() blocks the main thread is in


class Interrupted(KeyboardInterrupt):
    """The user or the batch system asked the process to stop (`signal`: "SIGINT" / "SIGTERM").

    `saved` says what the training saved before stopping (e.g. "a checkpoint at epoch 3, step
    120"), where it stopped at a safe point; `resume_command` is set by the run's record."""

    def __init__(self, signal_name: str = "SIGINT", saved: str | None = None):
        super().__init__(signal_name)
        self.signal, self.saved = signal_name, saved
        self.resume_command: str | None = None


def _handler(signum, frame):
    global _requested
    name = signal.Signals(signum).name
    if _depth > 0 and _requested is None:
        _requested = name  # the training loop stops at its next safe point
        return
    raise Interrupted(name)


def install() -> None:
    """Handle SIGINT and SIGTERM as described above (main thread only; a no-op elsewhere)."""
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, _handler)


@contextlib.contextmanager
def safe_points():
    """A block whose code calls `requested()` at safe points: a signal there is deferred to one."""
    global _depth
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1


def requested() -> str | None:
    """The name of the signal that asked to stop ("SIGTERM"), or None.

    With several processes all of them stop at the same step: each one's flag is shared, and
    any process's signal stops every one (a lone process leaving would hang the others)."""
    import jax

    if jax.process_count() == 1:
        return _requested
    import numpy as np
    from jax.experimental import multihost_utils

    code = {None: 0, "SIGINT": 1, "SIGTERM": 2}.get(_requested, 2)
    agreed = int(np.max(multihost_utils.process_allgather(np.int32(code))))
    return {0: None, 1: "SIGINT", 2: "SIGTERM"}[agreed]


def reset() -> None:
    """Forget a request (after the loop has acted on it, and in tests)."""
    global _requested
    _requested = None
