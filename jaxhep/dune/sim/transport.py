"""Electrons and photons of a few MeV in liquid argon, stepped in vectorised batches.

`shower` follows electrons and photons generation by generation and returns the energy deposits
as straight *segments* (start, end, energy), each owned by an event and tagged with its source:

- electrons above `stepping_threshold` are stepped together (one NumPy pass per step over every
  live electron): continuous restricted collision loss, Moller delta rays above `delta_cut` and
  bremsstrahlung photons above `brems_cut` as discrete secondaries, Highland multiple scattering
  per step (angle and correlated lateral offset); the step is min(max_step, step_fraction x
  residual range), so the end of a track, where scattering is strongest, is resolved (the
  scattering floor of `floor.py` moves by < 10 % from 3 mm to 0.5 mm steps);
- electrons below it (most delta rays and Compton electrons: "blips") deposit along a straight
  segment of 0.6 x their CSDA range (a typical projected-range / CSDA ratio of MeV electrons);
- photons interact after exponential free paths: Compton scattering (Klein-Nishina), pair
  production (one electron carrying E - 2 m_e; annihilation photons dropped) or, below 0.15 MeV,
  absorption; a photon left after `max_photon_interactions` escapes.

Units: mm, MeV. Source tags: PRIMARY (the interaction's electron and its delta rays), GAMMA
(electrons set free by photons: bremsstrahlung and de-excitation), RADIOLOGICAL.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxhep.dune.sim import argon
from jaxhep.dune.sim.neutrino import orthonormal_basis, rotate_to

PRIMARY, GAMMA, RADIOLOGICAL = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class TransportConfig:
    """Knobs of the stepping (mm, MeV)."""

    max_step: float = 3.0  # below the 4.7 mm wire pitch
    step_fraction: float = 0.2  # of the residual range
    min_step: float = 0.05
    stop_energy: float = 0.1  # deposited on the spot below this (range 0.15 mm)
    delta_cut: float = 1.0  # delta rays above 1 MeV (range >= 4 mm, about a wire pitch) are explicit
    brems_cut: float = 0.2  # photons above 0.2 MeV are explicit
    stepping_threshold: float = 2.0  # secondaries below this are straight blips
    blip_range_factor: float = 0.6
    max_photon_interactions: int = 4
    max_generations: int = 6
    max_steps: int = 2000
    multiple_scattering: bool = True


@dataclasses.dataclass
class Particles:
    """A batch of particles: position, direction [n, 3]; energy, owner (event), source [n]; primary [n]."""

    position: np.ndarray
    direction: np.ndarray
    energy: np.ndarray
    owner: np.ndarray
    source: np.ndarray
    primary: np.ndarray  # True for the interaction's electron itself: its path length is recorded

    def __len__(self) -> int:
        return len(self.energy)

    def select(self, mask: np.ndarray) -> Particles:
        return Particles(*(getattr(self, f.name)[mask] for f in dataclasses.fields(self)))

    @staticmethod
    def concat(parts: list[Particles]) -> Particles:
        return Particles(
            *(np.concatenate([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(Particles))
        )

    @staticmethod
    def make(position, direction, energy, owner, source, primary=False) -> Particles:
        """Particles from arrays; `source` and `primary` may be scalars (broadcast to [n])."""
        n = len(energy)
        return Particles(
            np.asarray(position, np.float64).reshape(n, 3),
            np.asarray(direction, np.float64).reshape(n, 3),
            np.asarray(energy, np.float64),
            np.asarray(owner, np.int64),
            np.broadcast_to(np.asarray(source, np.int8), (n,)).copy(),
            np.broadcast_to(np.asarray(primary, bool), (n,)).copy(),
        )


@dataclasses.dataclass
class Segments:
    """Energy deposits: start, end [s, 3] (mm); energy [s] (MeV); owner, source [s]; path [s].

    `path` is the primary electron's path length (mm) at the segment's middle, NaN for others.
    """

    start: np.ndarray
    end: np.ndarray
    energy: np.ndarray
    owner: np.ndarray
    source: np.ndarray
    path: np.ndarray

    def __len__(self) -> int:
        return len(self.energy)

    def select(self, mask: np.ndarray) -> Segments:
        return Segments(*(getattr(self, f.name)[mask] for f in dataclasses.fields(self)))

    @staticmethod
    def concat(parts: list[Segments]) -> Segments:
        return Segments(
            *(np.concatenate([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(Segments))
        )


def _empty_segments() -> Segments:
    z3, z = np.zeros((0, 3)), np.zeros(0)
    return Segments(z3, z3, z, np.zeros(0, np.int64), np.zeros(0, np.int8), z)


def highland(kinetic: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Highland width (rad) of the projected scattering angle over `step` mm (PDG eq. 34.15)."""
    _, beta = argon.gamma_beta(kinetic)
    x = np.maximum(step / argon.RADIATION_LENGTH_MM, 1e-6)
    return 13.6 / (beta * argon.momentum(kinetic)) * np.sqrt(x) * np.maximum(1.0 + 0.038 * np.log(x), 0.1)


