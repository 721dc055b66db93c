"""jaxhep.losses: hand-computed values, reference formulas, stability, masks, jit."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxhep import losses
from tests.approx import approx

LN2, LN4 = np.log(2.0), np.log(4.0)


# --------------------------------------------------------------------------- focal


def test_softmax_focal_by_hand():
    # logits (0, ln 3) -> softmax (1/4, 3/4).
    logits = jnp.array([[0.0, np.log(3.0)], [0.0, np.log(3.0)]])
    labels = jnp.array([1, 0])
    ce = np.array([-np.log(0.75), LN4])
    # gamma = 0 is alpha * cross-entropy: 0.25 * mean(0.28768, 1.38629) = 0.209247
    got = losses.softmax_focal_loss(logits, labels, alpha=0.25, gamma=0.0)
    assert got == approx(0.25 * ce.mean(), rel=1e-6)
    # gamma = 2: label 1 -> 0.25 * 0.25^2 * 0.287682 = 0.00449503
    #            label 0 -> 0.25 * 0.75^2 * 1.386294 = 0.19494767; mean = 0.09972135
    got = losses.softmax_focal_loss(logits, labels, alpha=0.25, gamma=2.0)
    assert got == approx((0.00449503 + 0.19494767) / 2, rel=1e-5)
    # Class weights (2, 1) double the label-0 term: (0.00449503 + 0.38989534) / 2
    got = losses.softmax_focal_loss(logits, labels, class_weights=jnp.array([2.0, 1.0]))
    assert got == approx((0.00449503 + 0.38989534) / 2, rel=1e-5)


def test_sigmoid_focal_by_hand():
    # logit 0 -> p = 1/2, BCE = ln 2, (1 - p_t)^2 = 1/4.
    # y = 1: alpha 0.25 -> 0.25 * 0.25 * ln 2 = 0.0433217; y = 0: 0.75 * 0.25 * ln 2 = 0.1299651
    got = losses.sigmoid_focal_loss(jnp.zeros(2), jnp.array([1.0, 0.0]))
    assert got == approx((0.0433217 + 0.1299651) / 2, rel=1e-5)
    # gamma = 0, alpha = None is plain BCE.
    x, y = jnp.array([-2.0, 0.3, 4.0]), jnp.array([1.0, 0.0, 1.0])
    assert losses.sigmoid_focal_loss(x, y, alpha=None, gamma=0.0) == approx(
        losses.weighted_bce(x, y), rel=1e-6
    )


# --------------------------------------------------------------------------- BCE / CE


def _torch_bce_with_logits(x, y, pos_weight):
    """PyTorch's documented formula, literally, in float64 numpy (mean reduction)."""
    sig = 1.0 / (1.0 + np.exp(-x))
    return np.mean(-(pos_weight * y * np.log(sig) + (1 - y) * np.log(1 - sig)))


def test_weighted_bce_matches_torch_formula():
    rng = np.random.default_rng(0)
    x = rng.normal(scale=3.0, size=(64, 3))
    y = (rng.random((64, 3)) < 0.3).astype(np.float64)
    for pw in (1.0, 4.5, np.array([1.0, 2.0, 10.0])):
        got = losses.weighted_bce(jnp.asarray(x), jnp.asarray(y), pos_weight=pw)
        assert got == approx(_torch_bce_with_logits(x, y, pw), rel=1e-5)
    # By hand: x = 0, y = 1, pos_weight 3 -> 3 ln 2.
    assert losses.weighted_bce(jnp.zeros(1), jnp.ones(1), 3.0) == approx(3 * LN2, rel=1e-6)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_extreme_logits_stay_finite(dtype):
    x = jnp.array([1e4, -1e4, 1e4, -1e4], dtype)
    y = jnp.array([1.0, 0.0, 0.0, 1.0])
    for fn in (losses.weighted_bce, losses.sigmoid_focal_loss):
        value, grad = jax.jit(jax.value_and_grad(lambda x, fn=fn: fn(x, y)))(x)
        assert jnp.isfinite(value) and jnp.all(jnp.isfinite(grad)), fn.__name__
    logits = jnp.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0]], dtype)
    labels = jnp.array([1, 1])
    for fn in (losses.softmax_focal_loss, losses.softmax_cross_entropy):
        value, grad = jax.jit(jax.value_and_grad(lambda z, fn=fn: fn(z, labels)))(logits)
        assert jnp.isfinite(value) and jnp.all(jnp.isfinite(grad)), fn.__name__
    # Right answers, too: confident and right costs ~0, confident and wrong costs ~|x|.
    assert losses.weighted_bce(jnp.array([-1e4], dtype), jnp.ones(1)) == approx(1e4, rel=1e-2)


