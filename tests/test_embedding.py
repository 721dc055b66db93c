"""PCA embedding against the eigenvectors of the covariance matrix."""

import numpy as np
import pytest

from jaxhep.embedding import pca_2d
from tests.approx import approx


def test_pca_matches_covariance_eigenvectors():
    rng = np.random.default_rng(0)
    # Variance 9 along (1, 1, 0)/sqrt2, 1 along z, 0.01 along (1, -1, 0)/sqrt2.
    n = 5000
    basis = np.array([[1, 1, 0], [0, 0, 1], [1, -1, 0]]) / np.array([[np.sqrt(2)], [1], [np.sqrt(2)]])
    x = (rng.normal(size=(n, 3)) * [3.0, 1.0, 0.1]) @ basis + [5.0, -2.0, 1.0]
    points, ratio = pca_2d(x)
    assert points.shape == (n, 2)
    cov = np.cov(x.T, bias=True)
    values, vectors = np.linalg.eigh(cov)
    top = vectors[:, ::-1][:, :2]
    want = (x - x.mean(0)) @ top
    for k in range(2):
        np.testing.assert_allclose(np.abs(points[:, k]), np.abs(want[:, k]), atol=1e-8)
    np.testing.assert_allclose(ratio, values[::-1][:2] / values.sum(), rtol=1e-10)
    assert ratio[0] == approx(9 / 10.01, rel=0.05)
    np.testing.assert_array_equal(pca_2d(x)[0], points)  # deterministic


def test_pca_rejects_bad_shapes():
    with pytest.raises(ValueError, match="features"):
        pca_2d(np.zeros(5))
    with pytest.raises(ValueError, match="features"):
        pca_2d(np.zeros((1, 4)))
