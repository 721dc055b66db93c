"""How hard the simulated e/γ task is, without a neural network: ROC AUC of a boosted tree on shower shapes.

Produces the "feature AUC" figures of BUILD_NOTES.md (e/γ, "How hard the task is"): 20 physics features
of each 32x32 crop (shower widths in eta and phi over 5x5 and 7x7, E1/E, E3x3/E5x5, E5x5/E, E7x7/E, phi
and eta asymmetries and their absolute values, crystals above threshold, second-highest / highest
crystal, the +-1-row phi strip / E, centroid offsets), sklearn's HistGradientBoostingClassifier
(300 iterations) on a 70/30 split. The default simulator gives feature AUC = 0.775. It also prints
the AUC of electrons against converted and against unconverted photons, and the conversion rate.

    pip install scikit-learn
    python scripts/egamma_feature_auc.py 20000      # showers per class (electrons seed 1, photons seed 1001)
    python scripts/egamma_feature_auc.py 20000 --set n_spots=8000 --set pileup_mean=0   # ShowerConfig fields

Takes about a minute for 20 000 showers per class on one CPU core (simulation included).
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np


def features(x: np.ndarray) -> np.ndarray:
    """[N, 32, 32, 2] crops (energy channel 0, maximum at [16, 16]) -> [N, 20] shower-shape features."""
    e = x[..., 0].astype(np.float64)
    tot = e.sum((1, 2))
    w3, w5, w7 = e[:, 15:18, 15:18], e[:, 14:19, 14:19], e[:, 13:20, 13:20]
    e3, e5, e7 = w3.sum((1, 2)), w5.sum((1, 2)), w7.sum((1, 2))
    cols = [tot, e[:, 16, 16] / tot, e3 / e5, e5 / tot, e7 / tot]
    for w, ew, d in ((w5, e5, np.arange(-2, 3)), (w7, e7, np.arange(-3, 4))):
        for axis in (2, 1):  # eta profile, phi profile
            prof = w.sum(axis)
            mean = (prof * d).sum(1) / ew
            cols += [np.sqrt(np.maximum((prof * d**2).sum(1) / ew - mean**2, 0)), mean]
    left, right = e[:, 13:20, :16].sum((1, 2)), e[:, 13:20, 17:].sum((1, 2))
    up, down = e[:, :16, 13:20].sum((1, 2)), e[:, 17:, 13:20].sum((1, 2))
    a_phi, a_eta = (right - left) / (right + left + 1e-3), (up - down) / (up + down + 1e-3)
    second = np.sort(w3.reshape(len(e), -1), 1)[:, -2] / e[:, 16, 16]
    cols += [
        a_phi,
        np.abs(a_phi),
        a_eta,
        np.abs(a_eta),
        (e > 0).sum((1, 2)),
        second,
        e[:, 15:18, :].sum((1, 2)) / tot,
    ]
    return np.stack(cols, 1)


def main(argv=None) -> float:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("n", type=int, nargs="?", default=20000, help="simulated showers per class")
    p.add_argument(
        "--set",
        dest="changes",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="a jaxhep.egamma.sim.simulate.ShowerConfig field, value as JSON (repeatable)",
    )
    a = p.parse_args(argv)

    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    from jaxhep.egamma.sim.simulate import ShowerConfig, simulate_events

    changes = {k: json.loads(v) for k, v in (c.split("=", 1) for c in a.changes)}
    config = dataclasses.replace(ShowerConfig(), **changes)
    n = a.n
    ele, pho = simulate_events(n, "electron", 1, config), simulate_events(n, "photon", 1001, config)
    f, y = np.concatenate([features(ele.X), features(pho.X)]), np.r_[np.ones(n), np.zeros(n)]
    converted = np.r_[np.zeros(n, bool), pho.converted]
    test = np.random.default_rng(0).random(2 * n) < 0.3
    clf = HistGradientBoostingClassifier(max_iter=300, random_state=0).fit(f[~test], y[~test])
    score = clf.predict_proba(f[test])[:, 1]
    auc = roc_auc_score(y[test], score)
    y_t, conv_t = y[test], converted[test]
    vs_conv = roc_auc_score(y_t[(y_t == 1) | conv_t], score[(y_t == 1) | conv_t])
    vs_unconv = roc_auc_score(y_t[(y_t == 1) | ~conv_t], score[(y_t == 1) | ~conv_t])
    print(f"feature AUC = {auc:.3f}")
    print(f"electrons vs converted photons {vs_conv:.3f}, vs unconverted photons {vs_unconv:.3f}")
    print(f"photon conversion rate {pho.converted.mean():.3f}")
    return auc


if __name__ == "__main__":
    main()
