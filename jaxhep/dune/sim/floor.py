"""The multiple-scattering floor of electron direction regression: what a track's start tells.

An electron of 5-50 MeV scatters by many degrees within a few cm of argon (Highland: ~10 degrees
per 3 mm at 10 MeV), so even a perfect image of its deposits does not give back its initial
direction. We measure it on simulated tracks: the charge-weighted principal axis of the true
deposits within the first L mm of path is compared with the initial direction, as an *axis*
error (direction up to sign) and, orienting the axis away from the true start, as a *direction*
error. With `voxel_mm=None` the true deposits are used (no detector effects: with L -> 0 the
error goes to 0, an unphysical limit); with `voxel_mm` the deposits are first binned into voxels
of the readout's granularity (0.8 mm of drift x 4.7 mm wire pitch in y and z, at a random offset
per track), so a short start is blurred by the pitch: the minimum over L is then a realistic
floor. Diffusion, thresholds and the 2-D projections are not included, and the head-tail
ambiguity comes on top for the full angular error.
"""

from __future__ import annotations

import numpy as np

from jaxhep.dune.sim.neutrino import isotropic
from jaxhep.dune.sim.transport import PRIMARY, Particles, TransportConfig, shower


def principal_axes(
    points: np.ndarray, weights: np.ndarray, owner: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted centroid [n, 3] and principal axis [n, 3] (unit, largest-variance) per owner."""
    w = np.bincount(owner, weights, minlength=n)
    safe = np.maximum(w, 1e-12)
    centroid = np.stack([np.bincount(owner, weights * points[:, i], minlength=n) for i in range(3)], 1)
    centroid /= safe[:, None]
    d = points - centroid[owner]
    cov = np.zeros((n, 3, 3))
    for i in range(3):
        for j in range(i, 3):
            cov[:, i, j] = cov[:, j, i] = np.bincount(owner, weights * d[:, i] * d[:, j], minlength=n) / safe
    _, vectors = np.linalg.eigh(cov)
    return centroid, vectors[:, :, -1]


def scattering_floor(
    energies=(5.0, 10.0, 20.0, 30.0, 50.0),
    lengths_mm=(10.0, 15.0, 20.0, 30.0, 50.0, np.inf),
    n: int = 1000,
    seed: int = 0,
    config: TransportConfig | None = None,
    voxel_mm: tuple[float, float, float] | None = None,
) -> dict[str, np.ndarray]:
    """Mean axis and direction errors (degrees) of the first-L-mm principal axis.

    n electrons per energy (MeV) start at the origin in isotropic directions. Returns dict of
    energies, lengths_mm, and axis_mean, axis_median, direction_mean, direction_median, each
    [len(energies), len(lengths_mm)]; lengths_mm may hold inf (the whole track).
    """
    rng = np.random.default_rng(seed)
    energies = np.asarray(energies, np.float64)
    lengths = np.asarray(lengths_mm, np.float64)
    k = energies.size
    start = np.zeros((k * n, 3))
    d0 = isotropic(rng, k * n)  # voxels are not isotropic: average over directions
    e = Particles.make(start, d0, np.repeat(energies, n), np.arange(k * n), PRIMARY, True)
    photons = Particles.make(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0), np.zeros(0), PRIMARY)
    seg = shower(rng, e, photons, config or TransportConfig())
    seg = seg.select(~np.isnan(seg.path))  # the primary's own track
    offset = rng.uniform(0.0, 1.0, (k * n, 3)) * (np.asarray(voxel_mm) if voxel_mm is not None else 0.0)
    shape = (k, lengths.size)
    out = {
        name: np.zeros(shape) for name in ("axis_mean", "axis_median", "direction_mean", "direction_median")
    }
    for j, length in enumerate(lengths):
        s = seg.select(seg.path <= length)
        # Four points along each segment, a quarter of its energy each: one segment has an axis.
        frac = np.array([0.125, 0.375, 0.625, 0.875])
        points = (s.start[:, None] + frac[None, :, None] * (s.end - s.start)[:, None]).reshape(-1, 3)
        owner = np.repeat(s.owner, 4)
        weights = np.repeat(s.energy, 4) / 4 + 1e-9
        if voxel_mm is not None:
            cell = np.asarray(voxel_mm)
            shift = offset[owner]
            points = (np.floor((points + shift) / cell) + 0.5) * cell - shift
        centroid, axis = principal_axes(points, weights, owner, k * n)
        cos = np.sum(axis * d0, axis=1)
        axis_err = np.degrees(np.arccos(np.clip(np.abs(cos), 0, 1)))
        sign = np.sign(np.sum(axis * (centroid - start), axis=1))
        dir_err = np.degrees(np.arccos(np.clip(sign * cos, -1, 1)))
        for i in range(k):
            rows = slice(i * n, (i + 1) * n)
            out["axis_mean"][i, j] = axis_err[rows].mean()
            out["axis_median"][i, j] = np.median(axis_err[rows])
            out["direction_mean"][i, j] = dir_err[rows].mean()
            out["direction_median"][i, j] = np.median(dir_err[rows])
    return dict(energies=energies, lengths_mm=lengths, **out)


def format_floor(floor: dict[str, np.ndarray]) -> str:
    """A Markdown table of mean axis / direction errors (degrees) per energy and path length."""
    heads = ["whole track" if np.isinf(v) else f"first {v / 10:g} cm" for v in floor["lengths_mm"]]
    heads.append("best L (axis)")
    lines = ["| T (MeV) | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
    for i, t in enumerate(floor["energies"]):
        cells = [f"{a:.1f} / {d:.1f}" for a, d in zip(floor["axis_mean"][i], floor["direction_mean"][i])]
        cells.append(f"{floor['axis_mean'][i].min():.1f}")
        lines.append(f"| {t:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


READOUT_VOXEL_MM = (0.8, 4.7, 4.7)  # one tick of drift x about one wire pitch


if __name__ == "__main__":
    print("mean axis error / mean direction error (degrees), true deposits, no detector effects")
    print(format_floor(scattering_floor()))
    print("\nsame, deposits binned in 0.8 x 4.7 x 4.7 mm voxels")
    print(format_floor(scattering_floor(voxel_mm=READOUT_VOXEL_MM)))
