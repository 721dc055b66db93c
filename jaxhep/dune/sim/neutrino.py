"""Supernova neutrinos interacting in argon: the spectrum, ES nu-e and CC nu_e + 40Ar kinematics.

Both channels return one electron per event (kinetic energy and direction, the regression label);
CC also returns the energies of the de-excitation photons of 40K*. Directions are unit vectors in
the detector frame (x = drift, y, z); the neutrino direction is drawn isotropically per event so
that a training set covers every direction (a real burst comes from one direction).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from jaxhep.dune.sim.argon import ELECTRON_MASS, gamma_beta

SIN2_THETA_W = 0.2312  # weak mixing angle (PDG)
# nu_e - e elastic scattering couplings including the charged-current (W exchange) part:
# g_L = 1/2 + sin^2(theta_W), g_R = sin^2(theta_W) ('t Hooft 1971; Vogel & Engel, PRD 39 (1989) 3378).
G_L, G_R = 0.5 + SIN2_THETA_W, SIN2_THETA_W
# 40K - 40Ar atomic mass difference (AME 2020; the 40K electron-capture Q value): the CC threshold.
CC_Q_VALUE = 1.5044
# 40K* levels fed by nu_e CC (MeV) and relative strengths B(GT) or B(F), simplified after
# Bhattacharya et al., PRC 80 (2009) 055501 and the MARLEY level table: the isobaric analogue
# state at 4.38 MeV takes the Fermi strength N - Z = 4, Gamow-Teller strength spreads over the rest.
CC_LEVELS_MEV = np.array([2.29, 2.73, 3.11, 3.80, 4.38, 5.0, 6.1])
CC_LEVEL_STRENGTH = np.array([0.9, 1.5, 0.9, 0.9, 4.0, 1.0, 1.2])
CC_FERMI_LEVEL = 4  # index of the isobaric analogue state (Fermi transition)
MAX_GAMMAS = 3


def isotropic(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit vectors uniform on the sphere, [n, 3]."""
    cos_t = rng.uniform(-1.0, 1.0, n)
    phi = rng.uniform(0.0, 2.0 * np.pi, n)
    sin_t = np.sqrt(1.0 - cos_t**2)
    return np.stack([sin_t * np.cos(phi), sin_t * np.sin(phi), cos_t], axis=-1)