def blip_segments(rng: np.random.Generator, e: Particles, config: TransportConfig) -> Segments:
    """Straight deposits of short electrons, cut into pieces of at most max_step."""
    if len(e) == 0:
        return _empty_segments()
    length = config.blip_range_factor * argon.csda_range(e.energy)
    pieces = np.maximum(np.ceil(length / config.max_step).astype(np.int64), 1)
    row = np.repeat(np.arange(len(e)), pieces)
    first = np.repeat(np.cumsum(pieces) - pieces, pieces)
    k = np.arange(len(row)) - first
    frac0, frac1 = k / pieces[row], (k + 1) / pieces[row]
    base, step = e.position[row], (e.direction * length[:, None])[row]
    path = np.where(e.primary[row], (frac0 + frac1) / 2 * length[row], np.nan)
    return Segments(
        base + frac0[:, None] * step,
        base + frac1[:, None] * step,
        e.energy[row] / pieces[row],
        e.owner[row],
        e.source[row],
        path,
    )


def _scatter(rng, p, d, ds, kinetic, config: TransportConfig) -> tuple[np.ndarray, np.ndarray]:
    """End point [m, 3] and new direction [m, 3] of steps ds [m] from p along d with multiple scattering.

    Per projected plane (PDG eqs. 34.16-34.20): angle theta0 z2 and the correlated lateral offset
    ds theta0 (z1 / sqrt(12) + z2 / 2), so a step does not run straight along its initial direction.
    """
    if not config.multiple_scattering:
        return p + ds[:, None] * d, d
    theta0 = highland(kinetic, ds)
    z1, z2 = rng.normal(0.0, 1.0, (2, len(ds), 2))
    angle = z2 * theta0[:, None]
    lateral = np.clip(
        ds[:, None] * theta0[:, None] * (z1 / np.sqrt(12.0) + z2 / 2.0), -ds[:, None], ds[:, None]
    )
    e1, e2 = orthonormal_basis(d)
    end = p + ds[:, None] * d + lateral[:, :1] * e1 + lateral[:, 1:] * e2
    theta = np.minimum(np.hypot(angle[:, 0], angle[:, 1]), np.pi)
    sin_t = np.sin(theta) / np.maximum(theta, 1e-12)  # (cos phi, sin phi) sin(theta) = angle * sin_t
    new_d = np.cos(theta)[:, None] * d + sin_t[:, None] * (angle[:, :1] * e1 + angle[:, 1:] * e2)
    return end, new_d / np.linalg.norm(new_d, axis=1, keepdims=True)


