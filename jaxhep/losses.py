"""Loss functions shared by the tasks, in JAX.

Every loss is jit-able, computes in float32 whatever the input dtype (bf16 logits
are common under mixed precision, and their log-probabilities are too coarse to
sum), and returns a scalar: the mean of the per-example loss over the valid
examples,

    loss = sum_i mask_i * l_i / max(sum_i mask_i, 1),

so padded rows (mask 0) contribute neither to the value nor to the gradient, and an
all-padding batch gives 0 rather than NaN. Class weights scale l_i but do not enter
the denominator (PyTorch's ``CrossEntropyLoss(weight=...)`` divides by the sum of the
weights instead); with `balanced_class_weights` the two differ only by a batch-level
constant close to 1. Padded rows may hold anything, NaN included: they are replaced
by harmless values before the arithmetic, so their gradient is exactly 0.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "angle_between",
    "angular_loss",
    "balanced_class_weights",
    "cosine_loss",
    "focal_angular_loss",
    "hybrid_angular_loss",
    "sigmoid_focal_loss",
    "softmax_cross_entropy",
    "softmax_focal_loss",
    "weighted_bce",
]

Array = jax.Array


# --------------------------------------------------------------------------- masking


def _valid(mask: Any, batch: int) -> Array:
    """The mask as a float32 [B] (all ones when None)."""
    if mask is None:
        return jnp.ones((batch,), jnp.float32)
    mask = jnp.asarray(mask)
    if mask.shape != (batch,):
        raise ValueError(f"mask must be [B] = ({batch},), got shape {mask.shape}")
    return mask.astype(jnp.float32)


def _keep(x: Array, valid: Array, fill: Any = 0.0) -> Array:
    """x with the rows of invalid examples replaced by `fill` (x: [B, ...])."""
    v = valid.reshape(valid.shape + (1,) * (x.ndim - 1)) > 0
    return jnp.where(v, x, jnp.asarray(fill, x.dtype))


def _masked_mean(per_example: Array, valid: Array) -> Array:
    """Sum of per_example [B] over valid rows divided by the number of valid rows (>= 1)."""
    total = jnp.sum(jnp.where(valid > 0, per_example * valid, 0.0))
    return total / jnp.maximum(jnp.sum(valid), 1.0)


def _class_weight(class_weights: Any, one_hot: Array) -> Array:
    """w_y per example [B] from weights [C] and one-hot (or soft) targets [B, C]."""
    if class_weights is None:
        return jnp.ones(one_hot.shape[:1], jnp.float32)
    return one_hot @ jnp.asarray(class_weights, jnp.float32)


def _focus(one_minus_pt: Array, gamma: float) -> Array:
    """The focal modulating factor (1 - p_t)^gamma."""
    if isinstance(gamma, (int, float)) and gamma == 0:
        return jnp.ones_like(one_minus_pt)  # 0 ** 0 would put NaN in the gradient
    return one_minus_pt**gamma


# --------------------------------------------------------------------------- classification


def softmax_focal_loss(
    logits: Array,
    labels: Array,
    alpha: float = 0.25,
    gamma: float = 2.0,
    class_weights: Any = None,
    mask: Any = None,
) -> Array:
    """Multi-class focal loss (Lin et al. 2017), FL = -alpha * w_y * (1 - p_t)^gamma * log p_t.

    logits: [B, C]; labels: [B] int in 0..C-1 (anything for masked rows);
    class_weights: optional [C]; mask: optional [B]. p_t is the softmax probability of
    the true class, taken from log_softmax so it is stable for large logits. With
    gamma = 0 this is alpha * (weighted) cross-entropy. Returns the masked mean (module
    docstring).
    """
    b, c = logits.shape
    valid = _valid(mask, b)
    logp = jax.nn.log_softmax(_keep(logits.astype(jnp.float32), valid), axis=-1)
    # Out-of-range labels (padding) give an all-zero one-hot row, hence a finite 0 loss.
    one_hot = jax.nn.one_hot(labels, c, dtype=jnp.float32)
    logp_t = jnp.sum(one_hot * logp, axis=-1)
    # 1 - p_t via expm1 keeps its digits when p_t is close to 1, where focusing matters.
    modulator = _focus(-jnp.expm1(logp_t), gamma)
    per_example = -alpha * _class_weight(class_weights, one_hot) * modulator * logp_t
    return _masked_mean(per_example, valid)


def softmax_cross_entropy(
    logits: Array,
    labels: Array,
    class_weights: Any = None,
    label_smoothing: float = 0.0,
    mask: Any = None,
) -> Array:
    """Softmax cross-entropy, -sum_c w_c * t_c * log p_c, with hard or soft targets.

    logits: [B, C]; labels: [B] int (hard) or [B, C] float target distributions (soft,
    e.g. mixup); class_weights: optional [C]; label_smoothing eps turns targets t into
    (1 - eps) * t + eps / C (PyTorch's and optax's convention); mask: optional [B].
    Returns the masked mean (module docstring).
    """
    b, c = logits.shape
    valid = _valid(mask, b)
    logp = jax.nn.log_softmax(_keep(logits.astype(jnp.float32), valid), axis=-1)
    if labels.ndim == logits.ndim:
        targets = _keep(labels.astype(jnp.float32), valid)
    else:
        targets = jax.nn.one_hot(labels, c, dtype=jnp.float32)
    if label_smoothing:
        targets = (1.0 - label_smoothing) * targets + label_smoothing / c
    if class_weights is not None:
        targets = targets * jnp.asarray(class_weights, jnp.float32)
    return _masked_mean(-jnp.sum(targets * logp, axis=-1), valid)


def sigmoid_focal_loss(
    logits: Array,
    labels: Array,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    mask: Any = None,
) -> Array:
    """Binary focal loss in RetinaNet's form: alpha_t * (1 - p_t)^gamma * BCE(logits, labels).

    logits: [B] or [B, K]; labels: same shape, in {0, 1} (soft values in [0, 1] also
    work); mask: optional [B]. alpha weights positives and 1 - alpha negatives; None
    turns the weighting off. Stable for any |logits|: BCE uses softplus and 1 - p_t is
    a sigmoid of +-logits, never 1 - sigmoid. Returns the mean over valid elements.
    """
    valid = _valid(mask, logits.shape[0])
    x = _keep(logits.astype(jnp.float32), valid)
    y = _keep(labels.astype(jnp.float32), valid)
    bce = y * jax.nn.softplus(-x) + (1.0 - y) * jax.nn.softplus(x)
    one_minus_pt = y * jax.nn.sigmoid(-x) + (1.0 - y) * jax.nn.sigmoid(x)
    loss = bce * _focus(one_minus_pt, gamma)
    if alpha is not None:
        loss = (alpha * y + (1.0 - alpha) * (1.0 - y)) * loss
    return _masked_mean(_per_row(loss), valid)


def weighted_bce(logits: Array, labels: Array, pos_weight: Any = 1.0, mask: Any = None) -> Array:
    """PyTorch's ``BCEWithLogitsLoss(pos_weight=...)`` with mean reduction, plus a mask.

    l = -[pos_weight * y * log sigmoid(x) + (1 - y) * log(1 - sigmoid(x))], written with
    softplus so that logits of +-1e4 (or bf16 inputs) stay finite. logits, labels: [B]
    or [B, K]; pos_weight: scalar or [K] (per output, as in PyTorch); mask: optional
    [B]. Returns the mean over valid elements, which equals PyTorch's value when
    nothing is masked.
    """
    valid = _valid(mask, logits.shape[0])
    x = _keep(logits.astype(jnp.float32), valid)
    y = _keep(labels.astype(jnp.float32), valid)
    pw = jnp.asarray(pos_weight, jnp.float32)
    # log sigmoid(x) = -softplus(-x); log(1 - sigmoid(x)) = -softplus(x).
    loss = pw * y * jax.nn.softplus(-x) + (1.0 - y) * jax.nn.softplus(x)
    return _masked_mean(_per_row(loss), valid)


def _per_row(loss: Array) -> Array:
    """Mean over the non-batch axes, so that the masked mean is a mean over elements."""
    return loss if loss.ndim == 1 else loss.reshape(loss.shape[0], -1).mean(axis=1)


def balanced_class_weights(labels: Any, n_classes: int) -> np.ndarray:
    """sklearn's "balanced" weights [C]: n_samples / (n_classes * count_c), 0 for absent classes.

    labels: [N] ints in 0..C-1 (host-side numpy, computed once on the training set).
    """
    labels = np.asarray(labels).astype(np.int64).ravel()
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    if len(counts) > n_classes:
        raise ValueError(f"labels exceed n_classes - 1 = {n_classes - 1}")
    return np.divide(len(labels), n_classes * counts, out=np.zeros(n_classes), where=counts > 0).astype(
        np.float32
    )


# --------------------------------------------------------------------------- directions


def _safe_norm(x: Array) -> Array:
    """|x| over the last axis with gradient 0 (not NaN) at x = 0."""
    sq = jnp.sum(x * x, axis=-1)
    nonzero = sq > 0
    # The inner where keeps sqrt's infinite slope at 0 out of the backward pass.
    return jnp.where(nonzero, jnp.sqrt(jnp.where(nonzero, sq, 1.0)), 0.0)


def _unit(x: Array) -> Array:
    """x / |x| over the last axis; a zero vector stays zero."""
    n = _safe_norm(x)[..., None]
    return x / jnp.where(n > 0, n, 1.0)


def _directions(pred: Array, true: Array, mask: Any) -> tuple[Array, Array, Array]:
    """(unit pred [B, 3], unit true [B, 3], valid [B]) with invalid rows made harmless."""
    if pred.shape != true.shape or pred.ndim != 2:
        raise ValueError(f"pred and true must both be [B, 3], got {pred.shape} and {true.shape}")
    valid = _valid(mask, pred.shape[0])
    a = _unit(_keep(pred.astype(jnp.float32), valid, 1.0))
    b = _unit(_keep(true.astype(jnp.float32), valid, 1.0))
    return a, b, valid


def angle_between(pred: Array, true: Array) -> Array:
    """Angle in radians [B] (0..pi) between pred [B, 3] and true [B, 3], any lengths.

    Computed as 2 * atan2(|a - b|, |a + b|) on the unit vectors: the same value as
    arccos(clip(a . b)) but accurate near 0 and pi, and its gradient is bounded
    (1/|pred| at most) instead of blowing up like arccos's 1/sin. At exactly 0 or pi,
    where the angle has a kink, the gradient is 0.
    """
    return _angle_of_units(_unit(pred.astype(jnp.float32)), _unit(true.astype(jnp.float32)))


def _angle_of_units(a: Array, b: Array) -> Array:
    return 2.0 * jnp.arctan2(_safe_norm(a - b), _safe_norm(a + b))


def cosine_loss(pred: Array, true: Array, mask: Any = None) -> Array:
    """Mean of 1 - cos(angle) between pred [B, 3] (any length) and true [B, 3]; mask: [B]."""
    a, b, valid = _directions(pred, true, mask)
    return _masked_mean(1.0 - jnp.sum(a * b, axis=-1), valid)


def angular_loss(pred: Array, true: Array, mask: Any = None) -> Array:
    """Mean angle in radians between pred [B, 3] (any length) and true [B, 3]; mask: [B].

    Finite value and gradient everywhere, including perfect and anti-parallel
    predictions (see `angle_between`).
    """
    a, b, valid = _directions(pred, true, mask)
    return _masked_mean(_angle_of_units(a, b), valid)


def focal_angular_loss(pred: Array, true: Array, gamma: float = 2.0, mask: Any = None) -> Array:
    """Mean of (err / pi)^gamma * err, err the angle in radians: stresses badly wrong directions.

    pred, true: [B, 3]; mask: optional [B].
    """
    a, b, valid = _directions(pred, true, mask)
    err = _angle_of_units(a, b)
    return _masked_mean((err / jnp.pi) ** gamma * err, valid)


def hybrid_angular_loss(pred: Array, true: Array, alpha: float = 0.7, mask: Any = None) -> Array:
    """alpha * angular_loss + (1 - alpha) * MSE(pred / |pred|, true).

    pred, true: [B, 3]; mask: optional [B]. The MSE is a mean over the 3 components (as
    PyTorch's MSELoss), i.e. (2/3) * (1 - cos) per example: it keeps a smooth, non-zero
    gradient near the optimum where the angle alone has a kink.
    """
    a, b, valid = _directions(pred, true, mask)
    per_example = alpha * _angle_of_units(a, b) + (1.0 - alpha) * jnp.mean((a - b) ** 2, axis=-1)
    return _masked_mean(per_example, valid)
