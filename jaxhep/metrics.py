"""Host-side evaluation metrics on numpy arrays.

Everything here runs after predictions have been gathered to the host, so it is
plain numpy, float64, and independent of JAX. Classification metrics follow
scikit-learn's definitions (which the tests check against), with undefined ratios
reported as 0 rather than NaN (sklearn's ``zero_division=0``); the one deliberate
exception is an AUC with a single class present, which is NaN because no value
would be honest.

Conventions: labels are integers ``0 .. n_classes-1``; binary labels are {0, 1}
(or bool); a sample is called positive when ``score >= threshold``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "accuracy",
    "angular_error_deg",
    "axis_error_deg",
    "binary_metrics",
    "binned_mean",
    "classification_report",
    "confusion_matrix",
    "containment",
    "efficiency_purity_f1",
    "format_classification_report",
    "one_vs_rest_auc",
    "roc_auc",
    "roc_curve",
    "threshold_for",
]


# --------------------------------------------------------------------------- helpers


def _labels(y: Any, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D [N], got shape {y.shape}")
    if y.dtype == bool:
        return y.astype(np.int64)
    if not np.issubdtype(y.dtype, np.integer):
        # Float labels (e.g. read back from a table) are fine if they are whole numbers.
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError(f"{name} must hold integer class labels")
    return y.astype(np.int64)


def _same_length(*arrays: np.ndarray) -> None:
    n = {len(a) for a in arrays}
    if len(n) != 1:
        raise ValueError(f"inputs have different lengths: {[len(a) for a in arrays]}")


def _binary(y_true: Any, scores: Any, sample_weight: Any = None):
    """Validated (labels as bool [N], scores float64 [N], weights float64 [N])."""
    y = _labels(y_true, "y_true")
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise ValueError(f"scores must be 1-D [N], got shape {s.shape}")
    if np.isnan(s).any():
        # Usually a diverged model: refuse rather than rank NaNs somewhere arbitrary.
        raise ValueError("scores contain NaN")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("binary metrics need labels in {0, 1}")
    w = np.ones_like(s) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    _same_length(y, s, w)
    return y.astype(bool), s, w


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den elementwise, 0 where den == 0 (sklearn's zero_division=0)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)


def _score_groups(y: np.ndarray, s: np.ndarray, w: np.ndarray):
    """Cumulative (tp, fp) weights at each distinct score, from highest to lowest.

    Returns (thresholds [K], tp [K], fp [K]): predicting positive for score >= thresholds[k]
    gives tp[k] true and fp[k] false positives. Tied scores form one group, because no
    threshold can separate them.
    """
    order = np.argsort(-s, kind="mergesort")
    s, y, w = s[order], y[order], w[order]
    # The last index of each run of equal scores closes a group.
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1] if len(s) else np.zeros(0, dtype=np.int64)
    tp = np.cumsum(w * y)[last]
    fp = np.cumsum(w * ~y)[last]
    return s[last], tp, fp


# --------------------------------------------------------------------------- classification


def accuracy(y_true: Any, y_pred: Any) -> float:
    """Fraction of correct predictions. y_true, y_pred: [N] integer labels; NaN if N == 0."""
    t, p = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    _same_length(t, p)
    return float(np.mean(t == p)) if len(t) else float("nan")


def confusion_matrix(
    y_true: Any,
    y_pred: Any,
    n_classes: int,
    normalize: str | None = None,
    sample_weight: Any = None,
) -> np.ndarray:
    """Confusion matrix [C, C]: entry [i, j] counts samples of true class i predicted as j.

    y_true, y_pred: [N] labels in 0..C-1; sample_weight: optional [N].
    normalize: None (counts), "true" (each row sums to 1: efficiency / migration matrix),
    "pred" (each column sums to 1: purity), or "all". Empty rows/columns stay 0.
    """
    t, p = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    _same_length(t, p)
    for name, y in (("y_true", t), ("y_pred", p)):
        if len(y) and (y.min() < 0 or y.max() >= n_classes):
            raise ValueError(f"{name} has labels outside 0..{n_classes - 1}")
    w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    cm = np.bincount(t * n_classes + p, weights=w, minlength=n_classes * n_classes)
    cm = cm.reshape(n_classes, n_classes)
    if normalize is None:
        return cm
    cm = cm.astype(np.float64)
    if normalize == "true":
        return _safe_div(cm, cm.sum(axis=1, keepdims=True))
    if normalize == "pred":
        return _safe_div(cm, cm.sum(axis=0, keepdims=True))
    if normalize == "all":
        return _safe_div(cm, cm.sum())
    raise ValueError(f"normalize must be None, 'true', 'pred' or 'all', got {normalize!r}")


def efficiency_purity_f1(y_true: Any, y_pred: Any, n_classes: int) -> dict[str, np.ndarray]:
    """Per-class efficiency (recall), purity (precision), F1 and support.

    y_true, y_pred: [N] labels in 0..C-1. Returns a dict of [C] arrays: "efficiency",
    "purity", "f1" (float, 0 where undefined, as sklearn's zero_division=0) and "support"
    (int, number of true samples of each class).
    """
    cm = confusion_matrix(y_true, y_pred, n_classes)
    tp = np.diag(cm)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    # 2tp / (2tp + fp + fn) equals 2PR/(P+R) where both are defined, and gives sklearn's
    # zero_division=0 value (0) exactly where they are not.
    return {
        "efficiency": _safe_div(tp, support),
        "purity": _safe_div(tp, predicted),
        "f1": _safe_div(2 * tp, support + predicted),
        "support": support.astype(np.int64),
    }


def classification_report(y_true: Any, y_pred: Any, class_names: list[str]) -> dict[str, Any]:
    """The numbers of sklearn's ``classification_report(..., output_dict=True)``.

    y_true, y_pred: [N] labels in 0..C-1 with C = len(class_names). Returns
    ``{name: {"precision", "recall", "f1-score", "support"}}`` for each class, plus
    "macro avg" (unweighted mean over all C classes, absent ones included),
    "weighted avg" (weighted by support) and "accuracy" (float).
    """
    n_classes = len(class_names)
    epf = efficiency_purity_f1(y_true, y_pred, n_classes)
    columns = {"precision": epf["purity"], "recall": epf["efficiency"], "f1-score": epf["f1"]}
    support = epf["support"]
    total = int(support.sum())
    report: dict[str, Any] = {}
    for c, name in enumerate(class_names):
        report[name] = {k: float(v[c]) for k, v in columns.items()} | {"support": int(support[c])}
    report["accuracy"] = accuracy(y_true, y_pred)
    report["macro avg"] = {k: float(v.mean()) for k, v in columns.items()} | {"support": total}
    weights = support / total if total else np.zeros(n_classes)
    report["weighted avg"] = {k: float(v @ weights) for k, v in columns.items()} | {"support": total}
    return report


def format_classification_report(report: dict[str, Any], digits: int = 3) -> str:
    """A markdown table of a `classification_report` dict (for report.md files)."""
    lines = ["| class | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    total = report.get("macro avg", {}).get("support", "")
    for name, r in report.items():
        if name == "accuracy":
            # sklearn's layout: accuracy sits in the F1 column, between classes and averages.
            lines.append(f"| **accuracy** | | | {r:.{digits}f} | {total} |")
            continue
        cells = [f"{r[k]:.{digits}f}" for k in ("precision", "recall", "f1-score")]
        label = f"**{name}**" if name in ("macro avg", "weighted avg") else name
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {r['support']} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- ROC / binary


def roc_curve(
    y_true: Any, scores: Any, sample_weight: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve of binary labels [N] against scores [N] (higher = more signal-like).

    Returns (fpr [K+1], tpr [K+1], thresholds [K+1]) with one point per distinct score
    (tied scores collapse to one point), preceded by (0, 0) at threshold +inf: the same
    points as sklearn's ``roc_curve(drop_intermediate=False)``. A rate whose class is
    absent is NaN.
    """
    y, s, w = _binary(y_true, scores, sample_weight)
    thresholds, tp, fp = _score_groups(y, s, w)
    tp, fp = np.r_[0.0, tp], np.r_[0.0, fp]
    with np.errstate(invalid="ignore", divide="ignore"):
        fpr = fp / fp[-1] if fp[-1] > 0 else np.full_like(fp, np.nan)
        tpr = tp / tp[-1] if tp[-1] > 0 else np.full_like(tp, np.nan)
    return fpr, tpr, np.r_[np.inf, thresholds]


def roc_auc(y_true: Any, scores: Any, sample_weight: Any = None) -> float:
    """Area under the ROC curve, exact with ties; NaN when only one class is present.

    y_true: [N] in {0, 1}; scores: [N]; sample_weight: optional [N].
    This is the Mann-Whitney statistic P(s_pos > s_neg) + 0.5 P(s_pos == s_neg), computed
    in O(N log N) by sorting, and equals the trapezoidal area under `roc_curve`.
    """
    y, s, w = _binary(y_true, scores, sample_weight)
    _, tp, fp = _score_groups(y, s, w)
    if len(tp) == 0 or tp[-1] <= 0 or fp[-1] <= 0:
        return float("nan")
    # Scores sorted high to low: the positives of a tied group beat every negative in the
    # groups after it (fp[-1] - fp of them) and draw with the negatives of their own group.
    d_tp = np.diff(np.r_[0.0, tp])
    d_fp = np.diff(np.r_[0.0, fp])
    wins = d_tp * (fp[-1] - fp) + 0.5 * d_tp * d_fp
    return float(wins.sum() / (tp[-1] * fp[-1]))


def one_vs_rest_auc(y_true: Any, probs: Any) -> tuple[np.ndarray, float]:
    """One-vs-rest AUC of each class. y_true: [N] labels; probs: [N, C] scores.

    Returns (per_class [C], macro): per_class is NaN for a class that is absent (or is
    every sample); macro is the mean over the classes where it is defined (NaN if none).
    """
    t = _labels(y_true, "y_true")
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or len(p) != len(t):
        raise ValueError(f"probs must be [N, C] with N = {len(t)}, got shape {p.shape}")
    per_class = np.array([roc_auc(t == c, p[:, c]) for c in range(p.shape[1])])
    defined = per_class[np.isfinite(per_class)]
    return per_class, float(defined.mean()) if len(defined) else float("nan")


def threshold_for(y_true: Any, scores: Any, criterion: str = "f1") -> float:
    """The score threshold (predict positive if score >= it) that maximises a criterion.

    y_true: [N] in {0, 1}; scores: [N]. criterion: "f1", "youden" (tpr - fpr) or
    "accuracy". The threshold returned is one of the scores; on ties in the criterion the
    highest threshold wins. Raises ValueError when y_true has no positives, since no
    threshold is then meaningful.
    """
    y, s, w = _binary(y_true, scores)
    thresholds, tp, fp = _score_groups(y, s, w)
    n_pos, n_neg = w[y].sum(), w[~y].sum()
    if n_pos == 0:
        raise ValueError("threshold_for needs at least one positive example")
    if criterion == "f1":
        value = _safe_div(2 * tp, tp + fp + n_pos)  # 2tp / (2tp + fp + fn)
    elif criterion == "youden":
        value = tp / n_pos - _safe_div(fp, n_neg)
    elif criterion == "accuracy":
        value = (tp + n_neg - fp) / (n_pos + n_neg)
    else:
        raise ValueError(f"criterion must be 'f1', 'youden' or 'accuracy', got {criterion!r}")
    return float(thresholds[int(np.argmax(value))])


def binary_metrics(y_true: Any, scores: Any, threshold: float) -> dict[str, float]:
    """Accuracy, precision, recall, F1 at `threshold` (score >= threshold is positive), and AUC.

    y_true: [N] in {0, 1}; scores: [N]. Undefined ratios are 0; AUC is NaN with one class.
    """
    y, s, _ = _binary(y_true, scores)
    pred = s >= threshold
    tp = float(np.sum(pred & y))
    fp = float(np.sum(pred & ~y))
    fn = float(np.sum(~pred & y))
    return {
        "accuracy": float(np.mean(pred == y)) if len(y) else float("nan"),
        "precision": float(_safe_div(tp, tp + fp)),
        "recall": float(_safe_div(tp, tp + fn)),
        "f1": float(_safe_div(2 * tp, 2 * tp + fp + fn)),
        "auc": roc_auc(y, s),
    }


# --------------------------------------------------------------------------- directions


def _vectors(pred: Any, true: Any) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(pred, dtype=np.float64)
    b = np.asarray(true, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] != 3:
        raise ValueError(f"pred and true must both be [N, 3], got {a.shape} and {b.shape}")
    return a, b


def _angle_deg(a: np.ndarray, b: np.ndarray, up_to_sign: bool) -> np.ndarray:
    # atan2(|a x b|, a.b) is accurate at all angles, where arccos(cos) loses half the
    # digits near 0 and 180 degrees; it also needs no normalisation.
    cross = np.linalg.norm(np.cross(a, b), axis=1)
    dot = np.einsum("ij,ij->i", a, b)
    angle = np.degrees(np.arctan2(cross, np.abs(dot) if up_to_sign else dot))
    # A zero vector has no direction: say so rather than report a perfect 0 degrees.
    degenerate = (np.linalg.norm(a, axis=1) == 0) | (np.linalg.norm(b, axis=1) == 0)
    return np.where(degenerate, np.nan, angle)


def angular_error_deg(pred: Any, true: Any) -> np.ndarray:
    """Angle in degrees [N] (0..180) between pred [N, 3] and true [N, 3].

    Inputs need not be unit vectors; a zero vector gives NaN.
    """
    return _angle_deg(*_vectors(pred, true), up_to_sign=False)


def axis_error_deg(pred: Any, true: Any) -> np.ndarray:
    """Angle in degrees [N] (0..90) between the axes of pred [N, 3] and true [N, 3].

    For quantities defined only up to sign (e.g. a shower axis without head-tail
    information): min(angle, 180 - angle). A zero vector gives NaN.
    """
    return _angle_deg(*_vectors(pred, true), up_to_sign=True)


def containment(values: Any, q: float = 0.68) -> float:
    """The value below which a fraction q of `values` [N] lies (e.g. the 68% containment angle).

    Linear interpolation between order statistics (numpy's default); NaNs propagate.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    return float(np.quantile(v, q)) if len(v) else float("nan")


# --------------------------------------------------------------------------- binned summaries


def binned_mean(x: Any, y: Any, bins: int | Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean of y [N] in bins of x [N], with its standard error.

    bins: number of equal-width bins over the range of x, or bin edges [K+1]. Values of x
    outside the edges are dropped; the last bin includes its upper edge. Returns
    (edges [K+1], mean [K], sem [K], count [K]); mean and sem are NaN in empty bins and sem
    is 0 for a bin with one entry. For an efficiency vs pT curve pass y = 0/1 outcomes.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    _same_length(x, y)
    edges = np.histogram_bin_edges(x, bins=bins)
    k = len(edges) - 1
    idx = np.searchsorted(edges, x, side="right") - 1
    idx[x == edges[-1]] = k - 1
    keep = (idx >= 0) & (idx < k)
    idx, yk = idx[keep], y[keep]
    count = np.bincount(idx, minlength=k)
    total = np.bincount(idx, weights=yk, minlength=k)
    mean = np.divide(total, count, out=np.full(k, np.nan), where=count > 0)
    sq_dev = np.bincount(idx, weights=(yk - mean[idx]) ** 2, minlength=k)
    var = np.divide(sq_dev, count - 1, out=np.zeros(k), where=count > 1)
    sem = np.where(count > 0, np.sqrt(var / np.maximum(count, 1)), np.nan)
    return edges, mean, sem, count


# One Gaussian standard deviation: HEP's confidence level for efficiency error bars (ROOT's
# TEfficiency default, 0.682689).
ONE_SIGMA = 0.682689492137086


def efficiency_interval(k: Any, n: Any, confidence: float = ONE_SIGMA) -> tuple[np.ndarray, np.ndarray]:
    """Clopper-Pearson (exact binomial) interval of the efficiency k / n: (lo [K], hi [K]).

    k, n: [K] passing and total counts (whole numbers, 0 <= k <= n). lo = 0 at k = 0 and hi = 1 at
    k = n; the other ends are Beta quantiles, so a bin at 0 or 1 still has a one-sided error.
    Bins with n = 0 get NaN. Equals scipy.stats.binomtest(k, n).proportion_ci(confidence,
    method="exact") and ROOT's TEfficiency default (68.3 %).
    """
    from scipy import stats

    k, n = np.asarray(k, dtype=np.float64), np.asarray(n, dtype=np.float64)
    if k.shape != n.shape:
        raise ValueError(f"k and n must have one shape, got {k.shape} and {n.shape}")
    if np.any((k < 0) | (k > n)) or np.any(k != np.round(k)) or np.any(n != np.round(n)):
        raise ValueError("k and n must be whole counts with 0 <= k <= n")
    tail = (1.0 - confidence) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        lo = np.where(k > 0, stats.beta.ppf(tail, np.maximum(k, 1), n - k + 1), 0.0)
        hi = np.where(k < n, stats.beta.ppf(1 - tail, k + 1, np.maximum(n - k, 1)), 1.0)
    return np.where(n > 0, lo, np.nan), np.where(n > 0, hi, np.nan)