def test_softmax_cross_entropy_variants():
    logits = jnp.array([[0.0, np.log(3.0)], [2.0, -1.0]])
    labels = jnp.array([1, 0])
    hard = losses.softmax_cross_entropy(logits, labels)
    ref = -np.mean(np.asarray(jax.nn.log_softmax(logits))[[0, 1], [1, 0]])
    assert hard == approx(ref, rel=1e-6)
    # Soft targets equal to the one-hot give the same value.
    soft = losses.softmax_cross_entropy(logits, jax.nn.one_hot(labels, 2))
    assert soft == approx(float(hard), rel=1e-6)
    # Label smoothing eps: targets (1 - eps) * onehot + eps / C.
    eps = 0.1
    smoothed = (1 - eps) * np.eye(2)[[1, 0]] + eps / 2
    ref = -np.mean(np.sum(smoothed * np.asarray(jax.nn.log_softmax(logits)), axis=1))
    assert losses.softmax_cross_entropy(logits, labels, label_smoothing=eps) == approx(ref, rel=1e-6)
    # Class weights (1, 3): row 0 (label 1) weighs 3, row 1 weighs 1; divide by 2 rows.
    # Row 0: 3 * -ln(3/4) = 0.863046; row 1: -log_softmax(2, -1)[0] = ln(1 + e^-3) = 0.048587.
    w = losses.softmax_cross_entropy(logits, labels, class_weights=jnp.array([1.0, 3.0]))
    assert w == approx((0.863046 + 0.048587) / 2, rel=1e-5)


def test_balanced_class_weights():
    # 4 samples, 3 classes, counts (3, 1, 0): 4 / (3 * 3) = 0.444, 4 / (3 * 1) = 1.333, absent -> 0.
    np.testing.assert_allclose(losses.balanced_class_weights([0, 0, 0, 1], 3), [4 / 9, 4 / 3, 0], rtol=1e-6)
    sk = pytest.importorskip("sklearn.utils.class_weight")
    y = np.random.default_rng(1).integers(0, 5, 200)
    ref = sk.compute_class_weight("balanced", classes=np.arange(5), y=y)
    np.testing.assert_allclose(losses.balanced_class_weights(y, 5), ref, rtol=1e-6)


# --------------------------------------------------------------------------- masks and jit


def test_masks_ignore_padded_rows():
    rng = np.random.default_rng(2)
    logits = jnp.asarray(rng.normal(size=(6, 4)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, 4, 6))
    # Two padding rows full of garbage: NaN logits and an out-of-range label.
    pad_logits = jnp.concatenate([logits, jnp.full((2, 4), jnp.nan)])
    pad_labels = jnp.concatenate([labels, jnp.array([-1, 99])])
    mask = jnp.array([1] * 6 + [0, 0], bool)
    for fn in (losses.softmax_focal_loss, losses.softmax_cross_entropy):
        clean = fn(logits, labels)
        padded, grad = jax.jit(jax.value_and_grad(lambda z, fn=fn: fn(z, pad_labels, mask=mask)))(pad_logits)
        assert padded == approx(float(clean), rel=1e-6)
        assert jnp.all(jnp.isfinite(grad)) and jnp.all(grad[6:] == 0)
    x, y = logits[:, 0], (labels > 1).astype(jnp.float32)
    pad_x = jnp.concatenate([x, jnp.array([jnp.inf, jnp.nan])])
    pad_y = jnp.concatenate([y, jnp.array([-5.0, jnp.nan])])
    for fn in (losses.weighted_bce, losses.sigmoid_focal_loss):
        padded, grad = jax.jit(jax.value_and_grad(lambda z, fn=fn: fn(z, pad_y, mask=mask)))(pad_x)
        assert padded == approx(float(fn(x, y)), rel=1e-6)
        assert jnp.all(jnp.isfinite(grad)) and jnp.all(grad[6:] == 0)
    # All rows masked: 0, not NaN.
    assert losses.weighted_bce(x, y, mask=jnp.zeros(6)) == 0.0