def step_electrons(
    rng: np.random.Generator, e: Particles, config: TransportConfig
) -> tuple[Segments, Particles, Particles]:
    """Step a batch of electrons to rest; returns (segments, delta-ray electrons, photons)."""
    pos, direction, energy = e.position.copy(), e.direction.copy(), e.energy.copy()
    path = np.zeros(len(e))
    live = np.arange(len(e))
    segs: list[Segments] = []
    deltas: list[Particles] = []
    photons: list[Particles] = []
    for _ in range(config.max_steps):
        if live.size == 0:
            break
        t, p, d = energy[live], pos[live], direction[live]
        m = live.size
        residual = argon.csda_range(t)
        ds = np.clip(config.step_fraction * residual, config.min_step, config.max_step)
        last = (residual <= ds) | (t <= config.stop_energy)
        ds = np.where(last, np.minimum(residual, ds), ds)

        # Continuous loss: collision stopping power minus what the explicit delta rays carry.
        s_col = argon.collision_stopping_power(t)
        loss = (s_col - argon.delta_ray_mean_loss(t, config.delta_cut)) * ds
        # Delta rays: 1/T_d^2 on [cut, T/2], at most one per step (rate x step << 1).
        p_delta = 1.0 - np.exp(-argon.delta_ray_rate(t, config.delta_cut) * ds)
        has_delta = (rng.random(m) < p_delta) & ~last
        inv_cut = 1.0 / config.delta_cut
        inv = inv_cut - rng.random(m) * (inv_cut - 2.0 / np.maximum(t, 2.0 * config.delta_cut))
        t_delta = np.where(has_delta, 1.0 / inv, 0.0)
        # Bremsstrahlung: 1/k photons on [cut, T] whose mean energy loss is the radiative stopping power.
        kmin = config.brems_cut
        span = np.maximum(t - kmin, 1e-9)
        log_ratio = np.log(np.maximum(t / kmin, 1.0))
        rate = argon.radiative_stopping_power(t) * log_ratio / span
        has_brems = (rng.random(m) < 1.0 - np.exp(-rate * ds)) & ~last & (t > 2.0 * kmin)
        k = np.where(has_brems, kmin * np.exp(rng.random(m) * log_ratio), 0.0)
        k = np.minimum(k, np.maximum(t - loss - t_delta, 0.0))

        remaining = t - loss - t_delta - k
        last |= remaining <= config.stop_energy
        deposit = np.where(last, t - t_delta - k, loss)
        end, new_d = _scatter(rng, p, d, ds, np.maximum(t - 0.5 * (loss + t_delta + k), 0.01), config)
        on_track = e.primary[live]
        segs.append(
            Segments(
                p,
                end,
                deposit,
                e.owner[live],
                e.source[live],
                np.where(on_track, path[live] + ds / 2, np.nan),
            )
        )
        mid = p + 0.5 * ds[:, None] * d
        if has_delta.any():
            # Moller kinematics: cos(theta_d) = sqrt(T_d (T + 2m) / (T (T_d + 2m))).
            i = np.flatnonzero(has_delta)
            me = argon.ELECTRON_MASS
            cos_d = np.sqrt(t_delta[i] * (t[i] + 2 * me) / (t[i] * (t_delta[i] + 2 * me)))
            dd = rotate_to(d[i], np.clip(cos_d, -1, 1), rng.uniform(0, 2 * np.pi, i.size))
            deltas.append(Particles.make(mid[i], dd, t_delta[i], e.owner[live][i], e.source[live][i]))
        if has_brems.any():
            i = np.flatnonzero(has_brems & (k > 0))
            src = np.where(e.source[live][i] == PRIMARY, GAMMA, e.source[live][i])
            photons.append(Particles.make(mid[i], d[i], k[i], e.owner[live][i], src))

        pos[live], direction[live], energy[live] = end, new_d, np.where(last, 0.0, remaining)
        path[live] += ds
        live = live[~last]
    empty = Particles.make(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0), np.zeros(0), 0)
    return (
        Segments.concat(segs) if segs else _empty_segments(),
        Particles.concat(deltas) if deltas else empty,
        Particles.concat(photons) if photons else empty,
    )


