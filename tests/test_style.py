"""One style, enforced: ruff lint and ruff format over the repository."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("command", [["check", "."], ["format", "--check", "."]])
def test_ruff(command):
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    result = subprocess.run([ruff, *command], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def test_a_deprecation_raised_from_jaxhep_fails_the_tests():
    """pyproject's filterwarnings: jaxhep's own use of a deprecated API is an error, not noise."""
    import warnings

    with pytest.raises(DeprecationWarning):
        warnings.warn_explicit("old API", DeprecationWarning, "jaxhep/x.py", 1, module="jaxhep.x")
    with warnings.catch_warnings(record=True):  # third-party noise stays a warning
        warnings.warn_explicit("old API", DeprecationWarning, "flax/x.py", 1, module="flax.x")
