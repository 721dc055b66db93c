"""Bayesian PID against posteriors worked out by hand."""

import math

import numpy as np
import pytest

from jaxhep.pid.bayes import DEFAULT_PRIORS, bayes_posterior, tof_log_likelihood
from tests.approx import approx

PRIORS = np.array([0.69, 0.05, 0.14, 0.12])
NAN4 = [np.nan] * 4

# Track A, TPC only, n_sigma (pi, K, p, e) = (0, 1, 2, 6):
#   L = (1, e^-0.5, e^-2, e^-12.5)  [|6| >= 5 -> e^-12.5]
#   L * C = (0.69, 0.030326533, 0.018946940, 4.4719838e-7), sum 0.73927392
TPC_A = [0.0, 1.0, 2.0, 6.0]
POST_TPC_A = [0.93334822, 0.041022052, 0.025629120, 6.0491567e-7]
# Track B, TOF only, n_sigma = (-1, 0.5, 3, 0); x = n + 0.07/0.9 = (-0.92222, 0.57778, 3.07778, 0.07778):
#   x < 0.9 -> exp(-x^2/2): 0.65360838, 0.84627274, -, 0.99697988
#   x >= 0.9 -> exp(-(x - 0.45) * 0.9): exp(-2.365) = 0.09394930
TOF_B = [-1.0, 0.5, 3.0, 0.0]
POST_TOF_B = [0.72032291, 0.067583531, 0.021007874, 0.19108569]
# Both measurements on one track: L_TPC(A) * L_TOF(B) * C, normalised.
POST_BOTH = [0.94263583, 0.053642666, 0.0037205733, 9.3188829e-7]


def test_defaults_are_the_seed_abundances():
    np.testing.assert_allclose(DEFAULT_PRIORS, PRIORS)


def test_hand_computed_posteriors():
    post = bayes_posterior(
        np.array([TPC_A, NAN4, TPC_A]),
        np.array([NAN4, TOF_B, TOF_B]),
        has_tpc=np.array([1, 0, 1]),
        has_tof=np.array([0, 1, 1]),
        priors=PRIORS,
    )
    np.testing.assert_allclose(post, [POST_TPC_A, POST_TOF_B, POST_BOTH], rtol=1e-6, atol=1e-12)


def test_missing_detectors_contribute_one():
    # Flag 0 with finite values, flag 1 with NaN values, and neither detector: all "missing".
    post = bayes_posterior(
        np.array([TPC_A, NAN4, TPC_A]),
        np.array([TOF_B, TOF_B, TOF_B]),
        has_tpc=np.array([0, 1, 0]),
        has_tof=np.array([1, 1, 0]),
        priors=PRIORS,
    )
    np.testing.assert_allclose(post[0], POST_TOF_B, rtol=1e-6)
    np.testing.assert_allclose(post[1], POST_TOF_B, rtol=1e-6)
    np.testing.assert_allclose(post[2], PRIORS / PRIORS.sum(), rtol=1e-12)


def test_rows_sum_to_one_without_underflow():
    rng = np.random.default_rng(0)
    tpc = rng.normal(0, 30, (1000, 4))
    tof = rng.normal(0, 300, (1000, 4))
    tof[0] = [-1e4, -2e4, -3e4, -4e4]  # every Gaussian core underflows in float64
    has = rng.random((2, 1000)) < 0.7
    has[:, 0] = (False, True)
    post = bayes_posterior(tpc, tof, has[0], has[1])
    assert np.isfinite(post).all()
    np.testing.assert_allclose(post.sum(axis=1), 1.0, rtol=1e-12)
    assert post[0].argmax() == 0  # the least incompatible hypothesis wins, as in exact arithmetic


def test_tof_likelihood_is_continuous_at_the_tail_start():
    x = 0.9 - 0.07 / 0.9  # the n_sigma at which x = n + 0.07/0.9 reaches fTOFtail = 0.9
    below, above = tof_log_likelihood(np.array([x - 1e-9, x + 1e-9]))
    assert below == approx(above, abs=1e-8)
    assert below == approx(-0.5 * 0.9**2)


def test_tof_sigma_normalisation():
    tof = np.array([TOF_B])
    common = bayes_posterior(np.array([NAN4]), tof, [0], [1], PRIORS, tof_sigma=np.full((1, 4), 80.0))
    np.testing.assert_allclose(common[0], POST_TOF_B, rtol=1e-6)
    sigma = np.array([[80.0, 80.0, 160.0, 80.0]])  # proton hypothesis twice as wide: density / 2
    post = bayes_posterior(np.array([NAN4]), tof, [0], [1], PRIORS, tof_sigma=sigma)
    weights = np.array(POST_TOF_B) * [1, 1, 0.5, 1]
    np.testing.assert_allclose(post[0], weights / weights.sum(), rtol=1e-6)


def test_tpc_cutoff_at_five_sigma():
    post = bayes_posterior(np.array([[4.999, 5.0, 50.0, 0.0]]), np.array([NAN4]), [1], [0], np.ones(4))
    ratio = post[0] / post[0, 3]
    assert ratio[0] == approx(math.exp(-0.5 * 4.999**2), rel=1e-9)
    assert ratio[1] == approx(math.exp(-12.5), rel=1e-9)
    assert ratio[2] == approx(math.exp(-12.5), rel=1e-9)


def test_shape_errors():
    with pytest.raises(ValueError, match="N, 4"):
        bayes_posterior(np.zeros((3, 3)), np.zeros((3, 3)), np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="priors"):
        bayes_posterior(np.zeros((3, 4)), np.zeros((3, 4)), np.ones(3), np.ones(3), priors=(1, 1, 1))
