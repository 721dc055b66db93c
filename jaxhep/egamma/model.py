"""ResNet-15 electron/photon classifiers on ECAL crops, in Flax NNX.

Input: x [B, 32, 32, 2], channels last (NHWC): channel 0 energy, channel 1 time; axis 1 = η
rows, axis 2 = φ columns; already normalised by the data pipeline (`augment.normalise`).
Output: `__call__` -> logits [B] float32 (one logit, electron = 1) for `n_classes = 1`, so
`losses.sigmoid_focal_loss(logits, labels, alpha, gamma, mask)` and `losses.weighted_bce` apply
directly; [B, n_classes] for `n_classes > 1` (the PyTorch peer's 2-logit cross-entropy head).
`features` -> the penultimate features [B, C_last] (256), for embedding plots.

Network (15 convolutions: a 3x3 stem + 7 residual blocks of two 3x3 convolutions):

    stem     conv3x3(2 -> 32)                                   [B, 32, 32, 32]
    stage 1  PreActBlock(32 -> 32) x 2                          [B, 32, 32, 32]
    stage 2  PreActBlock(32 -> 64, stride 2), (64 -> 64)        [B, 16, 16, 64]
    stage 3  PreActBlock(64 -> 128, stride 2), (128 -> 128)     [B, 8, 8, 128]
    stage 4  PreActBlock(128 -> 256, stride 2)                  [B, 4, 4, 256]
    head     BN -> ReLU -> pool (attention or mean) [B, 256] -> dropout -> Dense -> logits

PreActBlock: BN -> ReLU -> conv3x3(stride) -> BN -> ReLU -> conv3x3(groups) -> SE, plus the
input (or a 1x1 strided projection of it, without pre-activation, when the shape changes).
3x3 convolutions pad by 1 on every side, as PyTorch's `padding=1`, so a stride-2 conv and
the stride-2 1x1 shortcut sample the same pixels (XLA's "SAME" would pad (0, 1) instead).

Configurations (`ResNetConfig.name`; every field can still be set explicitly):

* "se" (default): the seed's network. Pre-activation blocks with squeeze-and-excitation
  (ratio 4), the second 3x3 convolution of every block grouped (`groups=2`, the first one
  changes width/stride and stays dense), attention pooling (a 1x1 conv scores each of the
  H*W positions, softmax over positions, weighted sum of the features), dropout 0.5 before
  the classifier, one logit.
* "plain": the plain ResNet-15 of the CMS end-to-end papers (Andrews et al.,
  arXiv:1807.11916): stem + 7 residual blocks, no SE, no groups, global average pooling,
  no dropout, one logit. Same widths as "se", so the two differ only in the seed's additions.
* "peer": exactly the PyTorch peer's `peers.py resnet` (outside this repository; BUILD_NOTES.md;
  1 668 850 parameters, as torch counts): "se" without
  groups, attention pooling or dropout, average pooling, 2 logits. For like-for-like races.

The compute dtype is `build_model`'s `precision` ("float32" or "bfloat16", from `train.precision`);
parameters and BatchNorm statistics stay float32, the softmax of the attention pooling and the
logits are float32.
Dropout keys come in at call time (`rngs=nnx.Rngs(dropout=key)`); BatchNorm/Dropout follow
`model.train()` / `model.eval()` (the Trainer calls them).

Two implementation choices keep XLA:CPU fast and change no number (both tested against XLA's
own path, both switchable in the config, both in `jaxhep.conv.Conv`): every convolution goes
through `jaxhep.conv.conv2d`, whose backward pass is written as NHWC/HWIO convolutions
(`conv_vjp`), and grouped convolutions run as dense ones with block-diagonal kernels
(`dense_groups`). Train with
`XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=-individual_convolution` on a CPU (see
`benchmarks/egamma.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import jax
import jax.numpy as jnp
from flax import nnx

from jaxhep.conv import Conv, lecun_init

# What each named configuration sets for the fields left at None.
PRESETS = {
    "se": {"groups": 2, "se_ratio": 4, "attention_pool": True, "dropout": 0.5, "n_classes": 1},
    "plain": {"groups": 1, "se_ratio": 0, "attention_pool": False, "dropout": 0.0, "n_classes": 1},
    "peer": {"groups": 1, "se_ratio": 4, "attention_pool": False, "dropout": 0.0, "n_classes": 2},
}


@dataclass(frozen=True)
class ResNetConfig:
    """Which ResNet-15 and its sizes. Fields left at None take the preset of `name`."""

    name: str = "se"  # se | plain | peer
    widths: tuple[int, ...] = (32, 64, 128, 256)
    blocks_per_stage: tuple[int, ...] = (2, 2, 2, 1)  # 1 stem + 2 x 7 = 15 convolutions
    groups: int | None = None  # feature groups of each block's second 3x3 conv
    se_ratio: int | None = None  # squeeze-and-excitation reduction; 0 = no SE
    attention_pool: bool | None = None  # False: global average pooling
    dropout: float | None = None  # before the classifier
    n_classes: int | None = None  # 1: one logit [B]; > 1: logits [B, n_classes]
    in_channels: int = 2  # energy, time
    conv_vjp: bool = True  # convolutions' own backward (`jaxhep.conv.conv2d`); False: XLA's transpose rule
    dense_groups: bool = True  # grouped convs as dense ones with block-diagonal kernels (`Conv`)

    def __post_init__(self):
        if self.name not in PRESETS:
            raise ValueError(f"unknown ResNet config {self.name!r} ({', '.join(PRESETS)})")
        for key, value in PRESETS[self.name].items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, value)
        if len(self.widths) != len(self.blocks_per_stage):
            raise ValueError(
                f"widths {self.widths} and blocks_per_stage {self.blocks_per_stage} differ in length"
            )
        for w in self.widths:
            if w % self.groups:
                raise ValueError(f"width {w} is not divisible by groups {self.groups}")

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def conv3x3(
    cin, cout, stride=1, groups=1, dtype=jnp.float32, own_vjp=True, dense_groups=True, *, rngs: nnx.Rngs
) -> Conv:
    """3x3 convolution, padding 1 on every side (PyTorch's `padding=1`), no bias."""
    return Conv(cin, cout, 3, stride, groups, dtype, own_vjp, dense_groups, rngs=rngs)


def batch_norm(c, dtype=jnp.float32, *, rngs: nnx.Rngs) -> nnx.BatchNorm:
    """PyTorch's BatchNorm2d defaults: momentum 0.1 (= 0.9 here), eps 1e-5; stats in float32."""
    return nnx.BatchNorm(c, momentum=0.9, epsilon=1e-5, dtype=dtype, rngs=rngs)


class SqueezeExcite(nnx.Module):
    """x [B, H, W, C] -> x * gate [B, 1, 1, C]; gate = sigmoid(Dense(ReLU(Dense(mean_HW x))))."""

    def __init__(self, c: int, ratio: int = 4, dtype=jnp.float32, *, rngs: nnx.Rngs):
        self.reduce = nnx.Linear(c, c // ratio, dtype=dtype, kernel_init=lecun_init, rngs=rngs)
        self.expand = nnx.Linear(c // ratio, c, dtype=dtype, kernel_init=lecun_init, rngs=rngs)

    def gate(self, x):
        """The per-image, per-channel gate in (0, 1): [B, C]."""
        squeezed = x.astype(jnp.float32).mean((1, 2)).astype(x.dtype)
        return nnx.sigmoid(self.expand(nnx.relu(self.reduce(squeezed))))

    def __call__(self, x):
        return x * self.gate(x)[:, None, None, :].astype(x.dtype)


class PreActBlock(nnx.Module):
    """BN -> ReLU -> conv3x3(stride) -> BN -> ReLU -> conv3x3(groups) -> SE, + shortcut.

    x [B, H, W, cin] -> [B, H / stride, W / stride, cout]. The shortcut is the identity, or
    a 1x1 stride-s convolution of the block's input when the shape changes (the peer's).
    """

    def __init__(
        self,
        cin: int,
        cout: int,
        stride: int = 1,
        groups: int = 1,
        se_ratio: int = 4,
        dtype=jnp.float32,
        own_vjp: bool = True,
        dense_groups: bool = True,
        *,
        rngs: nnx.Rngs,
    ):
        self.bn1 = batch_norm(cin, dtype, rngs=rngs)
        self.conv1 = conv3x3(cin, cout, stride, 1, dtype, own_vjp, rngs=rngs)
        self.bn2 = batch_norm(cout, dtype, rngs=rngs)
        self.conv2 = conv3x3(cout, cout, 1, groups, dtype, own_vjp, dense_groups, rngs=rngs)
        self.se = SqueezeExcite(cout, se_ratio, dtype, rngs=rngs) if se_ratio else None
        self.shortcut = (
            Conv(cin, cout, 1, stride, 1, dtype, own_vjp, rngs=rngs) if stride != 1 or cin != cout else None
        )

    def __call__(self, x):
        out = self.conv1(nnx.relu(self.bn1(x)))
        out = self.conv2(nnx.relu(self.bn2(out)))
        if self.se is not None:
            out = self.se(out)
        return out + (x if self.shortcut is None else self.shortcut(x))


class AttentionPool(nnx.Module):
    """Attention pooling: x [B, H, W, C] -> [B, C] = sum_p softmax_p(w . x_p) x_p.

    A 1x1 convolution (a Dense over channels; no bias, which the softmax would cancel)
    scores each of the H*W positions; the softmax over positions is taken in float32.
    """

    def __init__(self, c: int, dtype=jnp.float32, *, rngs: nnx.Rngs):
        self.score = nnx.Linear(c, 1, use_bias=False, dtype=dtype, kernel_init=lecun_init, rngs=rngs)

    def weights(self, x):
        """Attention weights [B, H, W] (each image's sum to 1)."""
        b, h, w, _ = x.shape
        scores = self.score(x)[..., 0].astype(jnp.float32).reshape(b, h * w)
        return jax.nn.softmax(scores, axis=-1).reshape(b, h, w)

    def __call__(self, x):
        a = self.weights(x).astype(x.dtype)
        return jnp.einsum("bhw,bhwc->bc", a, x, preferred_element_type=jnp.float32).astype(x.dtype)


class ResNet15(nnx.Module):
    """The e/γ ResNet-15: x [B, 32, 32, 2] -> logits [B] (or [B, n_classes]), float32.

    `dtype`: the compute dtype (float32 or bfloat16); parameters stay float32."""

    def __init__(self, cfg: ResNetConfig = ResNetConfig(), dtype=jnp.float32, *, rngs: nnx.Rngs):
        self.cfg = cfg
        dtype = jnp.dtype(dtype)
        self.stem = conv3x3(cfg.in_channels, cfg.widths[0], 1, 1, dtype, cfg.conv_vjp, rngs=rngs)
        blocks, cin = [], cfg.widths[0]
        for i, (c, n) in enumerate(zip(cfg.widths, cfg.blocks_per_stage)):
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(
                    PreActBlock(
                        cin,
                        c,
                        stride,
                        cfg.groups,
                        cfg.se_ratio,
                        dtype,
                        cfg.conv_vjp,
                        cfg.dense_groups,
                        rngs=rngs,
                    )
                )
                cin = c
        self.blocks = nnx.List(blocks)
        self.bn = batch_norm(cin, dtype, rngs=rngs)
        self.pool = AttentionPool(cin, dtype, rngs=rngs) if cfg.attention_pool else None
        self.dropout = nnx.Dropout(cfg.dropout)
        self.head = nnx.Linear(cin, cfg.n_classes, dtype=dtype, kernel_init=lecun_init, rngs=rngs)
        self.dtype = dtype

    def feature_map(self, x):
        """x [B, 32, 32, 2] -> the last stage after its BN-ReLU [B, 4, 4, C_last]."""
        h = self.stem(x.astype(self.dtype))
        for block in self.blocks:
            h = block(h)
        return nnx.relu(self.bn(h))

    def features(self, x):
        """The penultimate features [B, C_last] (pooled, before dropout and the classifier).

        Works for any batch size (nothing depends on the training batch); call it on a model
        in eval mode (`model.eval()`) so BatchNorm uses its running statistics.
        """
        h = self.feature_map(x)
        if self.pool is not None:
            return self.pool(h)
        return h.astype(jnp.float32).mean((1, 2)).astype(h.dtype)

    def __call__(self, x, rngs: nnx.Rngs | None = None):
        z = self.dropout(self.features(x), rngs=rngs)
        logits = self.head(z).astype(jnp.float32)
        return logits[:, 0] if self.cfg.n_classes == 1 else logits


def build_model(cfg: ResNetConfig = ResNetConfig(), seed: int = 0, precision: str = "float32") -> ResNet15:
    """A ResNet15 with parameters from `seed`, computing in `precision` (float32 | bfloat16:
    `train.precision`; parameters and BatchNorm statistics stay float32)."""
    return ResNet15(cfg, jnp.dtype(precision), rngs=nnx.Rngs(params=seed))


def count_params(model: nnx.Module) -> int:
    """Number of trainable parameters (BatchNorm running statistics excluded)."""
    return int(sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param))))
