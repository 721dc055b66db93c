"""Device choice, the ("data",) mesh, per-process batch slices and sharded / replicated placement."""

from __future__ import annotations

import os
import types

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from jaxhep import mesh as mesh_lib
from jaxhep.errors import ConfigError, DeviceError
from jaxhep.mesh import (
    DATA_AXIS,
    ProcessSlice,
    batch_sharding,
    describe,
    gather_to_host,
    make_mesh,
    process_slice,
    put_replicated,
    select_devices,
    shard_batch,
)


@pytest.fixture(scope="module")
def mesh():
    return make_mesh()


@pytest.mark.parametrize("platform, upper", [("tpu", "TPU"), ("gpu", "GPU")])
def test_asking_for_a_missing_accelerator_is_a_clear_error(platform, upper):
    with pytest.raises(DeviceError) as info:
        select_devices(platform)
    msg = str(info.value)
    assert f"--{platform}" in msg and f"no {upper}" in msg
    assert "available: cpu x8" in msg
    assert ("Colab" in msg) if platform == "tpu" else ("CUDA" in msg)


def test_cpu_and_default_devices():
    cpus = select_devices("cpu")
    assert len(cpus) == 8 and {d.platform for d in cpus} == {"cpu"}
    assert select_devices(None) == jax.devices()
    with pytest.raises(DeviceError, match="unknown platform 'xpu'.*cpu, gpu, tpu"):
        select_devices("xpu")


def test_make_mesh_is_one_data_axis(mesh):
    assert mesh.axis_names == (DATA_AXIS,) and mesh.devices.shape == (8,)
    assert list(mesh.devices.flat) == jax.devices()
    small = make_mesh(jax.devices()[2:4])
    assert small.shape == {DATA_AXIS: 2} and list(small.devices.flat) == jax.devices()[2:4]
    assert describe(mesh) == "8 x cpu (cpu) on 1 process(es)"
    assert batch_sharding(mesh).spec == P(DATA_AXIS)
    assert batch_sharding(mesh, 2).spec == P(None, None, DATA_AXIS)


def test_process_slice_on_one_process(mesh):
    assert process_slice(64, mesh) == ProcessSlice(0, 64)
    assert process_slice(8, make_mesh(jax.devices()[:2])) == ProcessSlice(0, 8)


def test_batch_not_divisible_by_the_mesh_is_an_error(mesh):
    with pytest.raises(DeviceError, match="batch size 60 is not divisible by the 8 devices.*multiple of 8"):
        process_slice(60, mesh)
    with pytest.raises(DeviceError, match="batch size 4 .*multiple of 8"):
        process_slice(4, mesh)


def _fake_mesh(process_of_device):
    devs = np.array([types.SimpleNamespace(process_index=p) for p in process_of_device], dtype=object)
    return types.SimpleNamespace(devices=devs)


@pytest.mark.parametrize("process, expected", [(0, ProcessSlice(0, 32)), (1, ProcessSlice(32, 64))])
def test_process_slice_of_several_processes(monkeypatch, process, expected):
    """2 processes x 4 devices: each feeds the rows of its own devices."""
    monkeypatch.setattr(jax, "process_index", lambda: process)
    assert process_slice(64, _fake_mesh([0, 0, 0, 0, 1, 1, 1, 1])) == expected


def test_process_slice_rejects_interleaved_processes(monkeypatch):
    monkeypatch.setattr(jax, "process_index", lambda: 0)
    with pytest.raises(DeviceError, match="not contiguous"):
        process_slice(64, _fake_mesh([0, 1, 0, 1, 0, 1, 0, 1]))


def _check_batch_shards(arr, host, batch_axis):
    assert arr.shape == host.shape and arr.dtype == host.dtype
    assert arr.sharding.spec == P(*([None] * batch_axis), DATA_AXIS)
    shards = arr.addressable_shards
    assert len(shards) == 8 and {s.device for s in shards} == set(jax.devices())
    per = host.shape[batch_axis] // 8
    for shard in shards:
        i = jax.devices().index(shard.device)  # device i of the mesh holds block i of the batch
        expect = np.take(host, np.arange(i * per, (i + 1) * per), axis=batch_axis)
        np.testing.assert_array_equal(np.asarray(shard.data), expect)
        assert shard.index[batch_axis] == slice(i * per, (i + 1) * per)
    np.testing.assert_array_equal(np.asarray(arr), host)


def test_shard_batch_splits_axis_0_over_the_8_devices(mesh):
    x = np.arange(64 * 3, dtype=np.float32).reshape(64, 3)
    y = np.arange(64, dtype=np.int32)
    out = shard_batch({"x": x, "y": y}, mesh, 64)
    assert set(out) == {"x", "y"}
    _check_batch_shards(out["x"], x, 0)
    _check_batch_shards(out["y"], y, 0)


def test_shard_batch_splits_axis_1_of_a_chunk(mesh):
    """A training chunk [K, B, ...]: the batch axis is 1, the K steps stay whole on each device."""
    x = np.arange(4 * 16 * 2, dtype=np.float32).reshape(4, 16, 2)
    y = np.arange(4 * 16, dtype=np.int32).reshape(4, 16)
    out = shard_batch({"x": x, "y": y}, mesh, 16, batch_axis=1)
    _check_batch_shards(out["x"], x, 1)
    assert out["x"].addressable_shards[0].data.shape == (4, 2, 2)
    _check_batch_shards(out["y"], y, 1)


