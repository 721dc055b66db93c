"""Event display: hits and found tracks in the transverse (x-y) and longitudinal (r-z) views."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxhep import plots


def event_display(
    x: np.ndarray,
    y: np.ndarray,
    z: np.ndarray,
    track_id: np.ndarray,
    path: str | Path,
    n_tracks: int = 40,
    title: str = "",
) -> Path | None:
    """Two panels: all hits in grey, the `n_tracks` longest found tracks in colour.

    x, y, z: [N] hit positions (mm); track_id: [N] the track of each hit.
    """
    fig, axes = plots.figure(6.0, 5.5, ncols=2)
    if fig is None:
        return None
    ax_xy, ax_rz = axes
    ids, counts = np.unique(track_id, return_counts=True)
    shown = ids[np.argsort(-counts)[:n_tracks]]
    r = np.hypot(x, y)
    for ax, (u, v, labels) in ((ax_xy, (x, y, ("x [mm]", "y [mm]"))), (ax_rz, (z, r, ("z [mm]", "r [mm]")))):
        ax.scatter(u, v, s=0.2, c="0.8", rasterized=True)
        for i, t in enumerate(shown):
            sel = track_id == t
            order = np.argsort(r[sel])
            ax.plot(u[sel][order], v[sel][order], "-o", ms=1.5, lw=0.8, color=f"C{i % 10}")
        ax.set_xlabel(labels[0])
        ax.set_ylabel(labels[1])
    ax_xy.set_aspect("equal")
    return plots.save(fig, path, title or f"hits (grey) and the {len(shown)} longest found tracks")
