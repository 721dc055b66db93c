"""From true crossings to measured hits: smearing, module ids and cell clusters.

Everything is vectorised over hits with per-layer parameters gathered from `layer_table`.
"""

from __future__ import annotations

import numpy as np

from jaxhep.tracking.sim.detector import BarrelLayer, Detector

# Mean energy loss of a minimum-ionising particle in silicon, 1.664 MeV cm^2/g x 2.329 g/cm^3
# (PDG atomic and nuclear properties of Si), and the Landau most probable value for thin sensors,
# about 0.7 of the mean (PDG Review, "Passage of particles through matter", straggling section).
MIP_MPV_MEV_PER_MM = 0.7 * 0.3876
# Landau width relative to the most probable value (order 10 % for a few hundred micrometres of Si).
LANDAU_WIDTH = 0.1
# Longest cluster edge kept, in cells.
MAX_CLUSTER_CELLS = 32


def layer_table(detector: Detector) -> dict[str, np.ndarray]:
    """Per-layer parameters as arrays indexed by the position in `detector.layers`.

    Keys: is_barrel, volume_id, layer_id, radius, half_length, z, r_min, r_max, sigma_u, sigma_v,
    pitch_u, pitch_v, thickness, n_phi / n_z (barrel), rings (endcap: [n_layers, 3] phi bins, 0 = none).
    """
    layers = detector.layers
    rings = np.zeros((len(layers), 3), np.int64)
    for i, layer in enumerate(layers):
        if not isinstance(layer, BarrelLayer):
            rings[i, : len(layer.ring_phi_bins)] = layer.ring_phi_bins

    def col(fn, dtype=np.float64):
        return np.array([fn(layer) for layer in layers], dtype=dtype)

    barrel = col(lambda layer: isinstance(layer, BarrelLayer), bool)
    get = lambda name, default=0.0: col(lambda layer: getattr(layer, name, default))
    return dict(
        is_barrel=barrel,
        volume_id=col(lambda layer: layer.volume_id, np.int64),
        layer_id=col(lambda layer: layer.layer_id, np.int64),
        radius=get("radius"),
        half_length=get("half_length"),
        z=get("z"),
        r_min=get("r_min"),
        r_max=get("r_max"),
        sigma_u=col(lambda layer: layer.technology.resolution_u),
        sigma_v=col(lambda layer: layer.technology.resolution_v),
        pitch_u=col(lambda layer: layer.technology.pitch_u),
        pitch_v=col(lambda layer: layer.technology.pitch_v),
        thickness=col(lambda layer: layer.technology.thickness),
        n_phi=col(lambda layer: getattr(layer, "n_phi", 0), np.int64),
        n_z=col(lambda layer: getattr(layer, "n_z", 0), np.int64),
        rings=rings,
    )


