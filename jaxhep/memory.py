"""How much device memory a compiled program needs, before it runs.

XLA plans every buffer of a program when it compiles it, so the peak memory of a train
step is known without running it (and, from `jax.ShapeDtypeStruct` arguments, without
allocating anything): arguments + outputs + temporaries + generated code, minus the
outputs that reuse (alias) donated arguments. A hyper-parameter search uses this to skip
a trial that would not fit instead of dying of out-of-memory in the middle of the search
(the DUNE seed lost a 20-trial search that way after 13 trials).

Numbers are per device: for a program sharded over a mesh, XLA compiles one per-device
program and reports its buffers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

GB = 1e9


def compiled_bytes(compiled) -> int:
    """Peak device bytes of a compiled program (`jax.jit(f).lower(...).compile()`)."""
    m = compiled.memory_analysis()
    if m is None:  # a backend without memory analysis
        raise NotImplementedError("this backend reports no memory analysis for compiled programs")
    total = (
        m.argument_size_in_bytes
        + m.output_size_in_bytes
        + m.temp_size_in_bytes
        + m.generated_code_size_in_bytes
        - m.alias_size_in_bytes
    )
    return int(max(total, getattr(m, "peak_memory_in_bytes", 0) or 0))


def estimate_step_bytes(fn: Callable, *args, donate_argnums: int | tuple[int, ...] = (), **kwargs) -> int:
    """Peak device memory that `jax.jit(fn)(*args)` would need, from XLA's plan; nothing runs.

    `args` may be arrays or `jax.ShapeDtypeStruct`s (with a `sharding` for a mesh program);
    `fn` may already be jitted. Donated arguments (`donate_argnums`) that outputs reuse are
    counted once.
    """
    jitted = fn if hasattr(fn, "lower") else jax.jit(fn, donate_argnums=donate_argnums)
    return compiled_bytes(jitted.lower(*args, **kwargs).compile())


def device_memory_bytes(device: jax.Device | None = None) -> int | None:
    """Memory capacity of `device` (default: the first device), or None if unknown.

    GPU/TPU: the allocator's `bytes_limit`. CPU: the host's available memory
    (/proc/meminfo MemAvailable) shared by this process's CPU devices, i.e. divided by
    their number (one device in normal runs; the tests fake 8).
    """
    device = device if device is not None else jax.devices()[0]
    if device.platform != "cpu":
        try:
            stats = device.memory_stats() or {}
        except Exception:  # some runtimes do not implement memory_stats
            stats = {}
        limit = stats.get("bytes_limit")
        return int(limit) if limit else None
    available = _mem_available()
    if available is None:
        return None
    n_cpu = max(1, sum(d.platform == "cpu" for d in jax.local_devices(backend="cpu")))
    return available // n_cpu


def _mem_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:  # other POSIX systems: free physical pages
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def fits(estimate: int, capacity: int | None, headroom: float = 0.9) -> bool:
    """True if `estimate` bytes fit in `headroom` x `capacity` (an unknown capacity always fits)."""
    return capacity is None or estimate <= headroom * capacity


def describe_bytes(n: float) -> str:
    """'1.23 GB' (decimal units, as GPU specifications quote them)."""
    return f"{n / GB:.3g} GB" if n >= 1e7 else f"{n / 1e6:.3g} MB"


def _row_spec(rows: Mapping[str, Any]) -> dict[str, tuple[tuple[int, ...], Any]]:
    out = {}
    for name, value in rows.items():
        shape, dtype = tuple(value.shape), value.dtype
        if not shape:
            raise ValueError(f"example row {name!r} has no row axis (shape ())")
        out[name] = (shape[1:], dtype)
    return out


def estimate_trainer_step(
    model_factory: Callable[[], Any],
    loss_fn: Callable,
    predict_fn: Callable,
    train_cfg,
    mesh,
    example_rows: Mapping[str, Any],
    total_steps: int = 1000,
) -> int:
    """Peak per-device bytes of `jaxhep.train.Trainer`'s compiled train call, without allocating.

    The model and optimiser are built abstractly (`nnx.eval_shape`), and the Trainer's own
    `_train_chunk` program (`cfg.steps_per_call` steps of `cfg.batch_size` rows, state
    replicated and donated, batch sharded over `mesh`) is lowered and compiled from
    ShapeDtypeStructs. `example_rows` gives the per-row shapes and dtypes of a batch: a dict
    of arrays or ShapeDtypeStructs whose first axis is rows (any number, e.g.
    `read_rows(np.arange(1))`). Compiling takes as long as the first train step would.
    """
    # Imported here: flax and the training machinery (checkpoints, pipeline) are slow to
    # import, and the plain estimate and the search do not need them.
    from flax import nnx

    from jaxhep.mesh import batch_sharding, replicated
    from jaxhep.train import Trainer, make_optimizer

    tx = make_optimizer(train_cfg, total_steps)

    def build():
        model = model_factory()
        optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
        model.train()
        return model, optimizer

    graphdef, abstract_state = nnx.split(nnx.eval_shape(build))
    rep = replicated(mesh)
    state = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=rep), abstract_state)
    k, b = train_cfg.steps_per_call, train_cfg.batch_size
    shard = batch_sharding(mesh, batch_axis=1)
    batches = {
        name: jax.ShapeDtypeStruct((k, b, *shape), dtype, sharding=shard)
        for name, (shape, dtype) in _row_spec(example_rows).items()
    }
    # A Trainer shell with the attributes its train program reads (Trainer.__init__ would
    # allocate and place the real state); the program itself is the Trainer's own.
    shell = object.__new__(Trainer)
    shell.cfg, shell.mesh, shell.loss_fn, shell.predict_fn = train_cfg, mesh, loss_fn, predict_fn
    shell.graphdef, shell.base_key = graphdef, jax.random.PRNGKey(train_cfg.seed)
    step0 = jax.ShapeDtypeStruct((), jnp.int32)
    return estimate_step_bytes(shell._train_chunk, state, batches, step0, donate_argnums=0)