def orthonormal_basis(axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors [n, 3] perpendicular to unit `axis` [n, 3] and to each other."""
    helper = np.where(np.abs(axis[:, :1]) < 0.9, np.array([[1.0, 0.0, 0.0]]), np.array([[0.0, 1.0, 0.0]]))
    e1 = np.cross(axis, helper)
    e1 /= np.linalg.norm(e1, axis=-1, keepdims=True)
    return e1, np.cross(axis, e1)


def rotate_to(axis: np.ndarray, cos_theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Unit vectors [n, 3] at polar angle arccos(cos_theta) [n] and azimuth phi [n] about `axis` [n, 3]."""
    e1, e2 = orthonormal_basis(axis)
    sin_t = np.sqrt(np.clip(1.0 - cos_theta**2, 0.0, 1.0))[:, None]
    return cos_theta[:, None] * axis + sin_t * (np.cos(phi)[:, None] * e1 + np.sin(phi)[:, None] * e2)


def supernova_energy(rng: np.random.Generator, n: int, mean: float, alpha: float, weight_power: int = 0):
    """Neutrino energies [n] (MeV) from the pinched spectrum times E^weight_power.

    Pinched ("alpha-fit") spectrum f(E) ~ E^alpha exp(-(alpha + 1) E / <E>) (Keil, Raffelt & Janka,
    ApJ 590 (2003) 971): a Gamma distribution; weighting by E^k (a cross section ~ E^k) raises its
    shape parameter by k.
    """
    return rng.gamma(alpha + 1.0 + weight_power, mean / (alpha + 1.0), n)


def _accept_until(rng: np.random.Generator, n: int, draw: Callable[[int], dict]) -> dict[str, np.ndarray]:
    """Call draw(m) -> dict with a boolean "accept" [m] until n rows are accepted; the first n of them."""
    parts, have = [], 0
    while have < n:
        m = max(2 * (n - have), 64)
        batch = draw(m)
        keep = batch.pop("accept")
        parts.append({k: v[keep] for k, v in batch.items()})
        have += int(keep.sum())
    return {k: np.concatenate([p[k] for p in parts])[:n] for k in parts[0]}


def _neutrino_energy(rng, m, spectrum, mean, alpha, energy_range, weight_power):
    if spectrum == "supernova":
        return supernova_energy(rng, m, mean, alpha, weight_power)
    if spectrum == "flat":  # covers the whole electron-energy window evenly, for resolution studies
        return rng.uniform(energy_range[0], energy_range[1] + 10.0, m)
    raise ValueError(f"unknown spectrum {spectrum!r} (supernova or flat)")


def es_max_kinetic(nu_energy: np.ndarray) -> np.ndarray:
    """Largest electron kinetic energy in nu-e scattering: 2 E^2 / (2 E + m_e), [...] MeV."""
    return 2.0 * nu_energy**2 / (2.0 * nu_energy + ELECTRON_MASS)


def es_cos_theta(nu_energy: np.ndarray, kinetic: np.ndarray) -> np.ndarray:
    """cos of the electron angle to the neutrino: (1 + m_e/E_nu) sqrt(T / (T + 2 m_e)), [...]."""
    return np.clip(
        (1.0 + ELECTRON_MASS / nu_energy) * np.sqrt(kinetic / (kinetic + 2.0 * ELECTRON_MASS)), -1.0, 1.0
    )


def elastic_scattering(
    rng: np.random.Generator,
    n: int,
    mean: float = 12.0,
    alpha: float = 2.5,
    energy_range: tuple[float, float] = (5.0, 50.0),
    spectrum: str = "supernova",
):
    """n ES events with the electron kinetic energy inside `energy_range` (MeV).

    E_nu from the spectrum times the ES cross section (~E_nu); T from dsigma/dT ~ g_L^2 +
    g_R^2 (1 - T/E)^2 - g_L g_R m_e T / E^2 on [0, 2E^2/(2E + m_e)] by rejection; the angle to the
    neutrino is fixed by T and E (es_cos_theta), the azimuth uniform.

    Returns: dict of nu_energy [n], nu_direction [n, 3], electron_energy [n], electron_direction [n, 3].
    """

    def draw(m):
        e_nu = _neutrino_energy(rng, m, spectrum, mean, alpha, energy_range, weight_power=1)
        t = rng.uniform(0.0, 1.0, m) * es_max_kinetic(e_nu)
        y = t / e_nu
        dsigma = G_L**2 + G_R**2 * (1.0 - y) ** 2 - G_L * G_R * ELECTRON_MASS * t / e_nu**2
        weight = dsigma / (G_L**2 + G_R**2)  # the largest value, at T = 0
        accept = (rng.uniform(0.0, 1.0, m) < weight) & (t >= energy_range[0]) & (t <= energy_range[1])
        return dict(nu_energy=e_nu, electron_energy=t, accept=accept)

    out = _accept_until(rng, n, draw)
    out["nu_direction"] = isotropic(rng, n)
    cos_t = es_cos_theta(out["nu_energy"], out["electron_energy"])
    out["electron_direction"] = rotate_to(out["nu_direction"], cos_t, rng.uniform(0.0, 2.0 * np.pi, n))
    return out


def _sample_cos_theta(rng: np.random.Generator, asymmetry: np.ndarray) -> np.ndarray:
    """cos(theta) [n] from (1 + a cos theta) / 2 on [-1, 1], |a| <= 1, by inverting its CDF."""
    u = rng.uniform(0.0, 1.0, asymmetry.shape)
    a = np.where(np.abs(asymmetry) < 1e-6, 1e-6, asymmetry)
    # CDF: (c + 1)/2 + a (c^2 - 1)/4 = u  ->  a c^2 + 2 c + (2 - a - 4u) = 0
    return np.clip((-1.0 + np.sqrt(np.maximum(1.0 - a * (2.0 - a - 4.0 * u), 0.0))) / a, -1.0, 1.0)


def charged_current(
    rng: np.random.Generator,
    n: int,
    mean: float = 12.0,
    alpha: float = 2.5,
    energy_range: tuple[float, float] = (5.0, 50.0),
    spectrum: str = "supernova",
):
    """n CC events nu_e + 40Ar -> e- + 40K* with the electron kinetic energy inside `energy_range`.

    A 40K* level is chosen with its strength times the phase space p_e E_e (the cross section of an
    allowed transition); T_e = E_nu - Q - E_x - m_e (nuclear recoil neglected). The electron angle to
    the neutrino follows 1 + a beta cos(theta), a = +1 (Fermi) or -1/3 (Gamow-Teller): nearly
    isotropic. The level decays by 1-3 photons sharing E_x (a simplified cascade).

    Returns: dict of nu_energy, nu_direction, electron_energy, electron_direction, excitation [n] and
    gamma_energies [n, 3] (MeV, 0 = no photon).
    """
    p_level = CC_LEVEL_STRENGTH / CC_LEVEL_STRENGTH.sum()

    def draw(m):
        # Propose E_nu from the spectrum times E^2, then accept with p_e E_e / E^2 <= 1.
        e_nu = _neutrino_energy(rng, m, spectrum, mean, alpha, energy_range, weight_power=2)
        level = rng.choice(len(CC_LEVELS_MEV), size=m, p=p_level)
        e_total = e_nu - CC_Q_VALUE - CC_LEVELS_MEV[level]
        t = e_total - ELECTRON_MASS
        p_e = np.sqrt(np.maximum(e_total**2 - ELECTRON_MASS**2, 0.0))
        weight = np.where(t > 0, p_e * e_total / e_nu**2, 0.0)
        accept = (rng.uniform(0.0, 1.0, m) < weight) & (t >= energy_range[0]) & (t <= energy_range[1])
        return dict(nu_energy=e_nu, electron_energy=t, level=level, accept=accept)

    out = _accept_until(rng, n, draw)
    level = out.pop("level")
    out["nu_direction"] = isotropic(rng, n)
    _, beta = gamma_beta(out["electron_energy"])
    asymmetry = np.where(level == CC_FERMI_LEVEL, 1.0, -1.0 / 3.0) * beta
    cos_t = _sample_cos_theta(rng, asymmetry)
    out["electron_direction"] = rotate_to(out["nu_direction"], cos_t, rng.uniform(0.0, 2.0 * np.pi, n))
    out["excitation"] = CC_LEVELS_MEV[level]
    out["gamma_energies"] = _cascade(rng, out["excitation"])
    return out


def _cascade(rng: np.random.Generator, excitation: np.ndarray) -> np.ndarray:
    """Split each excitation energy [n] into 1, 2 or 3 photons (30 / 45 / 25 %), [n, 3] MeV."""
    n = len(excitation)
    n_gamma = rng.choice([1, 2, 3], size=n, p=[0.30, 0.45, 0.25])
    cuts = np.sort(rng.uniform(0.0, 1.0, (n, MAX_GAMMAS - 1)), axis=1)
    cuts = np.where(np.arange(MAX_GAMMAS - 1)[None, :] < (n_gamma - 1)[:, None], cuts, 1.0)
    edges = np.concatenate([np.zeros((n, 1)), np.sort(cuts, axis=1), np.ones((n, 1))], axis=1)
    return np.diff(edges, axis=1) * excitation[:, None]