def smear(table, layer: np.ndarray, position: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Measured positions [n, 3]: Gaussian in r-phi (sigma_u) and along z / r (sigma_v).

    A barrel hit stays on its cylinder and an endcap hit on its disk, inside the active area.
    """
    barrel = table["is_barrel"][layer]
    r = np.hypot(position[:, 0], position[:, 1])
    phi = np.arctan2(position[:, 1], position[:, 0])
    du, dv = rng.standard_normal((2, len(layer)))
    half = table["half_length"][layer]
    z = np.where(
        barrel, np.clip(position[:, 2] + dv * table["sigma_v"][layer], -half, half), table["z"][layer]
    )
    r_meas = np.where(
        barrel,
        table["radius"][layer],
        np.clip(r + dv * table["sigma_v"][layer], table["r_min"][layer], table["r_max"][layer]),
    )
    phi = phi + du * table["sigma_u"][layer] / np.maximum(r_meas, 1e-9)
    return np.stack([r_meas * np.cos(phi), r_meas * np.sin(phi), z], axis=1)


def module_coordinates(table, layer: np.ndarray, position: np.ndarray):
    """Module id (1-based within the layer) and the local (u, v) position in the module, in mm.

    Barrel modules are (phi, z) bins, endcap modules (ring, phi) bins with equal-width rings.
    Returns module_id [n] int64, u [n], v [n].
    """
    barrel = table["is_barrel"][layer]
    r = np.hypot(position[:, 0], position[:, 1])
    phi01 = (np.arctan2(position[:, 1], position[:, 0]) + np.pi) / (2 * np.pi) % 1.0

    # Barrel: phi bins inside z bins.
    n_phi = np.maximum(table["n_phi"][layer], 1)
    n_z = np.maximum(table["n_z"][layer], 1)
    half = np.maximum(table["half_length"][layer], 1e-9)
    z01 = np.clip((position[:, 2] + half) / (2 * half), 0.0, 1.0 - 1e-12)
    iz = np.floor(z01 * n_z).astype(np.int64)
    iphi_b = np.floor(phi01 * n_phi).astype(np.int64) % n_phi
    mod_b = iz * n_phi + iphi_b + 1
    u_b = (phi01 * n_phi - iphi_b) * 2 * np.pi * r / n_phi
    v_b = (z01 * n_z - iz) * 2 * half / n_z

    # Endcap: rings of equal radial width, each with its own number of phi modules.
    rings = table["rings"][layer]
    n_rings = np.maximum((rings > 0).sum(axis=1), 1)
    r_min, r_max = table["r_min"][layer], table["r_max"][layer]
    width = np.maximum(r_max - r_min, 1e-9)
    r01 = np.clip((r - r_min) / width, 0.0, 1.0 - 1e-12)
    ring = np.floor(r01 * n_rings).astype(np.int64)
    ring_bins = np.maximum(np.take_along_axis(rings, ring[:, None], axis=1)[:, 0], 1)
    offset = np.where(ring > 0, rings[:, 0], 0) + np.where(ring > 1, rings[:, 1], 0)
    iphi_e = np.floor(phi01 * ring_bins).astype(np.int64) % ring_bins
    mod_e = offset + iphi_e + 1
    u_e = (phi01 * ring_bins - iphi_e) * 2 * np.pi * r / ring_bins
    v_e = (r01 * n_rings - ring) * width / n_rings

    return np.where(barrel, mod_b, mod_e), np.where(barrel, u_b, u_e), np.where(barrel, v_b, v_e)


def cluster_cells(
    table,
    layer: np.ndarray,
    position: np.ndarray,
    momentum: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Cells of each hit: a line of cells whose length grows with the crossing angle.

    A track crossing a sensor of thickness t spreads its charge over the projection of its path,
    t * tan(a) along each local axis (a: the angle to the normal in that plane), so it spans on average
    1 + t tan(a) / pitch cells per axis (the random offset of the segment in the grid supplies the
    fraction); the cluster is the digital line joining the two ends. The deposited energy follows a
    Landau (Moyal) law scaled by the path length and is shared between the cells at random.

    Returns hit (row index into the inputs), ch0, ch1 (int64) and value (MeV) per cell.
    """
    n = len(layer)
    barrel = table["is_barrel"][layer]
    phi = np.arctan2(position[:, 1], position[:, 0])
    p = np.linalg.norm(momentum, axis=1)
    d = momentum / np.maximum(p, 1e-300)[:, None]
    d_radial = d[:, 0] * np.cos(phi) + d[:, 1] * np.sin(phi)
    d_phi = -d[:, 0] * np.sin(phi) + d[:, 1] * np.cos(phi)
    d_normal = np.maximum(np.abs(np.where(barrel, d_radial, d[:, 2])), 1e-3)
    d_v = np.abs(np.where(barrel, d[:, 2], d_radial))
    t = table["thickness"][layer]
    pitch_u, pitch_v = table["pitch_u"][layer], table["pitch_v"][layer]
    spread = rng.random((2, n))
    n_u = np.minimum(1 + np.floor(t * np.abs(d_phi) / d_normal / pitch_u + spread[0]), MAX_CLUSTER_CELLS)
    n_v = np.minimum(1 + np.floor(t * d_v / d_normal / pitch_v + spread[1]), MAX_CLUSTER_CELLS)
    n_u, n_v = n_u.astype(np.int64), n_v.astype(np.int64)

    # The cells along the projected segment: a digital line of max(n_u, n_v) cells, rising or falling
    # with the sign of the direction in (u, v).
    size = np.maximum(n_u, n_v)
    hit = np.repeat(np.arange(n), size)
    k = np.arange(len(hit)) - np.repeat(np.cumsum(size) - size, size)
    du = k * n_u[hit] // size[hit]
    dv = k * n_v[hit] // size[hit]
    flip = (d_phi * np.where(barrel, d[:, 2], d_radial) < 0)[hit]
    dv = np.where(flip, n_v[hit] - 1 - dv, dv)
    ch0 = np.maximum(np.floor(u / pitch_u).astype(np.int64) - (n_u - 1) // 2, 0)[hit] + du
    ch1 = np.maximum(np.floor(v / pitch_v).astype(np.int64) - (n_v - 1) // 2, 0)[hit] + dv

    # Standard Moyal variate (mode 0): -ln(Z^2) for Z ~ N(0, 1).
    moyal = np.minimum(-np.log(np.maximum(rng.standard_normal(n) ** 2, 1e-300)), 30.0)
    energy = MIP_MPV_MEV_PER_MM * t / d_normal * np.maximum(1.0 + LANDAU_WIDTH * moyal, 0.2)
    share = rng.gamma(2.0, size=len(hit))
    share /= np.bincount(hit, weights=share, minlength=n)[hit]
    return dict(hit=hit, ch0=ch0, ch1=ch1, value=energy[hit] * share)
