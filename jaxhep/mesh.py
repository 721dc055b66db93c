"""Devices, the data-parallel mesh and the shardings every task uses.

One 1-D mesh with axis "data" over every device of the chosen platform (all hosts):
batches are split along their batch axis over it, parameters are replicated. On several
hosts each process feeds only its own slice of the global batch and
`jax.make_array_from_process_local_data` stitches the global array together.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxhep.errors import DeviceError

DATA_AXIS = "data"
PLATFORMS = ("cpu", "gpu", "tpu")

_HINTS = {
    "tpu": "On Colab choose Runtime > Change runtime type > TPU; elsewhere install jax[tpu].",
    "gpu": "Install a CUDA build of JAX (pip install -U 'jax[cuda12]') on a machine with an NVIDIA GPU.",
    "cpu": "",
}


# XLA:CPU flags every jaxhep process wants (they touch the CPU backend only; GPUs and TPUs
# ignore them). YNNPACK's fusion of single convolutions makes convolution networks 2x slower
# on the x86 CPUs we measured, and ~10x slower inside loops (lax.scan / lax.map): with it
# off, XLA's Eigen convolutions run (BUILD_NOTES.md, e/gamma and DUNE speed).
# The flag takes this value from jaxlib 0.8.2 on (0.8.1 knows it with another syntax, older ones not at
# all); an XLA that cannot parse a flag aborts the process, so older jaxlibs get none.
CPU_XLA_FLAGS = ("--xla_cpu_experimental_ynn_fusion_type=-individual_convolution",)
CPU_XLA_FLAGS_SINCE = (0, 8, 2)


def _jaxlib_version() -> tuple[int, ...]:
    from importlib.metadata import version

    return tuple(int(part) for part in version("jaxlib").split(".")[:3] if part.isdigit())


def add_cpu_xla_flags() -> None:
    """Append CPU_XLA_FLAGS to XLA_FLAGS unless set there already; effective only before JAX
    starts its backends (the first computation or device query)."""
    if _jaxlib_version() < CPU_XLA_FLAGS_SINCE:
        return
    flags = os.environ.get("XLA_FLAGS", "")
    for flag in CPU_XLA_FLAGS:
        if flag.split("=")[0] not in flags:
            flags = f"{flags} {flag}".strip()
    os.environ["XLA_FLAGS"] = flags


def initialize_distributed(
    coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None
) -> None:
    """Start multi-host JAX when asked for, or when the cluster environment asks for it.

    With explicit arguments (e.g. a localhost test: "localhost:12345", 2, 0) they are used;
    otherwise `jax.distributed.initialize()` is called only when a cluster launcher is
    detected (SLURM with several tasks, a TPU pod, or JAX_COORDINATOR_ADDRESS set).
    """
    if coordinator is not None:
        # Cross-process collectives on CPU need gloo; the setting only affects the CPU client,
        # so it is harmless on GPU/TPU. No jax.default_backend() here: it would start the
        # backend, after which jax.distributed.initialize refuses to run.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator, num_processes=num_processes, process_id=process_id)
        return
    cluster = (
        int(os.environ.get("SLURM_NTASKS", "1")) > 1
        or "JAX_COORDINATOR_ADDRESS" in os.environ
        or "TPU_WORKER_HOSTNAMES" in os.environ
        and "," in os.environ["TPU_WORKER_HOSTNAMES"]
    )
    if cluster:
        jax.distributed.initialize()


def select_devices(platform: str | None = None) -> list[jax.Device]:
    """All devices of `platform` ("cpu", "gpu", "tpu"), or of the best available one.

    Raises DeviceError with a hint when the requested platform is not there (e.g. --tpu on
    a laptop), instead of JAX's backend-initialisation traceback.
    """
    if platform is None:
        return jax.devices()
    if platform not in PLATFORMS:
        raise DeviceError(f"unknown platform {platform!r}; choose one of {', '.join(PLATFORMS)}")
    try:
        devices = jax.devices(platform)
    except RuntimeError:
        devices = []
    if not devices:
        have = ", ".join(sorted({f"{d.platform} x{len(jax.devices(d.platform))}" for d in jax.devices()}))
        raise DeviceError(
            f"--{platform} was given but JAX finds no {platform.upper()} (available: {have}). "
            + _HINTS[platform]
        )
    return devices


def make_mesh(devices: list[jax.Device] | None = None) -> Mesh:
    """A 1-D ("data",) mesh over `devices` (default: all devices of the default backend)."""
    devices = list(devices if devices is not None else jax.devices())
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    """Sharding for parameters and optimiser state: a full copy on every device."""
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh, batch_axis: int = 0) -> NamedSharding:
    """Sharding that splits axis `batch_axis` of an array over the mesh's data axis."""
    return NamedSharding(mesh, P(*([None] * batch_axis), DATA_AXIS))


@dataclass(frozen=True)
class ProcessSlice:
    """Which rows of a global batch this process feeds: [start, stop)."""

    start: int
    stop: int


def process_slice(global_batch: int, mesh: Mesh) -> ProcessSlice:
    """The contiguous part of a global batch that belongs to this process's devices.

    Batch rows are laid out over the mesh in device order, so each process owns the rows of
    its addressable devices. Every process must see the same global batch order.
    """
    n_dev = mesh.devices.size
    if global_batch % n_dev:
        raise DeviceError(
            f"batch size {global_batch} is not divisible by the {n_dev} devices of the mesh; "
            f"choose a multiple of {n_dev}"
        )
    per_device = global_batch // n_dev
    mine = [i for i, d in enumerate(mesh.devices.flat) if d.process_index == jax.process_index()]
    start, stop = min(mine) * per_device, (max(mine) + 1) * per_device
    if (stop - start) != len(mine) * per_device:
        raise DeviceError("this process's devices are not contiguous in the mesh")
    return ProcessSlice(start, stop)


def shard_batch(tree, mesh: Mesh, global_batch: int, batch_axis: int = 0):
    """Turn this process's part of a batch (numpy leaves) into global sharded jax.Arrays.

    Each leaf has shape [..., local_batch, ...] with the batch on `batch_axis`; the result
    has global_batch rows there, split over every device of the mesh.
    """
    sharding = batch_sharding(mesh, batch_axis)

    def put(x):
        x = np.asarray(x)
        shape = list(x.shape)
        shape[batch_axis] = global_batch
        return jax.make_array_from_process_local_data(sharding, x, tuple(shape))

    return jax.tree.map(put, tree)


def put_replicated(tree, mesh: Mesh):
    """Place a pytree (parameters, optimiser state) on every device of the mesh."""
    return jax.device_put(tree, replicated(mesh))


def gather_to_host(tree):
    """Bring (possibly multi-host sharded) arrays to numpy on every process."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.tree.map(np.asarray, tree)


def describe(mesh: Mesh) -> str:
    """One line for logs: platform, device kind and count, hosts."""
    d = mesh.devices.flat[0]
    return (
        f"{mesh.devices.size} x {d.platform} ({getattr(d, 'device_kind', d.platform)}) "
        f"on {jax.process_count()} process(es)"
    )
