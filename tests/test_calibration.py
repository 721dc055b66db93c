"""Vector scaling recovers a known temperature and bias and never worsens the likelihood."""

import numpy as np

from jaxhep.calibration import Calibration, fit_calibration
from tests.approx import approx


def _nll(probs, labels):
    return -np.mean(np.log(probs[np.arange(len(labels)), labels]))


def test_recovers_known_tilt():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(size=(20000, 4)) * 2.0
    p = np.exp(true_logits) / np.exp(true_logits).sum(1, keepdims=True)
    labels = (p.cumsum(1) > rng.random((20000, 1))).argmax(1)
    # A model that reports the true logits tilted by class weights and a temperature of 2.
    tilt = np.log([0.5, 4.0, 1.0, 2.0])
    reported = 2.0 * (true_logits + tilt)
    cal = fit_calibration(reported, labels, steps=1500)
    assert cal.temperature == approx(2.0, rel=0.05)
    expected_bias = -tilt - (-tilt).mean()
    np.testing.assert_allclose(cal.bias, expected_bias, atol=0.08)
    calibrated = cal.apply(reported)
    assert _nll(calibrated, labels) < _nll(Calibration.identity(4).apply(reported), labels)
    assert _nll(calibrated, labels) == approx(_nll(p, labels), abs=2e-3)


def test_round_trip():
    cal = Calibration(1.5, (0.1, -0.1, 0.0, 0.0))
    assert Calibration.from_dict(cal.to_dict()) == cal
