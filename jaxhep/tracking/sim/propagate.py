"""Transport of charged particles through the detector: helices, surface crossings, multiple scattering.

A particle moves on a helix in the uniform solenoid field B along +z: in the transverse plane a circle
of radius R[mm] = 1000 * pT[GeV] / (0.3 * B[T]), along z a straight line in the transverse
arc length. A positive particle turns clockwise seen from +z (force q v x B).

The loop runs over crossings, not particles: at each step every live particle finds, analytically and
all at once, its next intersection with every cylinder and disk (sensitive layers, passive material,
the outer envelope), moves to the nearest one, records it if the surface is sensitive, and scatters
there with the Highland angle. A particle stops when it leaves the envelope or has turned `max_turns`
times around its circle (a crude stand-in for the energy loss and interactions that end real loopers).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jaxhep.tracking.sim.detector import Detector

# R[mm] = PT_TO_RADIUS * pT[GeV] / B[T]: R[m] = pT / (0.3 B) for a unit charge (0.3 = c / 1e9 rounded,
# the exact factor is 0.299792458).
PT_TO_RADIUS_MM = 1000.0 / 0.299792458

# Highland formula (PDG Review, "Passage of particles through matter"):
# theta0 = 13.6 MeV / (beta c p) * sqrt(x/X0) * (1 + 0.038 ln(x/X0)).
HIGHLAND_MEV = 13.6
HIGHLAND_LOG = 0.038

# A surface this close along the path is the one the particle already sits on.
_EPS_MM = 1e-4
# Grazing crossings: cap the path-length factor 1/cos(incidence) of the material.
_MAX_PATH_FACTOR = 20.0
_KIND_ENVELOPE = -1
_KIND_PASSIVE = -2


@dataclass(frozen=True)
class Crossings:
    """Sensitive-surface crossings, step by step: the rows of one particle are in the order it made them.

    particle: [n] index into the input particles;  layer: [n] index into `detector.layers`;
    position: [n, 3] mm;  momentum: [n, 3] GeV, just before the crossing (the truth tpx, tpy, tpz).
    """

    particle: np.ndarray
    layer: np.ndarray
    position: np.ndarray
    momentum: np.ndarray


def _surfaces(detector: Detector):
    """Flat arrays of cylinders (radius, half-length) and disks (z, r_min, r_max) with x/X0 and kind.

    kind >= 0 is the index of a sensitive layer in `detector.layers`.
    """
    cyl, disk = [], []
    for i, layer in enumerate(detector.layers):
        if hasattr(layer, "radius"):
            cyl.append((layer.radius, layer.half_length, layer.x_over_x0, i))
        else:
            disk.append((layer.z, layer.r_min, layer.r_max, layer.x_over_x0, i))
    for p in detector.passive:
        cyl.append((p.radius, p.half_length, p.x_over_x0, _KIND_PASSIVE))
    cyl.append((detector.envelope_r, detector.envelope_z, 0.0, _KIND_ENVELOPE))
    for z in (-detector.envelope_z, detector.envelope_z):
        disk.append((z, 0.0, detector.envelope_r, 0.0, _KIND_ENVELOPE))
    return np.array(cyl, dtype=np.float64), np.array(disk, dtype=np.float64)


def _next_crossing(pos, mom, q, b_field, budget, cyl, disk):
    """Arc length to the nearest surface for each particle.

    pos, mom: [n, 3]; q: [n]; budget: [n] turning angle left (rad). Returns (s [n] transverse arc, mm,
    inf if none within the budget; surface [n] index into concat(cyl, disk); radius [n]; centre [n, 2]).
    """
    pt = np.hypot(mom[:, 0], mom[:, 1])
    radius = PT_TO_RADIUS_MM * pt / b_field
    phi = np.arctan2(mom[:, 1], mom[:, 0])
    cx = pos[:, 0] + q * radius * np.sin(phi)
    cy = pos[:, 1] - q * radius * np.cos(phi)
    alpha0 = np.arctan2(pos[:, 1] - cy, pos[:, 0] - cx)
    cot = mom[:, 2] / pt
    s_max = (budget * radius)[:, None]
    two_pi = 2.0 * np.pi

    # Cylinders: |c + R (cos a, sin a)| = rho  <=>  cos(a - beta) = (rho^2 - d^2 - R^2) / (2 R d).
    d = np.hypot(cx, cy)[:, None]
    beta = np.arctan2(cy, cx)[:, None]
    r_ = radius[:, None]
    rho, half = cyl[None, :, 0], cyl[None, :, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        kappa = (rho**2 - d**2 - r_**2) / (2.0 * r_ * d)
    reachable = np.abs(kappa) <= 1.0
    delta = np.arccos(np.clip(kappa, -1.0, 1.0))
    s_cyl = np.full(kappa.shape, np.inf)
    for sign in (1.0, -1.0):
        turn = np.mod(-q[:, None] * (beta + sign * delta - alpha0[:, None]), two_pi)
        s = r_ * turn
        z = pos[:, 2:3] + s * cot[:, None]
        ok = reachable & (s > _EPS_MM) & (s <= s_max) & (np.abs(z) <= half)
        s_cyl = np.where(ok & (s < s_cyl), s, s_cyl)

    # Disks: z is linear in the arc, then check the radius there.
    zd, rmin, rmax = disk[None, :, 0], disk[None, :, 1], disk[None, :, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        s = (zd - pos[:, 2:3]) / cot[:, None]
    s = np.where(np.isfinite(s), s, -1.0)
    alpha = alpha0[:, None] - q[:, None] * s / r_
    xr = cx[:, None] + r_ * np.cos(alpha)
    yr = cy[:, None] + r_ * np.sin(alpha)
    rr = np.hypot(xr, yr)
    ok = (s > _EPS_MM) & (s <= s_max) & (rr >= rmin) & (rr <= rmax)
    s_disk = np.where(ok, s, np.inf)

    s_all = np.concatenate([s_cyl, s_disk], axis=1)
    surface = np.argmin(s_all, axis=1)
    s_best = s_all[np.arange(len(surface)), surface]
    return s_best, surface, radius, np.stack([cx, cy], axis=1)


def _scatter(mom, x_over_x0, mass, rng):
    """Rotate each momentum by a Highland-distributed polar angle; |p| is kept. mom: [n, 3]."""
    p = np.linalg.norm(mom, axis=1)
    beta = p / np.sqrt(p**2 + mass**2)
    x = np.maximum(x_over_x0, 1e-12)
    theta0 = HIGHLAND_MEV * 1e-3 / (beta * p) * np.sqrt(x) * (1.0 + HIGHLAND_LOG * np.log(x))
    theta0 = np.where(x_over_x0 > 0, np.maximum(theta0, 0.0), 0.0)
    # Two independent projected angles of width theta0 give the space angle.
    t1, t2 = rng.standard_normal((2, len(p))) * theta0
    d = mom / p[:, None]
    u = np.stack([-d[:, 1], d[:, 0], np.zeros_like(p)], axis=1)
    u /= np.maximum(np.linalg.norm(u, axis=1), 1e-300)[:, None]
    v = np.cross(d, u)
    theta = np.hypot(t1, t2)
    psi = np.arctan2(t2, t1)
    new_d = (
        d * np.cos(theta)[:, None]
        + (u * np.cos(psi)[:, None] + v * np.sin(psi)[:, None]) * np.sin(theta)[:, None]
    )
    return new_d * p[:, None]


def propagate(
    detector: Detector,
    vertex: np.ndarray,
    momentum: np.ndarray,
    charge: np.ndarray,
    mass: np.ndarray,
    rng: np.random.Generator,
    max_turns: float = 1.0,
    multiple_scattering: bool = True,
    max_steps: int = 200,
) -> Crossings:
    """Transport particles from their vertices and return their sensitive-surface crossings.

    vertex, momentum: [n, 3] (mm, GeV); charge: [n] (+-1); mass: [n] GeV.
    """
    cyl, disk = _surfaces(detector)
    n_cyl = len(cyl)
    kind = np.concatenate([cyl[:, 3], disk[:, 4]]).astype(np.int64)
    x0 = np.concatenate([cyl[:, 2], disk[:, 3]])
    is_disk = np.arange(len(kind)) >= n_cyl

    live = np.flatnonzero(charge != 0)
    pos = vertex[live].astype(np.float64)
    mom = momentum[live].astype(np.float64)
    q = charge[live].astype(np.float64)
    m = mass[live].astype(np.float64)
    budget = np.full(len(live), 2.0 * np.pi * max_turns)
    out_p, out_l, out_x, out_m = [], [], [], []

    for _ in range(max_steps):
        if len(live) == 0:
            break
        s, surf, radius, centre = _next_crossing(pos, mom, q, detector.b_field, budget, cyl, disk)
        go = np.isfinite(s) & (kind[surf] != _KIND_ENVELOPE)
        live, pos, mom, q, m, budget = live[go], pos[go], mom[go], q[go], m[go], budget[go]
        s, surf, radius, centre = s[go], surf[go], radius[go], centre[go]

        # Move along the helix by the transverse arc s.
        turn = s / radius
        pt = np.hypot(mom[:, 0], mom[:, 1])
        phi = np.arctan2(mom[:, 1], mom[:, 0]) - q * turn
        alpha = np.arctan2(pos[:, 1] - centre[:, 1], pos[:, 0] - centre[:, 0]) - q * turn
        pos = np.stack(
            [
                centre[:, 0] + radius * np.cos(alpha),
                centre[:, 1] + radius * np.sin(alpha),
                pos[:, 2] + s * mom[:, 2] / pt,
            ],
            axis=1,
        )
        mom = np.stack([pt * np.cos(phi), pt * np.sin(phi), mom[:, 2]], axis=1)
        budget = budget - turn

        k = kind[surf]
        sensitive = k >= 0
        out_p.append(live[sensitive])
        out_l.append(k[sensitive])
        out_x.append(pos[sensitive])
        out_m.append(mom[sensitive])

        if multiple_scattering:
            # Material seen along the path: x/X0 over |cos| of the angle to the surface normal.
            p = np.linalg.norm(mom, axis=1)
            r_pos = np.maximum(np.hypot(pos[:, 0], pos[:, 1]), 1e-12)
            cos_radial = np.abs(pos[:, 0] * mom[:, 0] + pos[:, 1] * mom[:, 1]) / (r_pos * p)
            cos_inc = np.where(is_disk[surf], np.abs(mom[:, 2]) / p, cos_radial)
            factor = np.minimum(1.0 / np.maximum(cos_inc, 1e-12), _MAX_PATH_FACTOR)
            mom = _scatter(mom, x0[surf] * factor, m, rng)

    if not out_p:
        empty = np.zeros((0, 3))
        return Crossings(np.zeros(0, np.int64), np.zeros(0, np.int64), empty, empty)
    return Crossings(
        np.concatenate(out_p), np.concatenate(out_l), np.concatenate(out_x), np.concatenate(out_m)
    )
