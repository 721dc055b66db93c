"""Input pipelines on grain: epoch-shuffled batches of row indices, read by a task's reader.

A record of the grain dataset is one *training step*: the row indices of one global
batch (only this process's slice of them), already read into arrays by the task's
`read_rows(indices) -> dict of arrays`.  Reading a whole batch at once keeps tabular and
HDF5 inputs vectorised (one fancy-index per batch instead of one Python call per row).
`steps_per_call` consecutive steps are stacked into one chunk `[K, B_local, ...]`, which
the training loop consumes with one compiled `lax.scan`.

The iterator's state (`get_state()`, a small JSON dict) is saved in every checkpoint,
so a resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grain
import numpy as np

from jaxhep.errors import ConfigError


@dataclass(frozen=True)
class EpochPlan:
    """How an epoch of `n_rows` is cut into chunks of `steps_per_call` batches.

    Batches never straddle an epoch boundary; the few rows beyond the last full chunk are
    left out of that epoch (a different permutation each epoch, so none is left out for long).
    """

    n_rows: int
    batch_size: int
    steps_per_call: int

    @property
    def chunks_per_epoch(self) -> int:
        return self.n_rows // (self.batch_size * self.steps_per_call)

    @property
    def steps_per_epoch(self) -> int:
        return self.chunks_per_epoch * self.steps_per_call

    @classmethod
    def fit_to(cls, n_rows: int, batch_size: int, steps_per_call: int) -> EpochPlan:
        """A plan whose chunks are no longer than an epoch (small data sets get K < steps_per_call)."""
        return cls(n_rows, batch_size, max(1, min(steps_per_call, n_rows // max(batch_size, 1))))

    def check(self, what: str = "training set") -> None:
        if self.chunks_per_epoch < 1:
            raise ConfigError(
                f"the {what} has {self.n_rows} rows, fewer than one chunk of "
                f"{self.steps_per_call} x {self.batch_size}; lower the batch size"
            )


class BatchIndexSource:
    """grain random-access source: record i = this process's row indices of global step i.

    Step i belongs to epoch i // steps_per_epoch; each epoch uses its own permutation from
    (seed, epoch), so the sequence of batches is a pure function of the seed.
    """

    def __init__(
        self, plan: EpochPlan, seed: int, max_epochs: int, shuffle: bool = True, local: slice = slice(None)
    ):
        self.plan, self.seed, self.max_epochs, self.shuffle = plan, seed, max_epochs, shuffle
        self.local = local
        self._cached_epoch, self._cached_perm = -1, None

    def __len__(self) -> int:
        return self.plan.steps_per_epoch * self.max_epochs

    def permutation(self, epoch: int) -> np.ndarray:
        """Row order of one epoch, [n_rows] int64."""
        if epoch != self._cached_epoch:
            if self.shuffle:
                self._cached_perm = np.random.default_rng([self.seed, epoch]).permutation(self.plan.n_rows)
            else:
                self._cached_perm = np.arange(self.plan.n_rows)
            self._cached_epoch = epoch
        return self._cached_perm

    def __getitem__(self, step: int) -> np.ndarray:
        epoch, within = divmod(int(step), self.plan.steps_per_epoch)
        b = self.plan.batch_size
        rows = self.permutation(epoch)[within * b : (within + 1) * b]
        return rows[self.local]


class RowSubset:
    """The `read_rows` of a subset of a table (a split): positions [0, len(rows)) -> `rows`.

    What `training_batches` / `Trainer.predict_rows` index (they count 0..n-1). Picklable when
    `read_rows` is (grain worker processes).
    """

    def __init__(self, read_rows: Callable[[np.ndarray], dict], rows: np.ndarray):
        self.read_rows, self.rows = read_rows, np.asarray(rows, np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    def __call__(self, positions: np.ndarray) -> dict:
        return self.read_rows(self.rows[np.asarray(positions, np.int64)])


def training_batches(
    read_rows: Callable[[np.ndarray], dict[str, np.ndarray]],
    plan: EpochPlan,
    seed: int,
    max_epochs: int,
    local: slice = slice(None),
    workers: int = 0,
    read_threads: int = 1,
    buffer: int = 4,
) -> grain.IterDataset:
    """The training stream: chunks of `plan.steps_per_call` batches, each `read_rows(idx)`.

    Reads run in order on `read_threads` threads, at most `buffer` chunks ahead (grain's
    defaults, 16 threads and 500 elements, would hold hundreds of MB of whole batches).
    `read_rows` must be picklable when workers > 0 (it then runs in grain's
    multiprocessing prefetch; useful for HDF5 or image decoding, not for in-memory tables).
    """
    plan.check()
    source = BatchIndexSource(plan, seed, max_epochs, shuffle=True, local=local)
    ds = grain.MapDataset.source(source).map(read_rows).batch(plan.steps_per_call)
    it_ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=read_threads, prefetch_buffer_size=buffer))
    if workers > 0:
        _mark_absl_flags_parsed()
        it_ds = it_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
    return it_ds


def _mark_absl_flags_parsed() -> None:
    """Let grain's worker processes read their absl flags' defaults.

    grain's multiprocessing reads absl flags (e.g. `grain_enable_multiprocess_worker_profiling`),
    which raise `UnparsedFlagAccessError` unless some `app.run` parsed the command line. Our
    programs parse their own arguments with argparse, so the defaults are what they want.
    """
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def eval_batches(n_rows: int, batch_size: int) -> Iterator[tuple[np.ndarray, int]]:
    """Fixed-size row-index batches over [0, n_rows) for evaluation.

    Yields (indices [batch_size], n_valid): the last batch is padded by repeating row 0,
    so one compiled program serves every batch; callers drop the padded outputs.
    """
    for start in range(0, n_rows, batch_size):
        idx = np.arange(start, min(start + batch_size, n_rows))
        n_valid = len(idx)
        if n_valid < batch_size:
            idx = np.concatenate([idx, np.zeros(batch_size - n_valid, dtype=idx.dtype)])
        yield idx, n_valid


class Prefetcher:
    """Runs an iterator in a background thread, `size` items ahead (host -> device overlap).

    Each item is paired with the iterator state *after* it, so the consumer knows the state
    to checkpoint for what it has actually used rather than what was prefetched.
    """

    _END = object()

    def __init__(self, iterator, transform: Callable[[Any], Any] = lambda x: x, size: int = 2):
        self._it, self._transform = iterator, transform
        self._queue: queue.Queue = queue.Queue(maxsize=size)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        try:
            for item in self._it:
                state = self._it.get_state() if hasattr(self._it, "get_state") else None
                payload = (self._transform(item), state)
                while not self._stop.is_set():
                    try:
                        self._queue.put(payload, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
            self._queue.put(self._END)
        except BaseException as err:  # surfaced in the consumer's thread
            self._queue.put(err)

    def __iter__(self):
        return self

    def __next__(self):
        item = self._queue.get()
        if item is self._END:
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self):
        self._stop.set()
        while True:  # drain so the producer can finish
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
