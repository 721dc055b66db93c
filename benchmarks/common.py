"""Shared helpers of the benchmarks: timing with warm-up, peak memory, JSON output."""

from __future__ import annotations

import json
import platform
import resource
import sys
import time
from collections.abc import Callable

import jax


def timed(fn: Callable[[], object], warmup: int = 2, repeats: int = 5) -> float:
    """Mean seconds per call of `fn` (which must block until its result is ready)."""
    for _ in range(warmup):
        fn()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def train_calls(trainer, chunk, steps_per_call: int) -> Callable[[], None]:
    """train() -> one compiled Trainer call on the device chunk [K, B, ...], blocking until done;
    the step counter moves on by K each call (the schedule advances as in a real run)."""
    step = [0]

    def train():
        metrics = trainer.train_chunk(chunk, step[0])
        step[0] += steps_per_call
        metrics["loss"].block_until_ready()

    return train


def peak_memory() -> dict:
    """Peak memory so far: the accelerator's own counter, or the process's peak RSS on a CPU."""
    device = jax.devices()[0]
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and "peak_bytes_in_use" in stats:
        return {"peak_device_GB": stats["peak_bytes_in_use"] / 1e9}
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    return {"peak_host_rss_GB": rss_kb / 1e6}


def environment() -> dict:
    device = jax.devices()[0]
    return {
        "device": getattr(device, "device_kind", device.platform),
        "platform": device.platform,
        "n_devices": len(jax.devices()),
        "jax": jax.__version__,
        "python": sys.version.split()[0],
        "host": platform.processor() or platform.machine(),
    }


def emit(record: dict) -> None:
    print(json.dumps(record), flush=True)
