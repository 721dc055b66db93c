"""2-D convolutions that train fast on XLA:CPU too: NHWC/HWIO, own backward pass, quick init.

- `conv2d`: `lax.conv_general_dilated` with a custom VJP whose backward convolutions are all
  NHWC/HWIO/NHWC ("forward-canonical"). XLA's own transpose rule emits convolutions with other
  dimension labels, which XLA:CPU runs as library calls only outside loops; inside the Trainer's
  `lax.scan` of `steps_per_call` steps they become naive loops, 10-40x slower (BUILD_NOTES.md,
  e/gamma speed). `xla_conv2d` is the same convolution with XLA's own backward, the reference.
- `Conv`: a k x k convolution module (odd k, symmetric "SAME" padding (k - 1) / 2, optional bias)
  built on them; grouped convolutions can run as dense ones with block-diagonal kernels, and
  kernels wider than the image lose the taps that see only padding (else XLA swaps the operands
  of such a convolution, which brings back non-canonical labels).
- `fan_in_init`, `he_init`, `lecun_init`: truncated-normal fan-in initialisers that compile one
  random-number program shared by all parameter shapes.

Used by `jaxhep.egamma.model` (ResNet-15) and `jaxhep.dune.models` (DUNE CNNs). Works under
`jax.vmap` / `nnx.vmap` (stacked ensemble members): `jax.custom_vjp` batches its forward and
backward rules.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

_BLOCK = 1 << 16


@jax.jit
def _truncated_normal_block(key):
    return jax.random.truncated_normal(key, -2.0, 2.0, (_BLOCK,), jnp.float32)


def fan_in_init(scale: float):
    """Truncated-normal init with variance scale / fan_in (fan_in = prod(shape[:-1])), as
    `nnx.initializers.variance_scaling(scale, "fan_in", "truncated_normal")`.

    The samples come in fixed blocks of 65 536 from one compiled sampler, so building a model
    compiles one random-number program instead of one per parameter shape (~2 s each on the
    2-core CPU: building the e/gamma network took ~25 s). Works under `nnx.eval_shape` too.
    """

    def init(key, shape, dtype=jnp.float32):
        n, fan_in = math.prod(shape), math.prod(shape[:-1])
        blocks = [_truncated_normal_block(jax.random.fold_in(key, i)) for i in range(-(-n // _BLOCK))]
        std = math.sqrt(scale / fan_in) / 0.87962566103423978  # std of N(0,1) truncated to [-2, 2]
        return (jnp.concatenate(blocks)[:n].reshape(shape) * std).astype(dtype)

    return init


he_init = fan_in_init(2.0)  # convolutions with a ReLU before them
lecun_init = fan_in_init(1.0)  # the distribution of nnx.Linear's and nnx.Conv's default kernel init
DN = ("NHWC", "HWIO", "NHWC")


def _pair(pad) -> tuple[int, int]:
    return (pad, pad) if isinstance(pad, int) else tuple(pad)


def xla_conv2d(x, w, stride: int = 1, pad: int | tuple[int, int] = 1, groups: int = 1):
    """`conv2d` with XLA's own transpose rule for the backward pass (the reference)."""
    return lax.conv_general_dilated(
        x, w, (stride, stride), [(p, p) for p in _pair(pad)], dimension_numbers=DN, feature_group_count=groups
    )


@partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def conv2d(x, w, stride: int = 1, pad: int | tuple[int, int] = 1, groups: int = 1):
    """x [B, H, W, Ci] (*) w [kh, kw, Ci / groups, Co] -> [B, H', W', Co]; symmetric padding
    `pad` (one int, or (pad_h, pad_w)) on both sides of each spatial axis.

    The same convolution as `lax.conv_general_dilated`, with a backward pass written as two
    more NHWC/HWIO/NHWC ("forward-canonical") convolutions: dx = dy (dilated by the stride)
    convolved with the flipped, in/out-swapped kernel; dW = x^T [Ci, H, W, B] convolved with
    dy^T [Ho, Wo, B, Co]. XLA's own transpose rule emits convolutions with other dimension
    labels, which XLA:CPU turns into its fast library calls only outside loops: inside
    the Trainer's `lax.scan` they fall back to naive loops, 20-30x slower (BUILD_NOTES).
    """
    return xla_conv2d(x, w, stride, pad, groups)


def _conv2d_fwd(x, w, stride, pad, groups):
    return xla_conv2d(x, w, stride, pad, groups), (x, w)


