"""Evaluation of PID classifiers and of the Bayesian PID baseline on the same test tracks."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from jaxhep import metrics
from jaxhep.pid.species import FEATURES, SPECIES

BAYES_COLUMNS = tuple(f"bayes_prob_{s}" for s in SPECIES)


def classifier_metrics(labels: np.ndarray, probs: np.ndarray) -> dict:
    """Accuracy, per-class and macro one-vs-rest AUC, efficiency/purity/F1, confusion matrix.

    labels: [N] class indices; probs: [N, 4] scores (probabilities or Bayes posteriors).
    """
    pred = np.argmax(probs, axis=1)
    per_class_auc, macro_auc = metrics.one_vs_rest_auc(labels, probs)
    epf = metrics.efficiency_purity_f1(labels, pred, len(SPECIES))
    return {
        "n": int(len(labels)),
        "accuracy": metrics.accuracy(labels, pred),
        "macro_auc": macro_auc,
        "auc": dict(zip(SPECIES, per_class_auc.tolist())),
        "efficiency": dict(zip(SPECIES, epf["efficiency"].tolist())),
        "purity": dict(zip(SPECIES, epf["purity"].tolist())),
        "f1": dict(zip(SPECIES, epf["f1"].tolist())),
        "support": dict(zip(SPECIES, epf["support"].tolist())),
        "confusion": metrics.confusion_matrix(labels, pred, len(SPECIES), normalize="true").tolist(),
        "report": metrics.classification_report(labels, pred, list(SPECIES)),
    }


def bayes_scores(columns: dict[str, np.ndarray], rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bayesian PID posteriors [n, 4] of table rows, and whether Bayes was computed [n].

    Missing posteriors are filled with 0.25 as the seed does, so on "all tracks" Bayes
    answers with its argmax of equal values (the first species, pion) there.
    """
    probs = np.stack([columns[c][rows] for c in BAYES_COLUMNS], axis=1).astype(np.float64)
    available = np.isfinite(probs).all(axis=1)
    return np.where(np.isfinite(probs), probs, 0.25), available


def compare_with_bayes(
    labels: np.ndarray, probs: np.ndarray, bayes: np.ndarray, available: np.ndarray
) -> dict:
    """Accuracy of a network and of Bayes on all tracks and on tracks with a real Bayes value,
    overall and per species."""
    out = {}
    for subset, keep in (("all", np.ones(len(labels), bool)), ("bayes_available", available)):
        y, nn_pred, b_pred = labels[keep], probs[keep].argmax(1), bayes[keep].argmax(1)
        out[subset] = {
            "n": int(keep.sum()),
            "nn_accuracy": metrics.accuracy(y, nn_pred) if len(y) else float("nan"),
            "bayes_accuracy": metrics.accuracy(y, b_pred) if len(y) else float("nan"),
            "nn_per_species": {
                s: float(np.mean(nn_pred[y == c] == c)) if np.any(y == c) else float("nan")
                for c, s in enumerate(SPECIES)
            },
            "bayes_per_species": {
                s: float(np.mean(b_pred[y == c] == c)) if np.any(y == c) else float("nan")
                for c, s in enumerate(SPECIES)
            },
        }
    return out


def permutation_importance(
    predict: Callable[[np.ndarray, np.ndarray], np.ndarray],
    x: np.ndarray,
    group_mask: np.ndarray,
    labels: np.ndarray,
    seed: int = 0,
) -> dict[str, float]:
    """Drop in accuracy when one feature column is shuffled across tracks [per feature].

    x: [n, 21] preprocessed features; the detector flags (has_tpc/has_tof) are shuffled
    together with the group mask they drive, so the network sees a consistent track.
    """
    rng = np.random.default_rng(seed)
    base = metrics.accuracy(labels, predict(x, group_mask).argmax(1))
    flag_to_group = {"has_tpc": 0, "has_tof": 1}
    out = {}
    for j, name in enumerate(FEATURES):
        perm = rng.permutation(len(x))
        xp, mp = x.copy(), group_mask
        xp[:, j] = x[perm, j]
        if name in flag_to_group:
            mp = group_mask.copy()
            mp[:, flag_to_group[name]] = group_mask[perm, flag_to_group[name]]
        out[name] = base - metrics.accuracy(labels, predict(xp, mp).argmax(1))
    return out