def test_put_replicated_places_a_full_copy_on_every_device(mesh):
    tree = {"w": np.arange(12, dtype=np.float32).reshape(3, 4), "step": np.int32(7)}
    out = put_replicated(tree, mesh)
    for key, leaf in out.items():
        assert leaf.sharding.is_fully_replicated and leaf.sharding.spec == P()
        assert len(leaf.addressable_shards) == 8
        assert {s.device for s in leaf.addressable_shards} == set(jax.devices())
        for shard in leaf.addressable_shards:
            np.testing.assert_array_equal(np.asarray(shard.data), tree[key])
    host = gather_to_host(out)
    assert isinstance(host["w"], np.ndarray)
    np.testing.assert_array_equal(host["w"], tree["w"])


_LAUNCHER_VARS = (
    "SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID",
    "OMPI_MCA_orte_hnp_uri", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK",
    "JAX_COORDINATOR_ADDRESS", "TPU_WORKER_HOSTNAMES", "TPU_PROCESS_ADDRESSES", "KUBERNETES_SERVICE_HOST",
)  # fmt: skip


@pytest.fixture
def distributed_calls(monkeypatch):
    calls = []
    monkeypatch.setattr(jax.distributed, "initialize", lambda *a, **k: calls.append((a, k)))
    for var in _LAUNCHER_VARS:
        monkeypatch.delenv(var, raising=False)
    return calls


def _slurm(monkeypatch, ntasks: int):
    """The variables `srun` sets for each of its tasks (those JAX's SLURM detection reads)."""
    for var, value in {
        "SLURM_JOB_ID": "4242", "SLURM_STEP_NODELIST": "node[001-002]", "SLURM_NTASKS": str(ntasks),
        "SLURM_PROCID": "0", "SLURM_LOCALID": "0",
    }.items():  # fmt: skip
        monkeypatch.setenv(var, value)


def test_initialize_distributed_only_when_asked_or_in_a_cluster(monkeypatch, distributed_calls):
    assert mesh_lib.initialize_distributed() is None and mesh_lib.detected_cluster() is None  # a laptop
    _slurm(monkeypatch, 1)
    assert mesh_lib.detected_cluster() == ("SlurmCluster", 1)
    assert mesh_lib.initialize_distributed() is None  # a one-task SLURM job stays one process
    assert distributed_calls == []
    _slurm(monkeypatch, 4)  # srun -n 4
    assert mesh_lib.initialize_distributed() == "SlurmCluster"
    assert mesh_lib.initialize_distributed(cluster="none") is None  # --cluster none: whatever srun says
    for var in _LAUNCHER_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OMPI_MCA_orte_hnp_uri", "1531576320.0;tcp://10.0.0.1:34911")  # mpirun -np 2
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    assert mesh_lib.initialize_distributed() == "OmpiCluster"
    monkeypatch.delenv("OMPI_MCA_orte_hnp_uri")
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "h0:1234")
    assert mesh_lib.initialize_distributed() == "JAX_COORDINATOR_ADDRESS"
    assert distributed_calls == [((), {})] * 3  # JAX fills in the arguments from the environment


def test_initialize_distributed_passes_explicit_arguments(distributed_calls):
    before = jax.config.jax_cpu_collectives_implementation
    try:
        assert mesh_lib.initialize_distributed("localhost:1234", 2, 1) == "explicit"
        assert jax.config.jax_cpu_collectives_implementation == "gloo"
    finally:
        jax.config.update("jax_cpu_collectives_implementation", before)
    assert distributed_calls == [(("localhost:1234",), {"num_processes": 2, "process_id": 1})]


@pytest.mark.parametrize(
    "args, fragment",
    [
        ((None, 4, None), "--num-processes without --coordinator"),
        ((None, None, 1), "--process-id without --coordinator"),
        (("localhost:1234", None, None), "--coordinator needs --num-processes"),
    ],
)
def test_incomplete_multi_host_flags_are_a_config_error(distributed_calls, args, fragment):
    with pytest.raises(ConfigError, match=fragment):
        mesh_lib.initialize_distributed(*args)
    assert distributed_calls == []


def test_cpu_xla_flags_are_added_once_and_keep_the_users(monkeypatch):
    from jaxhep import mesh
    from jaxhep.mesh import CPU_XLA_FLAGS, add_cpu_xla_flags

    monkeypatch.setattr(mesh, "_jaxlib_version", lambda: mesh.CPU_XLA_FLAGS_SINCE)
    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/x")
    add_cpu_xla_flags()
    add_cpu_xla_flags()
    flags = os.environ["XLA_FLAGS"].split()
    assert flags[0] == "--xla_dump_to=/tmp/x" and flags.count(CPU_XLA_FLAGS[0]) == 1
    # A user's own setting of the same flag wins.
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=")
    add_cpu_xla_flags()
    assert os.environ["XLA_FLAGS"] == "--xla_cpu_experimental_ynn_fusion_type="
    # A jaxlib that cannot parse the flag (it would abort the process) gets none.
    monkeypatch.setattr(mesh, "_jaxlib_version", lambda: (0, 8, 1))
    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/x")
    add_cpu_xla_flags()
    assert os.environ["XLA_FLAGS"] == "--xla_dump_to=/tmp/x"
