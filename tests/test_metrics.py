"""jaxhep.metrics: hand-worked values on tiny inputs, and agreement with scikit-learn."""

import numpy as np
import pytest

from jaxhep import metrics
from tests.approx import approx

# A tiny 3-class example used by several tests.
#   y_true = 0 0 1 2 2 2
#   y_pred = 0 1 1 2 2 0
# confusion (rows = true): [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
Y_TRUE = np.array([0, 0, 1, 2, 2, 2])
Y_PRED = np.array([0, 1, 1, 2, 2, 0])


def test_accuracy_by_hand():
    assert metrics.accuracy(Y_TRUE, Y_PRED) == approx(4 / 6)  # 4 of 6 on the diagonal
    assert np.isnan(metrics.accuracy([], []))


def test_confusion_matrix_by_hand():
    cm = metrics.confusion_matrix(Y_TRUE, Y_PRED, 3)
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    # normalize="true": each row over its count (2, 1, 3); a 4th, empty class stays 0.
    norm = metrics.confusion_matrix(Y_TRUE, Y_PRED, 4, normalize="true")
    np.testing.assert_allclose(norm, [[0.5, 0.5, 0, 0], [0, 1, 0, 0], [1 / 3, 0, 2 / 3, 0], [0, 0, 0, 0]])
    with pytest.raises(ValueError):
        metrics.confusion_matrix([0, 3], [0, 1], 3)


def test_efficiency_purity_f1_by_hand():
    out = metrics.efficiency_purity_f1(Y_TRUE, Y_PRED, 4)
    # class 0: tp 1, true 2, predicted 2 -> eff 1/2, pur 1/2, f1 1/2
    # class 1: tp 1, true 1, predicted 2 -> eff 1,   pur 1/2, f1 2/(1+2) = 2/3
    # class 2: tp 2, true 3, predicted 2 -> eff 2/3, pur 1,   f1 4/5
    # class 3: absent and never predicted -> all 0 (not NaN)
    np.testing.assert_allclose(out["efficiency"], [0.5, 1, 2 / 3, 0])
    np.testing.assert_allclose(out["purity"], [0.5, 0.5, 1, 0])
    np.testing.assert_allclose(out["f1"], [0.5, 2 / 3, 0.8, 0])
    np.testing.assert_array_equal(out["support"], [2, 1, 3, 0])


def test_roc_by_hand_with_ties():
    y = np.array([0, 1, 0, 1])
    s = np.array([0.5, 0.5, 0.2, 0.9])
    # Descending: 0.9 (pos) | 0.5 (pos, neg tied -> one point) | 0.2 (neg).
    fpr, tpr, thr = metrics.roc_curve(y, s)
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 1, 1])
    np.testing.assert_array_equal(thr, [np.inf, 0.9, 0.5, 0.2])
    # Pairs (pos, neg): 0.5 vs 0.5 tie = 1/2, 0.5 vs 0.2 = 1, 0.9 vs both = 2 -> 3.5 / 4.
    assert metrics.roc_auc(y, s) == approx(0.875)
    # Without ties: 0.35 beats 0.1 only, 0.8 beats both -> 3 / 4.
    assert metrics.roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == approx(0.75)


def test_auc_single_class_is_nan():
    assert np.isnan(metrics.roc_auc([1, 1, 1], [0.1, 0.2, 0.3]))
    assert np.isnan(metrics.roc_auc([0, 0], [0.1, 0.2]))
    per_class, macro = metrics.one_vs_rest_auc([0, 1, 0, 1], np.eye(3)[[0, 1, 0, 1]])
    assert np.isnan(per_class[2]) and macro == approx(1.0)  # class 2 absent
    with pytest.raises(ValueError, match="NaN"):  # a diverged model, not a ranking
        metrics.roc_auc([0, 1], [0.1, np.nan])


def test_threshold_and_binary_metrics_by_hand():
    y = np.array([0, 1, 0, 1, 1])
    s = np.array([0.1, 0.4, 0.35, 0.8, 0.2])
    # F1 = 2tp / (tp + fp + 3) at each threshold: 0.8 -> 2/4, 0.4 -> 4/5, 0.35 -> 4/6,
    # 0.2 -> 6/7 (best), 0.1 -> 6/8.
    assert metrics.threshold_for(y, s) == approx(0.2)
    m = metrics.binary_metrics(y, s, 0.2)
    # Predicted positive: 0.4, 0.35, 0.8, 0.2 -> tp 3, fp 1, fn 0, tn 1.
    assert m["accuracy"] == approx(4 / 5)
    assert m["precision"] == approx(3 / 4)
    assert m["recall"] == approx(1.0)
    assert m["f1"] == approx(6 / 7)
    # Positives 0.4, 0.8 beat both negatives (0.1, 0.35); 0.2 beats 0.1 only -> 5/6.
    assert m["auc"] == approx(5 / 6)
    with pytest.raises(ValueError):
        metrics.threshold_for([0, 0], [0.1, 0.2])


def test_classification_report_format():
    report = metrics.classification_report(Y_TRUE, Y_PRED, ["a", "b", "c"])
    assert report["accuracy"] == approx(4 / 6)
    # Macro F1 = mean(1/2, 2/3, 4/5); weighted by supports 2, 1, 3.
    assert report["macro avg"]["f1-score"] == approx((0.5 + 2 / 3 + 0.8) / 3)
    assert report["weighted avg"]["f1-score"] == approx((2 * 0.5 + 2 / 3 + 3 * 0.8) / 6)
    table = metrics.format_classification_report(report)
    assert table.startswith("| class |") and "| **accuracy** |" in table
    assert len(table.splitlines()) == 2 + 3 + 3


