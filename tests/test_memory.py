"""Peak device memory from XLA's compiled plan, without running or allocating anything."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxhep import memory
from jaxhep.memory import (
    describe_bytes,
    device_memory_bytes,
    estimate_step_bytes,
    estimate_trainer_step,
    fits,
)
from jaxhep.mesh import make_mesh
from jaxhep.train import TrainConfig
from tests.toy import toy_data, toy_fns

MB = 1 << 20


class SmallMLP(nnx.Module):
    """4 -> 16 -> 3 (tests.toy.ToyMLP less BatchNorm and dropout, which double the compile time)."""

    def __init__(self):
        rngs = nnx.Rngs(0)
        self.a = nnx.Linear(4, 16, rngs=rngs)
        self.b = nnx.Linear(16, 3, rngs=rngs)

    def __call__(self, x, rngs=None):
        return self.b(nnx.relu(self.a(x)))


def test_a_matmul_needs_its_arguments_and_output():
    x = jax.ShapeDtypeStruct((1024, 1024), jnp.float32)  # 4 MiB each
    est = estimate_step_bytes(lambda a, b: a @ b, x, x)
    assert 12 * MB <= est <= 16 * MB  # 8 MiB of arguments + 4 MiB of output (+ little)
    # a jitted function works too, and real arrays give the same plan
    a = jnp.ones((256, 512), jnp.float32)
    assert estimate_step_bytes(jax.jit(lambda a: a.T @ a), a) == estimate_step_bytes(lambda a: a.T @ a, a)
    # a donated argument that the output reuses is counted once
    assert estimate_step_bytes(lambda a: a * 2, x) == 8 * MB
    assert estimate_step_bytes(lambda a: a * 2, x, donate_argnums=0) == 4 * MB


def test_the_trainer_step_estimate_grows_linearly_with_the_batch_and_allocates_nothing():
    x, y = toy_data(64)
    read, loss_fn, predict_fn, _ = toy_fns(x, y)
    mesh = make_mesh(jax.devices()[:1])
    rows = read(np.arange(1))  # per-row shapes and dtypes; ShapeDtypeStructs do as well
    # SGD without clipping compiles faster than Adam; the optimiser state does not grow with the batch
    base = TrainConfig(steps_per_call=1, batch_size=8192, optimizer="sgd", grad_clip_norm=None)
    # Held, so that their ids stay theirs: other tests' dead arrays may be collected meanwhile, so a
    # count of live arrays can fall (it did, in a two-process CI run) without saying anything here.
    before = jax.live_arrays()
    small = estimate_trainer_step(SmallMLP, loss_fn, predict_fn, base, mesh, rows)
    big = estimate_trainer_step(
        SmallMLP, loss_fn, predict_fn, dataclasses.replace(base, batch_size=32768), mesh, rows
    )
    known = {id(a) for a in before}
    assert [a.shape for a in jax.live_arrays() if id(a) not in known] == []  # nothing was allocated
    # Per row: the inputs (4 floats + 1 int) and the hidden activations (16 wide, kept for
    # the backward pass): somewhere between 20 and ~1000 bytes, and 4x the batch ~ 4x the bytes.
    per_row = (big - small) / (32768 - 8192)
    assert 20 <= per_row <= 1000, per_row
    assert 3.0 <= big / small <= 4.2, (small, big)


def test_the_estimate_is_per_device_for_a_sharded_program():
    mesh = make_mesh(jax.devices()[:8])
    rows = NamedSharding(mesh, P("data"))
    x = jax.ShapeDtypeStruct((8192, 1024), jnp.float32, sharding=rows)  # 32 MiB, 4 MiB a device
    w = jax.ShapeDtypeStruct((1024, 128), jnp.float32, sharding=NamedSharding(mesh, P()))  # 0.5 MiB
    whole = estimate_step_bytes(lambda x, w: x @ w, jax.ShapeDtypeStruct(x.shape, x.dtype), w)
    per_device = estimate_step_bytes(lambda x, w: x @ w, x, w)
    assert 36 * MB <= whole <= 40 * MB  # 32 + 0.5 MiB of arguments, 4 MiB of output
    assert 4.5 * MB <= per_device <= 6 * MB  # 4 + 0.5 MiB of arguments, 0.5 MiB of output


def test_device_capacity_and_fits(monkeypatch):
    cpu = jax.devices("cpu")[0]
    capacity = device_memory_bytes(cpu)
    assert isinstance(capacity, int) and capacity > 0
    assert device_memory_bytes() == capacity  # the default device is a CPU in the tests
    # the host's available memory is shared by this process's (here 8 fake) CPU devices
    monkeypatch.setattr(memory, "_mem_available", lambda: 8_000_000_000)
    assert device_memory_bytes(cpu) == 8_000_000_000 // len(jax.devices("cpu"))
    monkeypatch.setattr(memory, "_mem_available", lambda: None)
    assert device_memory_bytes(cpu) is None

    class FakeGPU:
        platform = "gpu"

        def __init__(self, stats):
            self.stats = stats

        def memory_stats(self):
            if isinstance(self.stats, Exception):
                raise self.stats
            return self.stats

    assert device_memory_bytes(FakeGPU({"bytes_limit": 24_000_000_000, "bytes_in_use": 1})) == 24_000_000_000
    assert device_memory_bytes(FakeGPU(None)) is None
    assert device_memory_bytes(FakeGPU(NotImplementedError())) is None

    assert fits(8e9, 10e9) and not fits(9.5e9, 10e9) and fits(9.5e9, 10e9, headroom=1.0)
    assert fits(1e15, None)  # unknown capacity: let it run
    assert describe_bytes(31.2e9) == "31.2 GB" and describe_bytes(4.5e6) == "4.5 MB"


def test_a_backend_without_memory_analysis_says_so():
    class NoAnalysis:
        def memory_analysis(self):
            return None

    with pytest.raises(NotImplementedError):
        memory.compiled_bytes(NoAnalysis())
