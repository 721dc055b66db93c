"""Bayesian PID as O2 computes it (O2Physics Common/TableProducer/PID/pidBayes.cxx).

For each species i the detector likelihoods are

  TPC:  L_TPC,i = exp(-n_i^2 / 2)                  if |n_i| < 5
                = exp(-12.5)                       otherwise
  TOF:  x_i = n_i + 0.07 / 0.9                     (pidBayes' mean correction for the tail)
        L_TOF,i = exp(-x_i^2 / 2) / sigma_i        if x_i < 0.9
                = exp(-(x_i - 0.45) * 0.9) / sigma_i  otherwise

i.e. a Gaussian core that turns into an exponential tail towards late times 0.9 sigma
above the peak (continuous at x = 0.9, tail parameter fTOFtail = 0.9 as in pidBayes,
no mismatch term: pidBayes sets fgTOFmismatchProb = 0). sigma_i is the expected TOF
resolution of hypothesis i (`response.tof_expected_sigma`); pass None to drop it (all 1).
A detector that is missing contributes 1. The posterior is

  P_i = L_TPC,i L_TOF,i C_i / sum_k L_TPC,k L_TOF,k C_k

with priors C_i. We evaluate it in log space: identical to pidBayes in exact arithmetic,
but it never underflows (pidBayes, in float32, falls back to uniform probabilities when
every species' likelihood underflows; that would weaken the baseline for nothing).

Two deliberate differences from the C++ are kept on purpose (BUILD_NOTES.md, PID simulator):
pidBayes replaces an out-of-range TPC likelihood by 1/N_species (we keep exp(-12.5), as
the AliRoot AliPIDResponse did), and its default priors are flat (we use the abundances).
"""

from __future__ import annotations

import numpy as np

from jaxhep.pid.species import N_SPECIES

# Seed abundances (001_*.txt), SPECIES order pi, K, p, e.
DEFAULT_PRIORS = (0.69, 0.05, 0.14, 0.12)

TPC_RANGE = 5.0  # pidBayes fRange
TOF_TAIL = 0.9  # pidBayes fTOFtail, in units of sigma
TOF_MEAN_CORRECTION = 0.07 / TOF_TAIL  # pidBayes meanCorrFactor


def tpc_log_likelihood(nsigma: np.ndarray) -> np.ndarray:
    """log L_TPC per species: n_sigma [N, 4] -> [N, 4] (NaN stays NaN)."""
    n = np.asarray(nsigma, dtype=np.float64)
    return np.where(np.abs(n) < TPC_RANGE, -0.5 * n * n, -0.5 * TPC_RANGE**2) + 0.0 * n


def tof_log_likelihood(nsigma: np.ndarray, sigma: np.ndarray | None = None) -> np.ndarray:
    """log L_TOF per species: n_sigma [N, 4] (and expected sigma [N, 4] or None) -> [N, 4]."""
    x = np.asarray(nsigma, dtype=np.float64) + TOF_MEAN_CORRECTION
    log_l = np.where(x < TOF_TAIL, -0.5 * x * x, -(x - 0.5 * TOF_TAIL) * TOF_TAIL)
    if sigma is not None:
        log_l = log_l - np.log(np.asarray(sigma, dtype=np.float64))
    return log_l


def bayes_posterior(
    tpc_nsigma: np.ndarray,
    tof_nsigma: np.ndarray,
    has_tpc: np.ndarray,
    has_tof: np.ndarray,
    priors: np.ndarray | tuple[float, ...] = DEFAULT_PRIORS,
    tof_sigma: np.ndarray | None = None,
) -> np.ndarray:
    """Bayesian PID posterior probabilities, O2 pidBayes style.

    Args:
      tpc_nsigma: [N, 4] TPC n_sigma per species (NaN where there is no TPC).
      tof_nsigma: [N, 4] TOF n_sigma per species (NaN where there is no TOF).
      has_tpc: [N] 0/1 (or bool) TPC availability; a row also counts as missing where its
        n_sigma values are not finite.
      has_tof: [N] 0/1 (or bool) TOF availability, same rule.
      priors: [4] prior probabilities C_i (need not be normalised).
      tof_sigma: optional [N, 4] expected TOF resolution per hypothesis (ps), the 1/sigma
        normalisation of the TOF density; None means all hypotheses share one sigma.

    Returns:
      [N, 4] float64 posteriors, each row summing to 1. A track with neither detector
      gets the normalised priors.
    """
    tpc = np.asarray(tpc_nsigma, dtype=np.float64)
    tof = np.asarray(tof_nsigma, dtype=np.float64)
    if tpc.ndim != 2 or tpc.shape[1] != N_SPECIES or tof.shape != tpc.shape:
        raise ValueError(f"n_sigma arrays must both be [N, {N_SPECIES}], got {tpc.shape} and {tof.shape}")
    log_prior = np.log(np.asarray(priors, dtype=np.float64))
    if log_prior.shape != (N_SPECIES,):
        raise ValueError(f"priors must have {N_SPECIES} entries, got shape {log_prior.shape}")

    use_tpc = (np.asarray(has_tpc) > 0) & np.isfinite(tpc).all(axis=1)
    use_tof = (np.asarray(has_tof) > 0) & np.isfinite(tof).all(axis=1)
    if tof_sigma is not None:
        use_tof &= np.isfinite(np.asarray(tof_sigma, dtype=np.float64)).all(axis=1)

    log_post = np.broadcast_to(log_prior, tpc.shape).copy()
    log_post += np.where(use_tpc[:, None], np.nan_to_num(tpc_log_likelihood(tpc)), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        log_tof = tof_log_likelihood(tof, tof_sigma)
    log_post += np.where(use_tof[:, None], np.nan_to_num(log_tof), 0.0)

    log_post -= log_post.max(axis=1, keepdims=True)
    post = np.exp(log_post)
    return post / post.sum(axis=1, keepdims=True)
