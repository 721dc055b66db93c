"""Test setup: 8 fake CPU devices, so that sharding is exercised on any machine.

This must run before JAX initialises its backends, hence at import time here.
"""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
from jaxhep.mesh import add_cpu_xla_flags  # noqa: E402

add_cpu_xla_flags()  # what every experiment's setup_runtime does (convolutions 2-10x faster)
import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)
