"""`approx`: pytest.approx of host values, for tests that compare against JAX results.

pytest.approx reads its expected value's `.flat` (pytest >= 9.2), which a `jax.Array` does not
have: `x == pytest.approx(jnp_value)` raises NotImplementedError there. This helper converts
the expected value (a scalar, an array, or a dict / list / tuple of them) to NumPy first, so
the tests do not depend on how a pytest release inspects it. ruff's banned-api rule
(pyproject.toml) keeps `pytest.approx` itself out of the tests.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest


def _host(value):
    if isinstance(value, jax.Array):
        return np.asarray(value).item() if value.ndim == 0 else np.asarray(value)
    if isinstance(value, dict):
        return {k: _host(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_host(v) for v in value)
    return value


def approx(expected, rel=None, abs=None, nan_ok: bool = False):
    """pytest.approx(expected, rel, abs, nan_ok) with any jax.Array in `expected` made NumPy."""
    return pytest.approx(_host(expected), rel=rel, abs=abs, nan_ok=nan_ok)  # noqa: TID251
