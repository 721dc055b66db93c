"""grain input: epoch arithmetic, shuffled row indices, chunks, exact resume, eval padding, prefetch."""

from __future__ import annotations

import numpy as np
import pytest

from jaxhep.errors import ConfigError
from jaxhep.pipeline import BatchIndexSource, EpochPlan, Prefetcher, eval_batches, training_batches

N = 200
PLAN = EpochPlan(n_rows=N, batch_size=16, steps_per_call=3)  # 4 chunks = 12 steps = 192 rows / epoch
FEATURES = np.arange(N * 2, dtype=np.float32).reshape(N, 2)


def read_rows(idx):
    return {"idx": idx, "x": FEATURES[idx]}


def test_epoch_plan_arithmetic():
    assert (PLAN.chunks_per_epoch, PLAN.steps_per_epoch) == (4, 12)
    assert (EpochPlan(1000, 64, 4).chunks_per_epoch, EpochPlan(1000, 64, 4).steps_per_epoch) == (3, 12)
    assert EpochPlan(256, 64, 4).chunks_per_epoch == 1  # exactly one chunk
    PLAN.check()
    with pytest.raises(ConfigError, match="255 rows, fewer than one chunk of 4 x 64"):
        EpochPlan(255, 64, 4).check()
    with pytest.raises(ConfigError, match="validation set has 3 rows"):
        EpochPlan(3, 4, 1).check("validation set")


def _epoch_rows(source, epoch):
    steps = range(epoch * PLAN.steps_per_epoch, (epoch + 1) * PLAN.steps_per_epoch)
    return np.concatenate([source[s] for s in steps])


def test_each_epoch_is_a_fresh_permutation_without_repeats():
    source = BatchIndexSource(PLAN, seed=3, max_epochs=3)
    assert len(source) == 36
    epochs = []
    for epoch in range(3):
        perm = source.permutation(epoch)
        np.testing.assert_array_equal(np.sort(perm), np.arange(N))  # a permutation of every row
        rows = _epoch_rows(source, epoch)
        assert rows.shape == (192,) and len(np.unique(rows)) == 192  # no row twice in an epoch
        np.testing.assert_array_equal(rows, perm[:192])
        assert all(len(source[s]) == 16 for s in range(epoch * 12, epoch * 12 + 12))
        epochs.append(rows)
    assert not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[1], epochs[2])
    # across epochs every row comes back (the rows left out differ from epoch to epoch)
    left_out = [set(range(N)) - set(e.tolist()) for e in epochs]
    assert all(len(s) == 8 for s in left_out) and left_out[0] != left_out[1]


def test_the_sequence_is_a_pure_function_of_the_seed():
    a = BatchIndexSource(PLAN, seed=7, max_epochs=2)
    b = BatchIndexSource(PLAN, seed=7, max_epochs=2)
    other = BatchIndexSource(PLAN, seed=8, max_epochs=2)
    steps = list(range(24))
    # random access in any order (grain reads out of order on several threads) gives the same rows
    shuffled = list(np.random.default_rng(0).permutation(steps))
    from_b = {s: b[s] for s in shuffled}
    for s in steps:
        np.testing.assert_array_equal(a[s], from_b[s])
    assert not np.array_equal(
        np.concatenate([a[s] for s in steps]), np.concatenate([other[s] for s in steps])
    )
    ordered = BatchIndexSource(PLAN, seed=7, max_epochs=2, shuffle=False)
    np.testing.assert_array_equal(ordered[13], np.arange(16, 32))  # epoch 1, step 1


def test_local_slice_is_this_process_part_of_the_global_batch():
    full = BatchIndexSource(PLAN, seed=1, max_epochs=1)
    halves = [
        BatchIndexSource(PLAN, seed=1, max_epochs=1, local=slice(0, 8)),
        BatchIndexSource(PLAN, seed=1, max_epochs=1, local=slice(8, 16)),
    ]
    for s in range(12):
        np.testing.assert_array_equal(np.concatenate([h[s] for h in halves]), full[s])


def test_training_batches_are_chunks_of_k_batches():
    ds = training_batches(read_rows, PLAN, seed=5, max_epochs=2)
    chunks = list(ds)
    assert len(chunks) == 2 * PLAN.chunks_per_epoch
    source = BatchIndexSource(PLAN, seed=5, max_epochs=2)
    for i, chunk in enumerate(chunks):
        assert chunk["idx"].shape == (3, 16) and chunk["x"].shape == (3, 16, 2)
        assert chunk["x"].dtype == np.float32
        expect = np.stack([source[3 * i + k] for k in range(3)])
        np.testing.assert_array_equal(chunk["idx"], expect)
        np.testing.assert_array_equal(chunk["x"], FEATURES[expect])
    # a process slice makes [K, B_local, ...] chunks of the same global batches
    local = list(training_batches(read_rows, PLAN, seed=5, max_epochs=2, local=slice(4, 12)))
    assert local[0]["x"].shape == (3, 8, 2)
    np.testing.assert_array_equal(local[5]["idx"], chunks[5]["idx"][:, 4:12])


