"""Liquid argon as a medium for MeV electrons and photons: stopping powers, ranges, recombination.

Every length is in mm and every energy in MeV. Sources, beside each constant: the DUNE FD TDR
(Vol. IV), the PDG "Atomic and nuclear properties" table for liquid argon, ICRU Report 37 (electron
collision stopping power), the ArgoNeuT recombination fit, and NIST XCOM for photon attenuation
(approximate values).
"""

from __future__ import annotations

import numpy as np

ELECTRON_MASS = 0.51099895  # MeV
DENSITY = 1.39  # g/cm^3, liquid argon at 87 K (DUNE FD TDR Vol. IV)
RADIATION_LENGTH_MM = 140.0  # X0 = 19.55 g/cm^2 / 1.39 g/cm^3 = 14.0 cm (DUNE FD TDR Vol. IV, PDG)
W_ION_MEV = 23.6e-6  # mean energy per ionisation electron (DUNE FD TDR Vol. IV)
Z, A = 18, 39.948
Z_OVER_A = Z / A
E_FIELD_KV_CM = 0.5  # drift field (DUNE FD TDR Vol. IV)

# ICRU 37 constant: 2 pi r_e^2 m_e c^2 N_A = 0.153537 MeV cm^2/g, times rho / 10 for MeV per mm.
_K_HALF_PER_MM = 0.153537 * Z_OVER_A * DENSITY / 10.0
# Mean excitation energy and Sternheimer density-effect parameters of liquid argon (PDG table):
# I = 188 eV, -C = 5.2146, x0 = 0.2, x1 = 3.0, a = 0.19559, k = 3.0.
_I_OVER_ME = 188.0e-6 / ELECTRON_MASS
_STERNHEIMER = dict(c=5.2146, x0=0.2, x1=3.0, a=0.19559, k=3.0)


def gamma_beta(kinetic: np.ndarray, mass: float = ELECTRON_MASS) -> tuple[np.ndarray, np.ndarray]:
    """Lorentz factor and velocity of a particle of kinetic energy `kinetic` [...] (MeV)."""
    gamma = 1.0 + np.asarray(kinetic, dtype=np.float64) / mass
    beta = np.sqrt(np.maximum(1.0 - 1.0 / gamma**2, 1e-12))
    return gamma, beta


def momentum(kinetic: np.ndarray, mass: float = ELECTRON_MASS) -> np.ndarray:
    """Momentum (MeV/c) of a particle of kinetic energy [...] (MeV)."""
    kinetic = np.asarray(kinetic, dtype=np.float64)
    return np.sqrt(kinetic * (kinetic + 2.0 * mass))


def _density_effect(beta_gamma: np.ndarray) -> np.ndarray:
    s = _STERNHEIMER
    x = np.log10(np.maximum(beta_gamma, 1e-12))
    mid = 2.0 * np.log(10.0) * x - s["c"] + s["a"] * np.clip(s["x1"] - x, 0.0, None) ** s["k"]
    return np.where(x < s["x0"], 0.0, mid)


def collision_stopping_power(kinetic: np.ndarray) -> np.ndarray:
    """Electron collision stopping power in LAr, MeV/mm, for kinetic energies [...] (MeV).

    ICRU 37 formula for electrons (Moller cross section) with the density effect: 1.90 MeV/cm at
    1 MeV, 2.16 MeV/cm at 10 MeV; the heavy-particle "MIP" value 2.1 MeV/cm (TDR) lies between.
    Below ~10 keV the formula fails; it is floored there (such electrons stop within microns).
    """
    t = np.maximum(np.asarray(kinetic, dtype=np.float64), 0.01) / ELECTRON_MASS
    gamma, beta = gamma_beta(t * ELECTRON_MASS)
    beta2 = beta**2
    f_minus = 1.0 - beta2 + (t**2 / 8.0 - (2.0 * t + 1.0) * np.log(2.0)) / (t + 1.0) ** 2
    log_term = np.log(t**2 * (t + 2.0) / (2.0 * _I_OVER_ME**2))
    bracket = log_term + f_minus - _density_effect(np.sqrt(gamma**2 - 1.0))
    return _K_HALF_PER_MM / beta2 * bracket


def radiative_stopping_power(kinetic: np.ndarray) -> np.ndarray:
    """Bremsstrahlung energy loss, MeV/mm: S_col * Z E / 700 (E = total energy in MeV; Knoll eq. 2.16).

    Ionisation and radiation are equal near 37 MeV here, close to the PDG critical energy of LAr
    (32.8 MeV); the asymptotic E / X0 would overestimate radiation by ~40 % at 10 MeV.
    """
    kinetic = np.asarray(kinetic, dtype=np.float64)
    return collision_stopping_power(kinetic) * Z * (kinetic + ELECTRON_MASS) / 700.0


