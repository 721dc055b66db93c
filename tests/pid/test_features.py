"""Stratified splits and the preprocessing the PID models eat."""

import json

import numpy as np
import pytest

from jaxhep.pid.features import Preprocessor, momentum_range_mask, stratified_split
from jaxhep.pid.sim.simulate import simulate_tracks
from jaxhep.pid.species import FEATURES, LABEL, labels_from_pdg
from tests.approx import approx

COL = {name: j for j, name in enumerate(FEATURES)}


@pytest.fixture(scope="module")
def tracks():
    return simulate_tracks(20_000, 2)


def test_stratified_split_proportions_and_determinism():
    labels = np.repeat([0, 1, 2, 3], [1000, 70, 200, 171])
    labels = labels[np.random.default_rng(0).permutation(labels.size)]
    train, test = stratified_split(labels, 0.2, 231)
    assert np.intersect1d(train, test).size == 0 and train.size + test.size == labels.size
    assert (np.diff(train) > 0).all() and train.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(labels[test]), [200, 14, 40, 34])  # round(0.2 n_c)
    again = stratified_split(labels, 0.2, 231)
    np.testing.assert_array_equal(again[1], test)
    assert not np.array_equal(stratified_split(labels, 0.2, 232)[1], test)
    # Validation carved out of the training part, again stratified.
    fit_pos, val_pos = stratified_split(labels[train], 0.1, 232)
    val = train[val_pos]
    assert np.intersect1d(val, test).size == 0
    np.testing.assert_array_equal(np.bincount(labels[val]), [80, 6, 16, 14])
    with pytest.raises(ValueError):
        stratified_split(labels, 1.0, 0)


def test_momentum_range_mask():
    pt = np.array([0.69, 0.7, 1.0, 1.5, np.nan])
    np.testing.assert_array_equal(momentum_range_mask(pt, 0.7, 1.5), [False, True, True, False, False])


def _toy():
    """Six tracks, fitted on rows 0-3; numbers chosen so the statistics are easy by hand."""
    cols = {name: np.zeros(6, np.float32) for name in FEATURES}
    cols["pt"] = np.array([1, 2, 3, 4, 100, 100], np.float32)
    cols["dca_xy"] = np.array([1, np.nan, 3, 5, 7, np.nan], np.float32)  # train median 3
    cols["bayes_prob_ka"] = np.array([np.nan, 0.25, 0.25, 0.65, 0.9, np.nan], np.float32)
    cols["has_tpc"] = np.array([1, 1, 1, 0, 1, 0], np.float32)
    cols["tpc_signal"] = np.array([40, 50, 60, 999, 70, np.nan], np.float32)  # row 3: flag 0, ignored
    cols["has_tof"] = np.array([0, 1, 0, 1, 0, 1], np.float32)
    cols["tof_beta"] = np.array([np.nan, 0.9, np.nan, 0.7, np.nan, 0.8], np.float32)
    cols[LABEL] = np.array([211, -321, 2212, 11, -11, 211])
    return cols