def test_losses_jit_to_scalars():
    logits, labels = jnp.zeros((8, 3)), jnp.arange(8) % 3
    pred, true = jnp.ones((8, 3)), jnp.tile(jnp.array([[0.0, 0.0, 1.0]]), (8, 1))
    mask = jnp.arange(8) < 5
    values = [
        jax.jit(losses.softmax_focal_loss)(logits, labels, mask=mask),
        jax.jit(losses.softmax_cross_entropy)(logits, labels, mask=mask),
        jax.jit(losses.sigmoid_focal_loss)(logits[:, 0], labels % 2, mask=mask),
        jax.jit(losses.weighted_bce)(logits[:, 0], labels % 2, 2.0, mask),
    ] + [jax.jit(fn)(pred, true, mask=mask) for fn in _ANGULAR]
    for v in values:
        chex.assert_shape(v, ())
        chex.assert_type(v, jnp.float32)
        assert jnp.isfinite(v)


# --------------------------------------------------------------------------- angular

_ANGULAR = (
    losses.cosine_loss,
    losses.angular_loss,
    losses.focal_angular_loss,
    losses.hybrid_angular_loss,
)


def test_angular_values_by_hand():
    x, y = jnp.array([[1.0, 0.0, 0.0]]), jnp.array([[0.0, 1.0, 0.0]])
    # 90 degrees between (5, 0, 0) and y: the length of pred does not matter.
    assert losses.angular_loss(5 * x, y) == approx(np.pi / 2, rel=1e-6)
    assert losses.cosine_loss(5 * x, y) == approx(1.0, abs=1e-6)
    # focal: (err / pi)^2 * err = (1/2)^2 * pi/2 = pi/8
    assert losses.focal_angular_loss(x, y) == approx(np.pi / 8, rel=1e-6)
    # hybrid: 0.7 * pi/2 + 0.3 * mean((1, -1, 0)^2) = 1.0995574 + 0.3 * 2/3 = 1.2995574
    assert losses.hybrid_angular_loss(x, y) == approx(1.2995574, rel=1e-6)
    assert losses.angular_loss(-x, x) == approx(np.pi, rel=1e-6)
    # Random directions: same as arccos of the cosine.
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    cos = np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    got = losses.angle_between(jnp.asarray(a), jnp.asarray(b))
    np.testing.assert_allclose(got, np.arccos(cos), atol=1e-5)


def test_angular_gradients_finite_at_extremes():
    # Rows 0-1 perfect (pred = 2 * true), rows 2-3 anti-parallel (pred = -2 * true).
    true = jnp.array([[0.0, 0.0, 1.0], [0.6, 0.8, 0.0], [0.0, 0.0, 1.0], [0.6, 0.8, 0.0]])
    pred = true * jnp.array([[2.0], [2.0], [-2.0], [-2.0]])
    np.testing.assert_allclose(losses.angle_between(pred, true), [0, 0, np.pi, np.pi], atol=1e-6)
    for fn in _ANGULAR:
        value, grad = jax.value_and_grad(fn)(pred, true)
        assert jnp.isfinite(value) and jnp.all(jnp.isfinite(grad)), fn.__name__
    # Near (not at) perfect the angle's gradient is bounded, where arccos's would blow up.
    near = true[:2] + jnp.array([[1e-6, 0.0, 0.0], [0.0, 0.0, 1e-6]])
    grad = jax.grad(losses.angular_loss)(near, true[:2])
    assert jnp.all(jnp.isfinite(grad)) and jnp.max(jnp.abs(grad)) < 1.0


def test_angular_masks_ignore_padded_rows():
    rng = np.random.default_rng(5)
    pred = jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)
    true = jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)
    true = true / jnp.linalg.norm(true, axis=1, keepdims=True)
    pad_pred = jnp.concatenate([pred, jnp.array([[jnp.nan] * 3, [0.0, 0.0, 0.0]])])
    pad_true = jnp.concatenate([true, jnp.zeros((2, 3))])
    mask = jnp.array([1, 1, 1, 1, 0, 0])
    for fn in _ANGULAR:
        padded, grad = jax.jit(jax.value_and_grad(lambda p, fn=fn: fn(p, pad_true, mask=mask)))(pad_pred)
        assert padded == approx(float(fn(pred, true)), rel=1e-5), fn.__name__
        assert jnp.all(jnp.isfinite(grad)) and jnp.all(grad[4:] == 0)