def moller_constant(kinetic: np.ndarray) -> np.ndarray:
    """C / beta^2 (MeV/mm) of the delta-ray spectrum dN/(dT_d dx) = C / (beta^2 T_d^2), T_d << T."""
    _, beta = gamma_beta(kinetic)
    return _K_HALF_PER_MM / beta**2


def delta_ray_rate(kinetic: np.ndarray, cut: float) -> np.ndarray:
    """Delta rays with cut < T_d < T/2 per mm, [...] (1/T_d^2 spectrum; 0 when T < 2 cut)."""
    kinetic = np.asarray(kinetic, dtype=np.float64)
    rate = moller_constant(kinetic) * (1.0 / cut - 2.0 / np.maximum(kinetic, 2.0 * cut))
    return np.maximum(rate, 0.0)


def delta_ray_mean_loss(kinetic: np.ndarray, cut: float) -> np.ndarray:
    """Mean energy per mm carried by delta rays above `cut`, MeV/mm (same spectrum as delta_ray_rate)."""
    kinetic = np.asarray(kinetic, dtype=np.float64)
    return moller_constant(kinetic) * np.log(np.maximum(kinetic / (2.0 * cut), 1.0))


# CSDA range table: R(T) = integral of dT / (S_col + S_rad), on a log grid from 1 keV to 1 GeV.
_T_GRID = np.geomspace(1e-3, 1e3, 1200)
_S_GRID = collision_stopping_power(_T_GRID) + radiative_stopping_power(_T_GRID)
_R_GRID = np.concatenate(
    [
        [_T_GRID[0] / _S_GRID[0]],
        _T_GRID[0] / _S_GRID[0]
        + np.cumsum(np.diff(_T_GRID) * 0.5 / _S_GRID[1:] + np.diff(_T_GRID) * 0.5 / _S_GRID[:-1]),
    ]
)


def csda_range(kinetic: np.ndarray) -> np.ndarray:
    """Continuous-slowing-down range of electrons in LAr, mm, [...].

    4.2 mm at 1 MeV, 4.3 cm at 10 MeV, 14 cm at 50 MeV: "a 10 MeV electron travels a few cm".
    """
    kinetic = np.clip(np.asarray(kinetic, dtype=np.float64), _T_GRID[0], _T_GRID[-1])
    return np.interp(np.log(kinetic), np.log(_T_GRID), _R_GRID)


def energy_at_range(range_mm: np.ndarray) -> np.ndarray:
    """Inverse of csda_range: kinetic energy (MeV) of an electron with residual range [...] (mm)."""
    return np.exp(np.interp(np.asarray(range_mm, dtype=np.float64), _R_GRID, np.log(_T_GRID)))


def recombination(dedx_mev_per_mm: np.ndarray) -> np.ndarray:
    """Fraction of ionisation electrons surviving recombination: modified box model.

    R = ln(alpha + xi) / xi, xi = beta dE/dx / (rho E), alpha = 0.93, beta = 0.212 (kV/cm)(g/cm^2)/MeV
    (ArgoNeuT, JINST 8 (2013) P08005), E = 0.5 kV/cm: R = 0.70 at 2.1 MeV/cm (the TDR's R ~ 0.7).
    """
    dedx_cm = np.maximum(np.asarray(dedx_mev_per_mm, dtype=np.float64) * 10.0, 1e-3)
    xi = 0.212 * dedx_cm / (DENSITY * E_FIELD_KV_CM)
    return np.log(0.93 + xi) / xi


# Photon attenuation in argon, approximate NIST XCOM values (total with coherent, cm^2/g) and the
# fraction of it that is pair production; Compton scattering dominates from 0.2 to ~10 MeV.
_PHOTON_E = np.array([0.1, 0.2, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0])
_PHOTON_MU = np.array([0.188, 0.114, 0.0796, 0.0577, 0.0414, 0.0348, 0.0297, 0.0270, 0.0278, 0.0317, 0.0340])
_PAIR_FRACTION = np.array([0.0, 0.0, 0.0, 0.0, 0.01, 0.05, 0.16, 0.38, 0.58, 0.78, 0.86])


def photon_attenuation_length(energy: np.ndarray) -> np.ndarray:
    """Mean free path of photons in LAr, mm, [...]: 12 cm at 1 MeV, 24 cm at 5 MeV."""
    log_e = np.log(np.clip(np.asarray(energy, dtype=np.float64), _PHOTON_E[0], _PHOTON_E[-1]))
    mu = np.exp(np.interp(log_e, np.log(_PHOTON_E), np.log(_PHOTON_MU)))
    return 10.0 / (mu * DENSITY)


def pair_fraction(energy: np.ndarray) -> np.ndarray:
    """Probability that a photon interaction [...] is pair production rather than Compton scattering."""
    log_e = np.log(np.clip(np.asarray(energy, dtype=np.float64), _PHOTON_E[0], _PHOTON_E[-1]))
    return np.interp(log_e, np.log(_PHOTON_E), _PAIR_FRACTION)