def _klein_nishina(rng: np.random.Generator, kappa: np.ndarray) -> np.ndarray:
    """E'/E [n] of Compton scattering for kappa = E / m_e [n] (Butcher & Messel sampling, as Geant4)."""
    eps = np.empty_like(kappa)
    todo = np.arange(kappa.size)
    while todo.size:
        kap = kappa[todo]
        eps0 = 1.0 / (1.0 + 2.0 * kap)
        a1, a2 = -np.log(eps0), 0.5 * (1.0 - eps0**2)
        u1, u2, u3 = rng.random((3, todo.size))
        e = np.where(u1 < a1 / (a1 + a2), np.exp(-a1 * u2), np.sqrt(eps0**2 + (1.0 - eps0**2) * u2))
        tt = (1.0 - e) / (kap * e)
        sin2 = np.clip(tt * (2.0 - tt), 0.0, 1.0)
        ok = u3 <= 1.0 - e * sin2 / (1.0 + e**2)
        eps[todo[ok]] = e[ok]
        todo = todo[~ok]
    return eps


def interact_photons(rng: np.random.Generator, g: Particles, config: TransportConfig) -> Particles:
    """Follow photons through up to max_photon_interactions; returns the electrons they set free."""
    me = argon.ELECTRON_MASS
    out: list[Particles] = []
    pos, d, energy = g.position.copy(), g.direction.copy(), g.energy.copy()
    live = np.flatnonzero(energy > 0.05)
    for _ in range(config.max_photon_interactions):
        if live.size == 0:
            break
        m = live.size
        e = energy[live]
        p = pos[live] + rng.exponential(argon.photon_attenuation_length(e))[:, None] * d[live]
        absorbed = e < 0.15
        pair = ~absorbed & (rng.random(m) < argon.pair_fraction(e))
        compton = ~absorbed & ~pair
        eps = np.ones(m)
        eps[compton] = _klein_nishina(rng, e[compton] / me)
        cos_g = np.clip(1.0 - (1.0 / eps - 1.0) * me / e, -1.0, 1.0)
        new_d = rotate_to(d[live], cos_g, rng.uniform(0, 2 * np.pi, m))
        e_out = eps * e
        # Electron: the photon's energy loss, along the momentum transfer (pair: along the photon).
        t_e = np.where(compton, e - e_out, np.where(pair, e - 2 * me, e))
        p_e = e[:, None] * d[live] - e_out[:, None] * new_d
        norm = np.linalg.norm(p_e, axis=1, keepdims=True)
        e_dir = np.where(compton[:, None] & (norm > 1e-9), p_e / np.maximum(norm, 1e-12), d[live])
        keep = t_e > 0.01
        out.append(Particles.make(p[keep], e_dir[keep], t_e[keep], g.owner[live][keep], g.source[live][keep]))
        pos[live], d[live] = p, new_d
        energy[live] = np.where(compton, e_out, 0.0)
        live = live[compton & (e_out > 0.05)]
    if not out:
        return Particles.make(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0), np.zeros(0), 0)
    return Particles.concat(out)


def shower(
    rng: np.random.Generator,
    electrons: Particles,
    photons: Particles,
    config: TransportConfig = TransportConfig(),
) -> Segments:
    """Every deposit of these electrons, photons and all their secondaries, as Segments."""
    segs = []
    for _ in range(config.max_generations):
        if len(electrons) == 0 and len(photons) == 0:
            break
        stepped = (electrons.energy >= config.stepping_threshold) | electrons.primary
        segs.append(blip_segments(rng, electrons.select(~stepped), config))
        s, deltas, new_photons = step_electrons(rng, electrons.select(stepped), config)
        segs.append(s)
        electrons = Particles.concat([deltas, interact_photons(rng, photons, config)])
        photons = new_photons
    segs = [s for s in segs if len(s)]
    return Segments.concat(segs) if segs else _empty_segments()
