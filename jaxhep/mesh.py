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

from jaxhep.errors import ConfigError, DeviceError

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


CLUSTER_MODES = ("auto", "none")


def detected_cluster() -> tuple[str, int | None] | None:
    """(name, number of processes) of the cluster launcher that JAX's own detection finds (SLURM,
    Open MPI, GKE / GCE TPU pods, Kubernetes: the environments `jax.distributed.initialize()`
    fills its arguments from), or None. The process count is None where it cannot be read.

    JAX keeps the list in a private module; were it to move, the launchers' environment
    variables are checked instead (SLURM, Open MPI, a TPU pod's worker list)."""
    try:
        from jax._src.clusters import ClusterEnv
    except ImportError:
        return _cluster_from_environment()
    for env in ClusterEnv._cluster_types:
        if env.opt_in_only_method:  # mpi4py: only when asked for by name
            continue
        try:
            if not env.is_env_present():
                continue
        except Exception:  # a detector that cannot tell (e.g. a metadata server that does not answer)
            continue
        try:
            count = int(env.get_process_count())
        except Exception:
            count = None
        return env.__name__, count
    return None


def _cluster_from_environment() -> tuple[str, int | None] | None:
    if "SLURM_NTASKS" in os.environ and "SLURM_JOB_ID" in os.environ:
        return "SlurmCluster", int(os.environ["SLURM_NTASKS"])
    if "OMPI_MCA_orte_hnp_uri" in os.environ:
        return "OmpiCluster", int(os.environ.get("OMPI_COMM_WORLD_SIZE", "0")) or None
    if "TPU_WORKER_HOSTNAMES" in os.environ:
        return "GkeTpuCluster", len(os.environ["TPU_WORKER_HOSTNAMES"].split(","))
    return None


def initialize_distributed(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    cluster: str = "auto",
) -> str | None:
    """Start multi-host JAX when asked for, or when a cluster launcher asks for it; returns how
    ("explicit", the launcher's name, or None: one process).

    With `coordinator` (e.g. a localhost test: "localhost:12345", 2, 0) the arguments are used
    as given; `num_processes` / `process_id` without it is a ConfigError (JAX would wait for a
    coordinator that nobody named). Otherwise, with `cluster` "auto", `jax.distributed.initialize()`
    is called (it fills in its arguments itself) when JAX's detection finds a launcher with more
    than one process (`detected_cluster`) or JAX_COORDINATOR_ADDRESS is set: `srun` with several
    tasks, `mpirun -np N`, a TPU pod slice. A one-task job, a single TPU VM or a laptop stay one
    process. "none": never, whatever the environment says.
    """
    if cluster not in CLUSTER_MODES:
        raise ConfigError(f"--cluster {cluster!r}: choose one of {', '.join(CLUSTER_MODES)}")
    if coordinator is not None:
        if num_processes is None or process_id is None:
            raise ConfigError("--coordinator needs --num-processes N and --process-id I beside it")
        # Cross-process collectives on CPU need gloo; the setting only affects the CPU client,
        # so it is harmless on GPU/TPU. No jax.default_backend() here: it would start the
        # backend, after which jax.distributed.initialize refuses to run.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator, num_processes=num_processes, process_id=process_id)
        return "explicit"
    if num_processes is not None or process_id is not None:
        given = "--num-processes" if num_processes is not None else "--process-id"
        raise ConfigError(
            f"{given} without --coordinator host:port: give all three, or none and let --cluster "
            "auto find the cluster launcher (srun, mpirun, a TPU pod)"
        )
    if cluster == "none":
        return None
    if "JAX_COORDINATOR_ADDRESS" in os.environ:
        jax.distributed.initialize()
        return "JAX_COORDINATOR_ADDRESS"
    found = detected_cluster()
    if found is None or found[1] == 1:
        return None
    jax.distributed.initialize()
    return found[0]


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