def test_angular_errors_by_hand():
    x, y, mx = [1.0, 0, 0], [0, 1.0, 0], [-1.0, 0, 0]
    pred = np.array([y, mx, [2.0, 2.0, 0], [-1.0, 1.0, 0], x])
    true = np.array([x, x, [3.0, 0, 0], x, x])
    # 90; 180; (1,1,0) vs x = 45 (lengths do not matter); 135; 0.
    np.testing.assert_allclose(metrics.angular_error_deg(pred, true), [90, 180, 45, 135, 0], atol=1e-12)
    # Up to sign: 180 -> 0 and 135 -> 45.
    np.testing.assert_allclose(metrics.axis_error_deg(pred, true), [90, 0, 45, 45, 0], atol=1e-12)
    assert np.isnan(metrics.angular_error_deg([[0.0, 0, 0]], [x])[0])
    # Tiny angles stay accurate (arccos of the cosine would give 0 here).
    tiny = metrics.angular_error_deg([[1.0, 1e-9, 0]], [x])[0]
    assert tiny == approx(np.degrees(1e-9), rel=1e-6)


def test_containment_and_binned_mean_by_hand():
    assert metrics.containment(np.arange(101.0), 0.68) == approx(68.0)
    # Bins [0,1) [1,2) [2,3]: y {1,3} -> mean 2, std 1.414 / sqrt(2) = 1; {5}; {7} (edge included).
    edges, mean, sem, count = metrics.binned_mean([0.5, 0.5, 1.5, 3.0], [1, 3, 5, 7], [0, 1, 2, 3])
    np.testing.assert_allclose(mean, [2, 5, 7])
    np.testing.assert_allclose(sem, [1, 0, 0])
    np.testing.assert_array_equal(count, [2, 1, 1])
    _, mean, _, count = metrics.binned_mean([0.5], [1.0], [0, 1, 2])
    assert count[1] == 0 and np.isnan(mean[1])


# --------------------------------------------------------------------------- vs scikit-learn


@pytest.fixture(scope="module")
def skm():
    return pytest.importorskip("sklearn.metrics")


@pytest.mark.parametrize("seed", range(5))
def test_roc_matches_sklearn_with_ties(skm, seed):
    rng = np.random.default_rng(seed)
    n = 400
    y = rng.integers(0, 2, n)
    s = np.round(rng.normal(y * 0.7, 1.0), 1)  # rounding makes many ties
    w = rng.uniform(0.1, 2.0, n)
    fpr, tpr, thr = metrics.roc_curve(y, s)
    ref = skm.roc_curve(y, s, drop_intermediate=False)
    for mine, theirs in zip((fpr, tpr, thr), ref):
        np.testing.assert_allclose(mine, theirs)
    assert metrics.roc_auc(y, s) == approx(skm.roc_auc_score(y, s), abs=1e-12)
    assert metrics.roc_auc(y, s, sample_weight=w) == approx(
        skm.roc_auc_score(y, s, sample_weight=w), abs=1e-12
    )


def test_multiclass_metrics_match_sklearn(skm):
    rng = np.random.default_rng(7)
    n, c = 500, 4
    y_true = rng.integers(0, c, n)
    y_pred = np.where(rng.random(n) < 0.6, y_true, rng.integers(0, c, n))
    y_pred[y_pred == 3] = 2  # class 3 never predicted: zero_division paths
    np.testing.assert_array_equal(
        metrics.confusion_matrix(y_true, y_pred, c), skm.confusion_matrix(y_true, y_pred, labels=range(c))
    )
    np.testing.assert_allclose(
        metrics.confusion_matrix(y_true, y_pred, c, normalize="true"),
        skm.confusion_matrix(y_true, y_pred, labels=range(c), normalize="true"),
    )
    p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, labels=range(c), zero_division=0)
    out = metrics.efficiency_purity_f1(y_true, y_pred, c)
    np.testing.assert_allclose(out["purity"], p)
    np.testing.assert_allclose(out["efficiency"], r)
    np.testing.assert_allclose(out["f1"], f)
    np.testing.assert_array_equal(out["support"], s)

    names = ["e", "mu", "pi", "K"]
    mine = metrics.classification_report(y_true, y_pred, names)
    theirs = skm.classification_report(
        y_true, y_pred, labels=range(c), target_names=names, output_dict=True, zero_division=0
    )
    assert mine.keys() == theirs.keys()
    assert mine["accuracy"] == approx(theirs["accuracy"])
    for key in [*names, "macro avg", "weighted avg"]:
        for field in ("precision", "recall", "f1-score", "support"):
            assert mine[key][field] == approx(theirs[key][field]), (key, field)


def test_one_vs_rest_auc_matches_sklearn(skm):
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 300)
    logits = rng.normal(size=(300, 3)) + np.eye(3)[y]
    probs = np.round(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), 2)
    probs /= probs.sum(1, keepdims=True)
    per_class, macro = metrics.one_vs_rest_auc(y, probs)
    assert macro == approx(skm.roc_auc_score(y, probs, multi_class="ovr", average="macro"))
    for c in range(3):
        assert per_class[c] == approx(skm.roc_auc_score(y == c, probs[:, c]))