def _conv2d_bwd(stride, pad, groups, res, dy):
    x, w = res
    kh, kw, cin_g, cout = w.shape
    pads, ks, sizes, out_sizes = _pair(pad), (kh, kw), x.shape[1:3], dy.shape[1:3]
    # dx: the kernel flipped in space with in/out swapped within each group, [kh, kw, Co/g, Ci].
    wt = jnp.flip(w, (0, 1)).reshape(kh, kw, cin_g, groups, cout // groups)
    wt = wt.transpose(0, 1, 4, 3, 2).reshape(kh, kw, cout // groups, groups * cin_g)
    dx = lax.conv_general_dilated(
        dy.astype(x.dtype),
        wt.astype(x.dtype),
        (1, 1),
        [(k - 1 - p, k - 1 - p + (n + 2 * p - k) % stride) for k, p, n in zip(ks, pads, sizes)],
        lhs_dilation=(stride, stride),
        dimension_numbers=DN,
        feature_group_count=groups,
    )
    # dW: the batch becomes the contracted feature axis, Ci the batch: [Ci/g, kh, kw, Co].
    dw = lax.conv_general_dilated(
        x.transpose(3, 1, 2, 0),
        dy.astype(x.dtype).transpose(1, 2, 0, 3),
        (1, 1),
        [(p, k + (no - 1) * stride - n - p) for k, p, n, no in zip(ks, pads, sizes, out_sizes)],
        rhs_dilation=(stride, stride),
        dimension_numbers=DN,
        batch_group_count=groups,
    )
    return dx, dw.transpose(1, 2, 0, 3).astype(w.dtype)


conv2d.defvjp(_conv2d_fwd, _conv2d_bwd)


class Conv(nnx.Module):
    """k x k convolution, NHWC, symmetric "SAME" padding (k - 1) / 2 (odd k), optional bias.

    kernel [k, k, cin / groups, cout] (init `kernel_init`, He by default), bias [cout] (zeros;
    none by default: a BatchNorm usually follows); both float32, cast to `dtype` at call time.
    With `groups > 1` and `dense_groups` the convolution runs as a dense one with the
    block-diagonal kernel built from it (same result and gradient; twice the FLOPs of
    groups=2, but XLA:CPU's grouped convolutions, forward and backward, are far slower than
    that; see BUILD_NOTES). `own_vjp`: use `conv2d` (False: `xla_conv2d`). At stride 1 the
    taps that only ever see padding are left out (`live_kernel`).
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        k: int = 3,
        stride: int = 1,
        groups: int = 1,
        dtype=jnp.float32,
        own_vjp: bool = True,
        dense_groups: bool = True,
        *,
        use_bias: bool = False,
        kernel_init=he_init,
        rngs: nnx.Rngs,
    ):
        if k < 1 or k % 2 == 0:
            raise ValueError(f"Conv needs an odd kernel size (symmetric 'SAME' padding (k - 1) / 2), got {k}")
        self.kernel = nnx.Param(kernel_init(rngs.params(), (k, k, cin // groups, cout), jnp.float32))
        self.bias = nnx.Param(jnp.zeros((cout,), jnp.float32)) if use_bias else nnx.data(None)
        self.stride, self.pad, self.groups = stride, (k - 1) // 2, groups
        self.dtype, self.own_vjp, self.dense_groups = dtype, own_vjp, dense_groups

    def dense_kernel(self):
        """The kernel as a dense [k, k, cin, cout] one (block-diagonal over the groups)."""
        w, g = self.kernel[...], self.groups
        if g == 1:
            return w
        k, _, cin_g, cout = w.shape
        blocks = jnp.einsum(
            "abigo,hg->abhigo", w.reshape(k, k, cin_g, g, cout // g), jnp.eye(g, dtype=w.dtype)
        )
        return blocks.reshape(k, k, g * cin_g, cout)

    def live_kernel(self, w, image_shape: tuple[int, int]):
        """w [k, k, ...] cropped to the taps that can touch an n_h x n_w image, and their padding.

        At stride 1, "SAME" padding, a tap more than n - 1 pixels off the centre only ever sees
        padding: cropping the kernel to at most 2 n - 1 taps per axis changes no number (nor any
        gradient: the cropped taps' are 0). It keeps XLA from swapping the operands of a
        convolution whose kernel has more taps than the image has pixels (a 7x7 kernel on the
        16 x 2 maps of DUNE's deepest stages), which gives non-canonical dimension labels, i.e.
        naive loops inside `lax.scan`; a kernel that still outsizes the image after cropping
        (7x7 on 4 x 4) does get swapped.
        """
        if self.stride != 1:
            return w, self.pad
        keep = [min(w.shape[0], 2 * n - 1) for n in image_shape]
        lo = [(w.shape[0] - k) // 2 for k in keep]
        w = w[lo[0] : lo[0] + keep[0], lo[1] : lo[1] + keep[1]]
        return w, tuple(min(self.pad, n - 1) for n in image_shape)

    def __call__(self, x):
        dense = self.groups == 1 or self.dense_groups
        w = self.dense_kernel() if dense else self.kernel[...]
        w, pad = self.live_kernel(w, x.shape[1:3])
        x, w, groups = x.astype(self.dtype), w.astype(self.dtype), 1 if dense else self.groups
        conv = conv2d if self.own_vjp else xla_conv2d
        y = conv(x, w, self.stride, pad, groups)
        return y if self.bias is None else y + self.bias[...].astype(self.dtype)
