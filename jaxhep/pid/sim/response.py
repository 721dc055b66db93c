"""Nominal ALICE Run 3 detector response for PID: what O2Physics *expects* a species to give.

These are the formulas the reconstruction uses to turn a measurement into n_sigma
values; `jaxhep.pid.sim.simulate` computes every `tpc_nsigma_*` / `tof_nsigma_*` column with
them, unchanged. The simulated *true* response deviates from them on purpose (see the
`simulate` module docstring); these functions stay nominal.

All functions are vectorised NumPy over arrays of any (broadcastable) shape. Functions
that take `masses` return one value per species on a trailing axis of length 4
(SPECIES order), e.g. p [N] -> [N, 4]. Units: GeV/c for momenta, GeV/c^2 for masses,
cm for lengths, ps for times, arbitrary TPC units (MIP ~ 50) for dE/dx.
"""

from __future__ import annotations

import numpy as np

from jaxhep.pid.species import MASSES_GEV

# ALEPH Bethe-Bloch parameters, O2Physics Run 3 default TPC response (Common/Core/PID/TPCPIDResponse.h,
# as quoted in docs/DATA.md §2): BB = p1/beta^p4 * (p2 - beta^p4 - ln(p3 + (beta*gamma)^-p5)).
ALEPH_RUN3 = (
    0.03209809958934784,
    19.9768009185791,
    2.5266601063857674e-16,
    2.7212300300598145,
    6.080920219421387,
)
TPC_MIP = 50.0  # expected = MIP scale * BB (O2Physics TPC response, mMIP = 50)
TPC_RELATIVE_SIGMA = 0.07  # dE/dx resolution in Pb-Pb, 7 % of the expected signal (DATA.md §2)

C_CM_PER_PS = 0.0299792458  # speed of light
TOF_RADIUS_CM = 370.0  # inner radius of the TOF barrel (ALICE TOF TDR, CERN-LHCC-2000-012)
B_FIELD_T = 0.5  # L3 solenoid field
# Time resolution of one TOF hit including the event-time (t0) uncertainty. Run 3 measured 73-78 ps;
# O2Physics' default parametrisation uses 80 ps for Pb-Pb (DATA.md §2).
TOF_SIGMA_PS = 80.0
# Relative momentum resolution at the TOF, dp/p = a + b*p + c*m/p: the defaults of O2 pidBayes'
# TOF resolution parametrisation ("TOFReso" = {0.008, 0.008, 0.002, 40}; the 40 ps is folded into
# TOF_SIGMA_PS above).
TOF_DPP = (0.008, 0.008, 0.002)


def _masses(masses: np.ndarray | None) -> np.ndarray:
    return np.asarray(MASSES_GEV if masses is None else masses, dtype=np.float64)


