"""Core convolutions (`jaxhep.conv`): `conv2d`'s own backward pass against XLA's (also on
rectangular images and under vmap), block-diagonal grouped convolutions against XLA's grouped
ones, the bias option, odd kernels only, and canonical backward convolutions inside `lax.scan`."""

from __future__ import annotations

import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxhep.conv import Conv, conv2d, xla_conv2d


def _x(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def _jitted(module, method="__call__"):
    """x -> module.method(x) as one jitted program (eager calls compile every op apart)."""
    graphdef, state = nnx.split(module)
    fn = jax.jit(lambda s, x: getattr(nnx.merge(graphdef, s), method)(x))
    return lambda x: fn(state, x)


@pytest.mark.parametrize(
    "h, w, k, stride, groups",
    [
        (8, 8, 3, 1, 1),
        (8, 8, 3, 2, 1),
        (8, 8, 1, 2, 1),
        (8, 8, 3, 1, 2),
        (8, 8, 3, 2, 2),
        (7, 7, 3, 2, 1),
        (8, 7, 3, 2, 1),  # H and W need different backward paddings at stride 2
        (12, 4, 5, 1, 1),  # DUNE-like: tall images, 5x5 kernel
    ],
)
def test_conv2d_own_backward_matches_xla(h, w, k, stride, groups):
    x, kern = _x((3, h, w, 4)), _x((k, k, 4 // groups, 6), seed=1)
    pad = (k - 1) // 2
    ct = _x(xla_conv2d(x, kern, stride, pad, groups).shape, seed=2)  # a random cotangent

    @jax.jit
    def both(x, kern):
        def loss(conv):
            return lambda x, kern: jnp.sum(ct * conv(x, kern, stride, pad, groups))

        outs = conv2d(x, kern, stride, pad, groups), xla_conv2d(x, kern, stride, pad, groups)
        return outs, jax.grad(loss(conv2d), (0, 1))(x, kern), jax.grad(loss(xla_conv2d), (0, 1))(x, kern)

    (y_ours, y_xla), ours, xla = both(x, kern)
    np.testing.assert_allclose(y_ours, y_xla, rtol=1e-6)
    for a, b in zip(ours, xla):
        chex.assert_shape(a, b.shape)
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_conv2d_under_vmap_over_stacked_kernels():
    """Ensemble members (`nnx.vmap` over the kernel's leading axis, the batch shared): the custom VJP
    batches, and per-member gradients equal XLA's."""
    x, kerns = _x((2, 6, 5, 3)), _x((2, 3, 3, 3, 4), seed=1)  # 2 members
    ct = _x((2, 2, 6, 5, 4), seed=2)

    def grads(conv):
        def loss(x, kern, ct):
            return jnp.sum(ct * conv(x, kern, 1, 1, 1))

        return jax.vmap(jax.grad(loss, (0, 1)), in_axes=(None, 0, 0))(x, kerns, ct)

    ours, xla = jax.jit(lambda: (grads(conv2d), grads(xla_conv2d)))()
    for a, b in zip(ours, xla):
        chex.assert_shape(a, b.shape)
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_dense_groups_equal_xla_grouped_convolution():
    dense = Conv(8, 8, 3, 1, 2, dense_groups=True, rngs=nnx.Rngs(0))
    native = Conv(8, 8, 3, 1, 2, dense_groups=False, rngs=nnx.Rngs(0))
    x = _x((2, 6, 6, 8))
    w = dense.dense_kernel()
    chex.assert_shape(w, (3, 3, 8, 8))
    assert float(jnp.abs(w[:, :, :4, 4:]).max()) == 0.0 and float(jnp.abs(w[:, :, 4:, :4]).max()) == 0.0
    np.testing.assert_allclose(_jitted(dense)(x), _jitted(native)(x), rtol=1e-5, atol=1e-5)
    grad = nnx.jit(nnx.grad(lambda m: jnp.sum(jnp.sin(m(x)))))
    np.testing.assert_allclose(grad(dense).kernel[...], grad(native).kernel[...], rtol=1e-4, atol=1e-4)


def test_bias_is_added_and_gets_the_summed_cotangent():
    conv = Conv(3, 4, 3, use_bias=True, rngs=nnx.Rngs(0))
    assert conv.bias.shape == (4,) and conv.bias.dtype == jnp.float32
    np.testing.assert_array_equal(conv.bias[...], 0.0)  # zeros at init
    conv.bias[...] = jnp.array([0.5, -1.0, 2.0, 0.25])
    assert Conv(3, 4, 3, rngs=nnx.Rngs(0)).bias is None  # no bias by default
    x, ct = _x((2, 6, 5, 3)), _x((2, 6, 5, 4), seed=2)

    def reference(kernel, bias):  # XLA's convolution and autodiff
        return jnp.sum(ct * (xla_conv2d(x, kernel, 1, 1, 1) + bias))

    @nnx.jit
    def ours(conv):
        return conv(x), nnx.grad(lambda m: jnp.sum(ct * m(x)))(conv)

    y, grads = ours(conv)
    kernel, bias = conv.kernel[...], conv.bias[...]
    np.testing.assert_allclose(y, xla_conv2d(x, kernel, 1, 1, 1) + bias, rtol=1e-6, atol=1e-6)
    dk, db = jax.jit(jax.grad(reference, (0, 1)))(kernel, bias)
    np.testing.assert_allclose(grads.bias[...], db, rtol=1e-5)
    np.testing.assert_allclose(grads.bias[...], ct.sum((0, 1, 2)), rtol=1e-5)
    np.testing.assert_allclose(grads.kernel[...], dk, rtol=1e-4, atol=1e-4)
    bf16 = Conv(3, 4, 3, dtype=jnp.bfloat16, use_bias=True, rngs=nnx.Rngs(0))
    assert bf16.bias.dtype == jnp.float32 and _jitted(bf16)(x).dtype == jnp.bfloat16


@pytest.mark.parametrize("k", [0, 2, 4])
def test_even_kernel_sizes_are_refused(k):
    with pytest.raises(ValueError, match="odd kernel size"):
        Conv(2, 2, k, rngs=nnx.Rngs(0))


def test_taps_that_see_only_padding_are_cropped_without_changing_a_number():
    """7x7 on 16 x 2 maps (DUNE's deepest stages): 7 x 3 live taps, same output and gradients as
    the full kernel (the cropped taps' gradient is 0)."""
    conv = Conv(3, 2, 7, use_bias=True, rngs=nnx.Rngs(0))
    w, pad = conv.live_kernel(conv.kernel[...], (16, 2))
    chex.assert_shape(w, (7, 3, 3, 2))
    assert pad == (3, 1)
    x, ct = _x((2, 16, 2, 3)), _x((2, 16, 2, 2), seed=2)

    def reference(kernel, x):  # XLA's convolution with the full kernel
        return jnp.sum(ct * xla_conv2d(x, kernel, 1, 3, 1))

    @nnx.jit
    def ours(conv, x):
        return conv(x), nnx.grad(lambda m, x: jnp.sum(ct * m(x)), argnums=(0, 1))(conv, x)

    y, (grads, dx) = ours(conv, x)
    kernel = conv.kernel[...]
    dk, dx_ref = jax.jit(jax.grad(reference, (0, 1)))(kernel, x)
    np.testing.assert_allclose(y, xla_conv2d(x, kernel, 1, 3, 1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grads.kernel[...], dk, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(grads.kernel[:, :2], 0.0)  # columns 2 and more off the centre
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-4, atol=1e-5)


class _Stack(nnx.Module):
    """Every kind of convolution a model here has: 3x3 s2, grouped 3x3, 1x1 s2, and a 7x7 with a
    bias on 16 x 2 maps (more taps than pixels before cropping: XLA would swap its operands)."""

    def __init__(self, own: bool):
        rngs = nnx.Rngs(0)
        self.a = Conv(4, 8, 3, 2, own_vjp=own, rngs=rngs)
        self.b = Conv(8, 8, 3, 1, 2, own_vjp=own, dense_groups=own, rngs=rngs)
        self.c = Conv(4, 8, 1, 2, own_vjp=own, rngs=rngs)
        self.d = Conv(8, 2, 7, own_vjp=own, use_bias=True, rngs=rngs)

    def __call__(self, x):
        return self.d(self.b(nnx.relu(self.a(x))) + self.c(x))


def _scan_conv_labels(module: nnx.Module) -> list[str]:
    """dim_labels of every convolution in a compiled 2-step scan of the module's gradient."""
    graphdef, state = nnx.split(module)
    x = _x((2, 32, 4, 4))

    def steps(state, x):
        def body(carry, _):
            return carry, jax.grad(lambda s, x: jnp.sum(nnx.merge(graphdef, s)(x)), (0, 1))(state, x)

        return jax.lax.scan(body, 0, None, length=2)[1]

    hlo = jax.jit(steps).lower(state, x).compile().as_text()
    return re.findall(r"convolution\(.*?dim_labels=([\w>-]+)", hlo)


def test_backward_convolutions_stay_canonical_inside_scan():
    """Inside `lax.scan` (the Trainer's step loop) XLA:CPU runs only NHWC/HWIO convolutions as
    library calls; XLA's own conv transpose leaves others there, which run as naive loops."""
    ours = _scan_conv_labels(_Stack(True))
    assert len(ours) >= 8 and set(ours) == {"b01f_01io->b01f"}, ours
    assert set(_scan_conv_labels(_Stack(False))) != {"b01f_01io->b01f"}  # what the fix is for