def test_worker_processes_give_the_same_chunks_in_order():
    # grain's worker processes (the experiments' --workers on a GPU) read absl flags, which a
    # program that never called absl's app.run has not parsed: this failed before the fix
    want = [c["idx"] for c in training_batches(read_rows, PLAN, seed=5, max_epochs=1)]
    got = [c["idx"] for c in training_batches(read_rows, PLAN, seed=5, max_epochs=1, workers=2)]
    assert len(got) == len(want) == PLAN.chunks_per_epoch
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_too_small_a_training_set_is_a_config_error():
    with pytest.raises(ConfigError, match="fewer than one chunk"):
        training_batches(read_rows, EpochPlan(40, 16, 3), seed=0, max_epochs=1)


def test_iterator_state_resumes_exactly():
    it = iter(training_batches(read_rows, PLAN, seed=2, max_epochs=3))
    for _ in range(5):  # over the epoch boundary (4 chunks per epoch)
        next(it)
    state = it.get_state()
    expected = [next(it)["idx"] for _ in range(3)]
    resumed = iter(training_batches(read_rows, PLAN, seed=2, max_epochs=3))
    resumed.set_state(state)
    for want in expected:
        np.testing.assert_array_equal(next(resumed)["idx"], want)
    # the resumed stream ends where the original does
    assert len(list(resumed)) == len(list(it)) == 3 * 4 - 8


def test_eval_batches_pad_the_last_batch_with_row_0():
    got = list(eval_batches(10, 4))
    assert [n for _, n in got] == [4, 4, 2]
    np.testing.assert_array_equal(
        np.stack([idx for idx, _ in got]), [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 0, 0]]
    )
    assert all(len(idx) == 4 for idx, _ in got)
    exact = list(eval_batches(8, 4))
    assert [n for _, n in exact] == [4, 4] and exact[-1][0].tolist() == [4, 5, 6, 7]
    assert list(eval_batches(0, 4)) == []
    single = list(eval_batches(3, 8))
    assert single[0][1] == 3 and single[0][0].tolist() == [0, 1, 2, 0, 0, 0, 0, 0]


class CountingIterator:
    """An iterator with grain's get_state(); optionally raises after `fail_after` items."""

    def __init__(self, n, fail_after=None):
        self.i, self.n, self.fail_after = 0, n, fail_after

    def __iter__(self):
        return self

    def __next__(self):
        if self.fail_after is not None and self.i == self.fail_after:
            raise ValueError(f"bad record {self.i}")
        if self.i == self.n:
            raise StopIteration
        self.i += 1
        return self.i - 1

    def get_state(self):
        return {"next": self.i}


def test_prefetcher_passes_items_and_states_in_order():
    pf = Prefetcher(CountingIterator(20), transform=lambda x: x * 10, size=2)
    got = list(pf)
    assert [item for item, _ in got] == [10 * i for i in range(20)]
    assert [state for _, state in got] == [{"next": i + 1} for i in range(20)]  # the state after each item
    plain = Prefetcher(iter([1, 2]))  # no get_state: the state is None
    assert list(plain) == [(1, None), (2, None)]


def test_prefetcher_state_resumes_a_grain_iterator_exactly():
    """Though the producer runs ahead, the state paired with item i continues at item i + 1."""
    pf = Prefetcher(iter(training_batches(read_rows, PLAN, seed=4, max_epochs=2)), size=3)
    items = [next(pf) for _ in range(3)]
    rest = [chunk["idx"] for chunk, _ in pf]
    resumed = iter(training_batches(read_rows, PLAN, seed=4, max_epochs=2))
    resumed.set_state(items[-1][1])
    assert len(rest) == 5
    for want in rest:
        np.testing.assert_array_equal(next(resumed)["idx"], want)


def test_prefetcher_reraises_the_producer_error_after_the_good_items():
    pf = Prefetcher(CountingIterator(10, fail_after=3))
    assert [next(pf)[0] for _ in range(3)] == [0, 1, 2]
    with pytest.raises(ValueError, match="bad record 3"):
        next(pf)
    failing_transform = Prefetcher(CountingIterator(5), transform=lambda x: 1 / (x - 2))
    assert next(failing_transform)[0] == -0.5 and next(failing_transform)[0] == -1.0
    with pytest.raises(ZeroDivisionError):
        next(failing_transform)


def test_prefetcher_close_stops_a_blocked_producer():
    pf = Prefetcher(CountingIterator(10_000), size=1)
    assert next(pf)[0] == 0
    pf.close()
    pf._thread.join(timeout=5)
    assert not pf._thread.is_alive()


def test_row_subset_maps_positions_to_rows_and_pickles():
    import pickle

    from jaxhep.pipeline import RowSubset

    table = np.arange(10) * 10
    subset = pickle.loads(pickle.dumps(RowSubset(_read_table, np.array([7, 2, 5]))))
    assert len(subset) == 3
    np.testing.assert_array_equal(subset(np.array([2, 0]))["x"], table[[5, 7]])


def _read_table(rows):
    return {"x": np.asarray(rows) * 10}
