"""A classical baseline for the electron's axis: principal axes of the three cluster images.

No learning. In each plane the charge-weighted covariance of the pixels, in mm (drift: 0.8 mm per
tick; across the wires: the plane's pitch), gives the track's projected line; a 3-D axis d projects
onto plane p as (d_x, d . pitch_p), so that line says n_p . d = 0 with

    n_p = (w_p, -x_p pitch_p)          (x_p, w_p): the projected line's unit direction.

The axis is the vector most nearly orthogonal to the three n_p (weighted by how elongated each
projection is: a round blob says little), i.e. the smallest right singular vector of [n_U; n_V; n_X].
With the X plane alone, d_y is unseen: the axis is taken in the x-z plane (d_y = 0).

No sense (head vs tail) either way: compare with `metrics.axis_error_deg`. A network has to beat
this to have learnt anything beyond the images' second moments (BUILD_NOTES, "Axis and sense").
"""

from __future__ import annotations

import numpy as np

from jaxhep.dune.images import adc_of
from jaxhep.dune.sim import geometry


def plane_lines(images: np.ndarray, plane: geometry.WirePlane) -> tuple[np.ndarray, np.ndarray]:
    """Projected lines of cluster images [N, T, C] (log-normalised) on `plane`.

    Returns (normals [N, 3], elongation [N] in [0, 1]: 0 a round blob or an empty image, 1 a line).
    """
    adc = np.where(images > 0, adc_of(images), 0.0)
    t = (np.arange(images.shape[1]) + 0.5) * geometry.TICK_MM
    c = (np.arange(images.shape[2]) + 0.5) * plane.pitch_mm
    total = adc.sum((1, 2))
    safe = np.where(total > 0, total, 1.0)
    rows, cols = adc.sum(2), adc.sum(1)  # [N, T], [N, C]
    mx, mw = rows @ t / safe, cols @ c / safe
    cxx = rows @ t**2 / safe - mx**2
    cww = cols @ c**2 / safe - mw**2
    cxw = np.einsum("ntc,t,c->n", adc, t, c) / safe - mx * mw
    angle = 0.5 * np.arctan2(2 * cxw, cxx - cww)  # major axis in the (x, w) plane
    spread = np.hypot(cxx - cww, 2 * cxw)
    trace = cxx + cww
    elongation = np.where((total > 0) & (trace > 0), spread / np.where(trace > 0, trace, 1.0), 0.0)
    x_p, w_p = np.cos(angle), np.sin(angle)
    normals = w_p[:, None] * np.array([1.0, 0.0, 0.0]) - x_p[:, None] * plane.pitch_direction[None, :]
    return normals, elongation


def principal_axes(images: dict[str, np.ndarray]) -> np.ndarray:
    """Axes [N, 3] (unit, sign arbitrary) from {images_u, images_v, images_x} [N, 128, 16] (all three
    planes) or {images_x} alone."""
    if set(images) >= {"images_u", "images_v", "images_x"}:
        lines = [plane_lines(np.asarray(images[f"images_{p.name.lower()}"]), p) for p in geometry.PLANES]
        stacked = np.stack([n * e[:, None] for n, e in lines], axis=1)  # [N, 3 planes, 3]
        return np.linalg.svd(stacked)[2][:, -1]
    normal, _ = plane_lines(np.asarray(images["images_x"]), geometry.X)
    axis = np.cross(normal, np.array([0.0, 1.0, 0.0]))  # in the x-z plane, orthogonal to n_X
    return axis / np.maximum(np.linalg.norm(axis, axis=1, keepdims=True), 1e-12)
