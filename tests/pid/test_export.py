"""The pieces of the PID ONNX export that need no trained run: the JAX twin of the preprocessing
and the O2Physics conventions. The exported files themselves are tested on the experiment's
tiny run (tests/pid/test_experiment.py)."""

import numpy as np

from jaxhep.pid import export
from jaxhep.pid.features import Preprocessor
from jaxhep.pid.sim.simulate import simulate_tracks
from jaxhep.pid.species import FEATURES, GROUPS

INDEX = {f: j for j, f in enumerate(FEATURES)}


def _fitted_and_rows():
    table = simulate_tracks(3000, seed=3)
    pre = Preprocessor().fit(table, np.arange(2000))
    rows = export.edge_rows(np.stack([table[f] for f in FEATURES], axis=1)[2000:2400])
    rows[4, INDEX["has_tof"]] = np.nan  # a NaN flag counts as 0, as in transform (nan_to_num)
    return pre, rows


def test_transform_jax_equals_the_numpy_transform_with_missing_values():
    pre, rows = _fitted_and_rows()
    want = pre.transform({f: rows[:, j] for j, f in enumerate(FEATURES)})
    x, group_mask = pre.transform_jax(rows)
    np.testing.assert_allclose(np.asarray(x), want["x"], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(group_mask), want["group_mask"])
    tof = [INDEX[f] for f in GROUPS["tof"]]
    # by hand: the dropped detector values are 0; a missing Bayes value is the standardised 0.25,
    # a missing DCA the standardised asinh(median / 50 um)
    assert np.all(np.asarray(x)[[0, 1, 2, 4]][:, tof] == 0.0)
    assert np.asarray(group_mask)[[0, 1, 2, 4], 1].tolist() == [1.0, 0.0, 0.0, 0.0]  # the flag decides
    bayes_pi = (0.25 - pre.mean["bayes_prob_pi"]) / pre.std["bayes_prob_pi"]
    dca = (np.arcsinh(pre.median["dca_z"] / 0.005) - pre.mean["dca_z"]) / pre.std["dca_z"]
    np.testing.assert_allclose(
        np.asarray(x)[3, [INDEX["bayes_prob_pi"], INDEX["dca_z"]]], [bayes_pi, dca], 1e-5
    )


def test_o2_units_round_trip_and_the_o2_column_names():
    _, rows = _fitted_and_rows()
    o2 = export.to_o2_units(rows)
    tof_beta, bayes_ka = INDEX["tof_beta"], INDEX["bayes_prob_ka"]
    assert o2[2, tof_beta] == -999.0 and np.isnan(rows[2, tof_beta])
    np.testing.assert_allclose(o2[:, bayes_ka], 100 * rows[:, bayes_ka], rtol=1e-6)
    back = np.asarray(export.from_o2_units(o2))
    np.testing.assert_array_equal(np.isnan(back), np.isnan(rows))
    np.testing.assert_allclose(back, rows, rtol=1e-6, atol=1e-12)
    names = [export.O2_COLUMNS[f] for f in FEATURES]
    assert len(set(names)) == 21 and names[:4] == ["fPt", "fEta", "fPhi", "fTPCSignal"]
    assert names[INDEX["tof_beta"]] == "fBeta" and names[INDEX["tpc_nsigma_ka"]] == "fTPCNSigmaKa"
    sidecar = export.o2_sidecar(321, "ka", {"run_id": "r", "model": "fse", "momentum_range": "full"})
    assert sidecar["columns_for_training"] == names
    assert sidecar["data"][0] == ["fPt", 0.0, 1.0]  # O2's [column, mean, std]: identity
