"""Headroom of the PID task: Bayesian PID against a gradient-boosted tree on the same 21 columns.

Produces the "Bayes vs GBDT" tables of BUILD_NOTES.md (PID, "Headroom"): for each momentum range
(full, 0.7-1.5, 1-3 GeV/c), the test accuracy of Bayesian PID (argmax of the bayes_prob_* columns;
a row without them is 0.25 each, i.e. a pion) and of sklearn's HistGradientBoostingClassifier
(max_iter 300, learning_rate 0.1, max_leaf_nodes 63, l2_regularization 1.0, early stopping,
random_state 0) trained on that range's training tracks, raw columns, NaN handled natively.
The split is the experiment's: stratified 80/20 with seed 231, then the range's tracks of each part.

    pip install scikit-learn
    python scripts/pid_headroom.py                          # 300 000 tracks, simulation seed 231
    python scripts/pid_headroom.py --seed 7
    python scripts/pid_headroom.py --ideal                  # SimConfig.ideal(): true response = nominal
    python scripts/pid_headroom.py --set tof_mismatch=0     # any SimConfig field, value as JSON

A few minutes on two CPU cores. The settings are those recorded for the original one-off study,
whose file was not kept; this is its reconstruction from them.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

RANGES = {"full": None, "0.7-1.5": (0.7, 1.5), "1-3": (1.0, 3.0)}
SPLIT_SEED = 231


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tracks", type=int, default=300_000, help="simulated tracks")
    p.add_argument("--seed", type=int, default=231, help="simulation seed")
    p.add_argument("--ideal", action="store_true", help="start from SimConfig.ideal()")
    p.add_argument(
        "--set",
        dest="changes",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="a jaxhep.pid.sim.simulate.SimConfig field (lists become tuples; repeatable)",
    )
    a = p.parse_args(argv)

    from sklearn.ensemble import HistGradientBoostingClassifier

    from jaxhep.pid.features import momentum_range_mask, stratified_split
    from jaxhep.pid.sim.simulate import SimConfig, simulate_tracks
    from jaxhep.pid.species import BAYES_PROBS, FEATURES, LABEL, labels_from_pdg

    changes = {}
    for change in a.changes:
        key, value = change.split("=", 1)
        value = json.loads(value)
        changes[key] = tuple(value) if isinstance(value, list) else value
    config = SimConfig.ideal(**changes) if a.ideal else SimConfig(**changes)
    columns = simulate_tracks(a.tracks, a.seed, config)
    labels = labels_from_pdg(columns[LABEL])
    x = np.stack([columns[name] for name in FEATURES], axis=1)
    bayes = np.nan_to_num(np.stack([columns[name] for name in BAYES_PROBS], axis=1), nan=0.25)
    bayes_pred = bayes.argmax(axis=1)
    train, test = stratified_split(labels, 0.2, SPLIT_SEED)

    print("| range (GeV/c) | test tracks | Bayes | GBDT | GBDT - Bayes |")
    print("|---|---:|---:|---:|---:|")
    results = {}
    for name, bounds in RANGES.items():
        inside = np.ones(len(labels), bool) if bounds is None else momentum_range_mask(columns["pt"], *bounds)
        tr, te = train[inside[train]], test[inside[test]]
        clf = HistGradientBoostingClassifier(
            max_iter=300,
            learning_rate=0.1,
            max_leaf_nodes=63,
            l2_regularization=1.0,
            early_stopping=True,
            random_state=0,
        ).fit(x[tr], labels[tr])
        acc_gbdt = float(np.mean(clf.predict(x[te]) == labels[te]))
        acc_bayes = float(np.mean(bayes_pred[te] == labels[te]))
        results[name] = {"test_tracks": len(te), "bayes": acc_bayes, "gbdt": acc_gbdt}
        print(
            f"| {name} | {len(te)} | {100 * acc_bayes:.1f} % | {100 * acc_gbdt:.1f} % "
            f"| {100 * (acc_gbdt - acc_bayes):+.1f} pp |",
            flush=True,
        )
    return results


if __name__ == "__main__":
    main()