def test_nan_rules_and_statistics_by_hand():
    cols = _toy()
    pre = Preprocessor().fit(cols, np.arange(4))
    assert pre.median["dca_xy"] == 3.0  # medians on the raw scale
    # dca_xy after filling: (1, 3, 3, 5) cm, compressed by asinh(dca / 0.005 cm)
    dca = np.arcsinh(np.array([1.0, 3, 3, 5]) / 0.005)
    assert pre.mean["dca_xy"] == approx(dca.mean()) and pre.std["dca_xy"] == approx(dca.std())
    # Bayes NaN -> 0.25: (0.25, 0.25, 0.25, 0.65): mean 0.35, std sqrt(0.03)
    assert pre.mean["bayes_prob_ka"] == approx(0.35) and pre.std["bayes_prob_ka"] == approx(0.03**0.5)
    # TPC only from training rows with has_tpc: log of (40, 50, 60); TOF only (0.9, 0.7)
    tpc = np.log([40.0, 50.0, 60.0])
    assert pre.mean["tpc_signal"] == approx(tpc.mean()) and pre.std["tpc_signal"] == approx(tpc.std())
    assert pre.mean["tof_beta"] == approx(0.8)
    assert pre.std["eta"] == 1.0  # constant column: no division by zero

    out = pre.transform(cols)
    x = out["x"]
    assert x.dtype == np.float32 and x.shape == (6, 21) and np.isfinite(x).all()
    np.testing.assert_allclose(
        x[:, COL["dca_xy"]],
        (np.arcsinh(np.array([1, 3, 3, 5, 7, 3]) / 0.005) - dca.mean()) / dca.std(),
        rtol=1e-5,
    )
    bayes = (np.array([0.25, 0.25, 0.25, 0.65, 0.9, 0.25]) - 0.35) / 0.03**0.5
    np.testing.assert_allclose(x[:, COL["bayes_prob_ka"]], bayes, rtol=1e-5)
    tpc = (np.log([40, 50, 60, 50, 70, 50]) - tpc.mean()) / tpc.std()
    tpc[[3, 5]] = 0.0  # rows 3 and 5 have no TPC -> 0
    np.testing.assert_allclose(x[:, COL["tpc_signal"]], tpc, rtol=1e-5)
    np.testing.assert_allclose(x[:, COL["tof_beta"]], [0, 1, 0, -1, 0, 0], atol=1e-5)
    np.testing.assert_array_equal(x[:, COL["has_tpc"]], cols["has_tpc"])
    np.testing.assert_array_equal(x[:, COL["has_tof"]], cols["has_tof"])
    np.testing.assert_array_equal(
        out["group_mask"], np.stack([cols["has_tpc"], cols["has_tof"], np.ones(6), np.ones(6)], 1)
    )
    np.testing.assert_array_equal(out["label"], [0, 1, 2, 3, 3, 0])
    assert out["label"].dtype == np.int32 and out["group_mask"].dtype == np.float32


def test_no_leakage_from_non_training_rows(tracks):
    train, test = stratified_split(labels_from_pdg(tracks[LABEL]), 0.2, 231)
    reference = Preprocessor().fit(tracks, train).to_dict()
    poisoned = {name: values.copy() for name, values in tracks.items()}
    for name in FEATURES:
        poisoned[name][test] = 1e6  # anything outside the training rows must not matter
    assert Preprocessor().fit(poisoned, train).to_dict() == reference


def test_transform_subset_and_json_round_trip(tracks):
    rows = np.arange(0, 20_000, 7)
    pre = Preprocessor().fit(tracks, np.arange(10_000))
    restored = Preprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    a, b = pre.transform(tracks, rows), restored.transform(tracks, rows)
    for key in ("x", "group_mask", "label"):
        np.testing.assert_array_equal(a[key], b[key])
    whole = pre.transform(tracks)
    np.testing.assert_array_equal(whole["x"][rows], a["x"])
    assert np.isfinite(whole["x"]).all()
    # Standardised on the training rows: mean ~0, std ~1 there for a continuous column.
    x = pre.transform(tracks, np.arange(10_000))["x"]
    assert abs(x[:, COL["pt"]].mean()) < 1e-3 and x[:, COL["pt"]].std() == approx(1.0, rel=1e-3)


def test_unlabelled_and_misuse(tracks):
    unlabelled = {k: v for k, v in tracks.items() if k != LABEL}
    with pytest.raises(RuntimeError):
        Preprocessor().transform(unlabelled)
    out = Preprocessor().fit(unlabelled, np.arange(100)).transform(unlabelled)
    assert "label" not in out
    state = Preprocessor().fit(tracks, np.arange(100)).to_dict()
    with pytest.raises(ValueError):
        Preprocessor.from_dict(dict(state, features=list(FEATURES[::-1])))


def test_tail_compression_is_monotonic_and_linear_in_the_core():
    from jaxhep.pid.features import _compress

    n = np.array([-100.0, -3.0, -0.3, 0.0, 0.3, 3.0, 100.0])
    out = _compress("tpc_nsigma_pi", n)
    assert np.all(np.diff(out) > 0)
    np.testing.assert_allclose(out[2:5], n[2:5] / 3.0, rtol=2e-3)  # asinh(x) ~ x near 0
    assert abs(out[-1]) < 5  # a 100-sigma outlier no longer dominates the scale
