"""Test setup: 8 fake CPU devices, so that sharding is exercised on any machine.

This must run before JAX initialises its backends, hence at import time here.
"""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# One XLA compilation cache for the whole session, shared with the experiments the tests start as
# subprocesses: the same train step compiled by a killed run, its resume and a straight run is
# compiled once. Fresh per session (a clean clone's CI starts cold, and so do we).
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="jaxhep-test-xla-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)  # one session's; not left in /tmp
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
from jaxhep.mesh import add_cpu_xla_flags  # noqa: E402

add_cpu_xla_flags()  # what every experiment's setup_runtime does (convolutions 2-10x faster)
import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)
# The partitionable threefry lowers to a much larger program, and XLA:CPU compiles it 10-20x slower;
# tests only need reproducible numbers, not the production key layout.
jax.config.update("jax_threefry_partitionable", False)