def momentum(pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Total momentum p = pT cosh(eta), GeV/c; same shape as the inputs."""
    return np.asarray(pt, dtype=np.float64) * np.cosh(np.asarray(eta, dtype=np.float64))


def bethe_bloch_aleph(betagamma: np.ndarray, params: tuple[float, ...] = ALEPH_RUN3) -> np.ndarray:
    """ALEPH parametrisation of <dE/dx>/MIP as a function of beta*gamma (any shape)."""
    p1, p2, p3, p4, p5 = params
    bg = np.asarray(betagamma, dtype=np.float64)
    beta = bg / np.sqrt(1.0 + bg * bg)
    beta_p4 = beta**p4
    return p1 / beta_p4 * (p2 - beta_p4 - np.log(p3 + bg ** (-p5)))


def tpc_expected_signal(p: np.ndarray, masses: np.ndarray | None = None) -> np.ndarray:
    """Expected TPC dE/dx = 50 * BB(p/m) per species: p [...] -> [..., 4]."""
    m = _masses(masses)
    return TPC_MIP * bethe_bloch_aleph(np.asarray(p, dtype=np.float64)[..., None] / m)


def tpc_expected_sigma(expected: np.ndarray) -> np.ndarray:
    """Nominal dE/dx resolution: 7 % of the expected signal (same shape as `expected`)."""
    return TPC_RELATIVE_SIGMA * np.asarray(expected, dtype=np.float64)


def tpc_nsigma(signal: np.ndarray, p: np.ndarray, masses: np.ndarray | None = None) -> np.ndarray:
    """TPC n_sigma = (dE/dx - expected) / sigma per species: signal, p [...] -> [..., 4].

    NaN where the signal is NaN (track without TPC).
    """
    expected = tpc_expected_signal(p, masses)
    return (np.asarray(signal, dtype=np.float64)[..., None] - expected) / tpc_expected_sigma(expected)


def track_length_cm(pt: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Path length from the primary vertex to the TOF radius along the helix, cm.

    In the bending plane a track of radius R = pT / (0.3 B) reaches r_TOF after the arc
    2R arcsin(r_TOF / 2R); the length is that arc times cosh(eta) (= 1/sin(theta)). For
    stiff tracks this is ~370 cm / sin(theta). NaN where 2R < r_TOF: the track curls up
    before the TOF (pT < ~0.28 GeV/c at 0.5 T) and cannot have a TOF hit.
    """
    pt = np.asarray(pt, dtype=np.float64)
    radius_cm = pt / (0.299792458 * B_FIELD_T) * 100.0
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = TOF_RADIUS_CM / (2.0 * radius_cm)
        arc = np.where(ratio <= 1.0, 2.0 * radius_cm * np.arcsin(np.minimum(ratio, 1.0)), np.nan)
    return arc * np.cosh(np.asarray(eta, dtype=np.float64))


def tof_expected_time(p: np.ndarray, length: np.ndarray, masses: np.ndarray | None = None) -> np.ndarray:
    """Expected time of flight t_exp = L sqrt(m^2 + p^2) / (c p) per species, ps: [...] -> [..., 4]."""
    m = _masses(masses)
    p = np.asarray(p, dtype=np.float64)[..., None]
    length = np.asarray(length, dtype=np.float64)[..., None]
    return length * np.sqrt(m * m + p * p) / (C_CM_PER_PS * p)


def tof_expected_sigma(p: np.ndarray, length: np.ndarray, masses: np.ndarray | None = None) -> np.ndarray:
    """Expected TOF time resolution per species, ps: [...] -> [..., 4].

    sigma^2 = TOF_SIGMA_PS^2 + (t_exp * dp/p * m^2 / (m^2 + p^2))^2, with
    dp/p = 0.008 + 0.008 p + 0.002 m / p. The second term propagates the momentum
    uncertainty into the expected time (dt/t = -dbeta/beta = -m^2/(m^2+p^2) dp/p); it
    matters only for slow, heavy hypotheses. O2 evaluates it with the measured time, we
    with t_exp, which is the same within the resolution and does not depend on the hit.
    """
    m = _masses(masses)
    p_ = np.asarray(p, dtype=np.float64)[..., None]
    a, b, c = TOF_DPP
    dpp = a + b * p_ + c * m / p_
    t_exp = tof_expected_time(p, length, masses)
    momentum_term = t_exp * dpp * m * m / (m * m + p_ * p_)
    return np.sqrt(TOF_SIGMA_PS**2 + momentum_term**2)


def tof_nsigma(
    time: np.ndarray, p: np.ndarray, length: np.ndarray, masses: np.ndarray | None = None
) -> np.ndarray:
    """TOF n_sigma = (t - t_exp) / sigma per species: time, p, length [...] -> [..., 4].

    `time` is the measured time of flight with the event time subtracted, ps.
    """
    t_exp = tof_expected_time(p, length, masses)
    sigma = tof_expected_sigma(p, length, masses)
    return (np.asarray(time, dtype=np.float64)[..., None] - t_exp) / sigma


def tof_beta(time: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Measured velocity beta = L / (c t): same shape as the inputs."""
    return np.asarray(length, dtype=np.float64) / (C_CM_PER_PS * np.asarray(time, dtype=np.float64))


def beta_of(p: np.ndarray, mass: np.ndarray | float) -> np.ndarray:
    """True velocity p / E of a particle of the given mass (broadcast shapes)."""
    p = np.asarray(p, dtype=np.float64)
    return p / np.sqrt(p * p + np.asarray(mass, dtype=np.float64) ** 2)
