"""Multi-process data parallelism: 2 processes x 4 CPU devices train exactly like 1 x 8.

The workers (tests/distributed_worker.py) run in their own interpreters, because
`jax.distributed.initialize` must come before JAX starts its backends, and this pytest
process already has (conftest's 8 fake devices). They talk over localhost: the JAX
coordinator plus gloo collectives on CPU.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 150


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XLA_", "JAX_"))}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["JAX_PLATFORMS"] = "cpu"
    return env


def _start(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.distributed_worker", *args],
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=open(log, "w"),
        text=True,
    )


def _finish(procs: dict[str, subprocess.Popen], logs: dict[str, Path]) -> dict[str, str]:
    """Wait for every worker; stdout of each, or fail with the log of the first that failed.

    When one worker dies the others are killed at once: a process left waiting for its
    peer would otherwise sit in jax.distributed's connection timeout for minutes.
    """
    deadline = time.monotonic() + TIMEOUT_S
    while any(p.poll() is None for p in procs.values()):
        failed = [n for n, p in procs.items() if p.returncode not in (None, 0)]
        if failed or time.monotonic() > deadline:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.kill()
            for proc in procs.values():
                proc.communicate()
            if failed:
                pytest.fail(
                    f"worker {failed[0]} exited with {procs[failed[0]].returncode}:\n"
                    f"{logs[failed[0]].read_text()[-4000:]}"
                )
            tails = {n: logs[n].read_text()[-2000:] for n in procs}
            pytest.fail(f"distributed workers timed out after {TIMEOUT_S} s; stderr tails: {tails}")
        time.sleep(0.2)
    outs = {name: proc.communicate()[0] for name, proc in procs.items()}
    for name, proc in procs.items():
        if proc.returncode != 0:
            pytest.fail(f"worker {name} exited with {proc.returncode}:\n{logs[name].read_text()[-4000:]}")
    return outs


def _result(stdout: str) -> dict:
    lines = [ln for ln in stdout.splitlines() if ln.startswith("RESULT ")]
    assert len(lines) == 1, f"expected one RESULT line, got: {stdout!r}"
    return json.loads(lines[0][len("RESULT ") :])


def test_initialize_distributed_comes_before_any_backend_use(tmp_path):
    """`initialize_distributed` with explicit arguments must not start a JAX backend itself.

    jax.distributed.initialize refuses to run once a backend exists, so any jax.devices() /
    jax.default_backend() call before it makes every multi-host run fail.
    """
    code = (
        "import jax\n"
        "from jaxhep.mesh import initialize_distributed\n"
        f"initialize_distributed('localhost:{_free_port()}', 1, 0)\n"
        "assert jax.process_count() == 1\n"
        "assert jax.config.jax_cpu_collectives_implementation == 'gloo'\n"
        "print('OK', len(jax.devices()))\n"
        "jax.distributed.shutdown()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=TIMEOUT_S
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["OK", "1"]


@pytest.mark.slow
def test_two_processes_train_like_one(tmp_path):
    port = _free_port()
    logs = {n: tmp_path / f"{n}.log" for n in ("single", "p0", "p1")}
    procs = {
        # the one-process reference on 8 devices runs alongside the pair
        "single": _start(["--devices", "8", "--ckpt", str(tmp_path / "ckpt_single")], logs["single"]),
    }
    for pid in (0, 1):
        procs[f"p{pid}"] = _start(
            [
                "--devices",
                "4",
                "--ckpt",
                str(tmp_path / "ckpt_multi"),
                "--coordinator",
                f"localhost:{port}",
                "--num-processes",
                "2",
                "--process-id",
                str(pid),
            ],
            logs[f"p{pid}"],
        )
    outs = _finish(procs, logs)
    assert "RESULT" not in outs["p1"], "only process 0 reports"
    single, multi = _result(outs["single"]), _result(outs["p0"])

    assert (single["process_count"], single["global_devices"], single["local_devices"]) == (1, 8, 8)
    assert (multi["process_count"], multi["global_devices"], multi["local_devices"]) == (2, 8, 4)
    assert multi["mesh_devices"] == 8

    assert len(single["loss"]) == len(multi["loss"]) == 2
    assert single["loss"][1] < single["loss"][0]  # it did learn something
    np.testing.assert_allclose(multi["loss"], single["loss"], rtol=1e-5)
    np.testing.assert_allclose(multi["val_accuracy"], single["val_accuracy"], atol=1.01 / 300)  # <= 1 row
    assert multi["best_epoch"] == single["best_epoch"]
    # atol: the first Linear's bias (in front of BatchNorm) only moves by rounding noise, ~1e-8
    np.testing.assert_allclose(multi["param_sums"], single["param_sums"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(multi["param_sq_sums"], single["param_sq_sums"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(multi["preds_checksum"], single["preds_checksum"], rtol=1e-5)

    # both processes wrote one orbax checkpoint tree, in the shared directory
    for which in ("latest", "best"):
        steps = sorted(int(p.name) for p in (tmp_path / "ckpt_multi" / which).iterdir() if p.name.isdigit())
        assert steps == ([16, 32] if which == "latest" else [32])
