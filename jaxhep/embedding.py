"""2-D embeddings of learned features for plots (the penultimate layer coloured by class)."""

from __future__ import annotations

import numpy as np


def pca_2d(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Projection of features [N, D] on their two leading principal components.

    Returns (points [N, 2], explained variance ratio [2]). Centred, not scaled; signs fixed so
    that each component's largest loading is positive (deterministic across runs).
    """
    x = np.asarray(features, np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"features must be [N >= 2, D], got {x.shape}")
    x = x - x.mean(0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    vt = vt[:2] * np.sign(vt[:2][np.arange(min(2, len(vt))), np.argmax(np.abs(vt[:2]), 1)])[:, None]
    variance = s**2
    ratio = variance[:2] / max(variance.sum(), 1e-300)
    points = x @ vt.T
    if points.shape[1] < 2:  # one feature: pad the second axis
        points = np.pad(points, ((0, 0), (0, 2 - points.shape[1])))
        ratio = np.pad(ratio, (0, 2 - len(ratio)))
    return points, ratio
