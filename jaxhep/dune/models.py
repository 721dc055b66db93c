"""CNNs for the DUNE supernova-electron tasks (issue #6), in Flax NNX, channels-last.

Inputs are the batch dicts of `jaxhep.dune.io` (`NpzSource.read_rows`), float32 in [0, 1]:

    images_u, images_v, images_x   [B, 128, 16]   main cluster per plane (time ticks, channels)
    volume_x                       [B, 128, 64]   collection plane around the cluster (channel tagging)
    mt_images                      [B, 128, 16]   X-plane clusters (main-track identification)

Networks (all built from the same two blocks, `ConvBranch` and `MLPHead`):

- `ThreePlaneCNN`: one `ConvBranch` per plane U, V, X, each with its own depth and filter growth
  (the seed's "diverse architectures"), features concatenated -> MLP -> the direction head.
- `SinglePlaneCNN`: the X branch alone (the X entries of the same `DirectionConfig`).

  Direction heads (`DirectionConfig.head`; `directions(out)` turns either into unit directions [B, 3]):
  "axis_vector" (default) -> [B, 6]: a unit axis a [:3] and a unit direction vector v [3:]; the
  electron's direction is the bisector of v and the axis turned to v's side, (v + sign(v . a) a) / |.|.
  "vector" (the seed's) -> the unit vector [B, 3]. "axis_sense" -> [B, 4]: the unit axis and a
  logit that the electron goes along it (trained by BCE). Why two parts: a direction loss is blind to the
  axis whenever head and tail are ambiguous (averaged over the two senses it is constant), so a lone
  vector learns the line slowly; the axis, trained on a sign-blind loss, learns it from every event,
  while the vector learns which way the electron goes (BUILD_NOTES, "Axis and sense").

With `DirectionConfig.prior = "moments"` the network starts from the classical fit of the images
(`jaxhep.dune.moments`, computed inside the graph): the fit's axis, the planes' elongations, charge
profiles along the axis and start-segment axes join the features, and the axis output is the fit's
(or, with the axis_sense head, the sense-weighted start segments') plus a correction that starts at 0.

A branch stage is Conv(k x k) -> BatchNorm -> ReLU -> [SpatialAttention] -> MaxPool(2); the pool
halves an axis only while it stays >= 2 pixels (16 channels allow 3 halvings, 128 ticks 6). The branch
ends with global average and max pooling, concatenated ([B, 2 F]): the images are mostly zeros, and
the max keeps a small bright feature that the mean dilutes.

Conventions as in `jaxhep.pid.models`: a frozen dataclass config, the compute dtype an argument of
the model (`dtype`: "float32" | "bfloat16", the run's `train.precision`; parameters stay float32,
outputs are float32), dropout keys passed at call
time (`rngs: nnx.Rngs | None`; needed in train mode when dropout > 0, as `nnx.Dropout` demands),
BatchNorm and dropout switched with `model.train()` / `model.eval()`.

Convolutions are `jaxhep.conv.Conv` (odd square kernels, "SAME" padding, stride 1; LeCun-normal
init, the distribution of `nnx.Conv`'s default): their own backward pass (`jaxhep.conv.conv2d`)
keeps XLA:CPU's backward convolutions fast inside the Trainer's `lax.scan` (`steps_per_call` > 1),
where those of autodiff's transpose rule run as naive loops.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import nnx

from jaxhep.conv import Conv, lecun_init
from jaxhep.dune import moments
from jaxhep.dune.sim import geometry

Array = jax.Array

PLANES = ("u", "v", "x")
PLANE_KEYS = {"u": "images_u", "v": "images_v", "x": "images_x"}
NETWORK_PLANES = {"three_plane": PLANES, "single_plane": ("x",)}  # the planes each direction network sees
VOLUME_KEY = "volume_x"
FIT_KEY = "_moments_fit"  # the batch key of a fit computed once for an ensemble's members (shared_inputs)


@dataclass(frozen=True)
class BranchSpec:
    """Shape of one convolutional branch (derived from a model config, not configured directly)."""

    depth: int
    base_filters: int
    growth: float  # filters of stage s = base_filters * growth**s (1 = constant, 2 = doubling)
    kernel: int
    attention: bool
    attention_kernel: int
    max_filters: int

    def filters(self) -> tuple[int, ...]:
        """Output channels of each stage."""
        return tuple(
            max(1, min(self.max_filters, round(self.base_filters * self.growth**s)))
            for s in range(self.depth)
        )


@dataclass(frozen=True)
class DirectionConfig:
    """Electron-direction CNNs. Per-plane tuples are in (U, V, X) order; defaults after the seed's
    three-plane attention model (kernel 5, 32 filters, 2 dense layers of 512, dropout 0.3, U/V/X depths
    base-1 / base / base+1 with different filter growth)."""

    depths: tuple[int, int, int] = (3, 3, 4)  # conv stages of the U, V, X branches
    growth: tuple[float, float, float] = (1.0, 1.5, 2.0)  # filter growth per stage, per plane
    base_filters: int = 32
    max_filters: int = 256
    kernel: int = 5
    attention: bool = True  # a spatial attention block in every stage
    attention_kernel: int = 7  # conv over the [avg, max] maps; 1 = the seed's 1x1 conv
    dense: tuple[int, ...] = (512, 512)
    dropout: float = 0.3
    # axis_vector: [B, 6] axis + direction vector | vector: [B, 3] (the seed's) | axis_sense: [B, 4]
    # axis + sense logit (the direction is the axis turned by the sense; trained by BCE)
    head: str = "axis_vector"
    # "moments": start from the classical fit (`jaxhep.dune.moments`): its axis and the planes'
    # elongations join the features, and the axis output is the fit's axis plus a learnt correction
    # (zero at initialisation). "none": the images alone.
    prior: str = "none"
    profile_bins: int = 0  # with the moments prior: each plane's charge profile along the fit (0 = none)
    # With the moments prior: the axes of the track's first start_mm from either end (0 = none);
    # with the axis_sense head the axis starts from them, weighted by the sense probability.
    start_mm: float = 0.0
    # With the moments prior: the X-plane volume's charge along the fit, off the track (where the
    # bremsstrahlung photons convert, ahead of the electron) and on it, volume_bins bins each over
    # +-200 mm (`moments.volume_profiles`); the network then reads volume_x [B, 128, 64] too (0 = none).
    volume_bins: int = 0
    # With the moments prior: each plane's charge and spread in end_bins bins from either end of the
    # track (`moments.end_profiles`: a stopping electron's end against its start; 0 = none).
    end_bins: int = 0
    # With the moments prior and the axis_sense head: the sense logit comes from an MLP of these widths
    # on the fit's features alone, g(along the axis) - g(along -axis) (`DirectionCNN.sense`), not from
    # the head that reads the CNN features too (() = from the head).
    sense_dense: tuple[int, ...] = ()

    def branch(self, plane: str) -> BranchSpec:
        i = PLANES.index(plane)
        return BranchSpec(
            self.depths[i],
            self.base_filters,
            self.growth[i],
            self.kernel,
            self.attention,
            self.attention_kernel,
            self.max_filters,
        )


@dataclass(frozen=True)
class ClassifierConfig:
    """Binary CNN classifier on one image key (one logit out)."""

    input_key: str = "volume_x"  # "volume_x" (channel tagging) | "mt_images" (main track)
    depth: int = 4
    growth: float = 2.0
    base_filters: int = 32
    max_filters: int = 256
    kernel: int = 3
    attention: bool = True
    attention_kernel: int = 7
    dense: tuple[int, ...] = (256,)
    dropout: float = 0.3

    def branch(self) -> BranchSpec:
        return BranchSpec(
            self.depth,
            self.base_filters,
            self.growth,
            self.kernel,
            self.attention,
            self.attention_kernel,
            self.max_filters,
        )


CHANNEL_TAGGING = ClassifierConfig(input_key="volume_x")
MAIN_TRACK = ClassifierConfig(input_key="mt_images", depth=3, dense=(128,))


HEADS = {"axis_vector": 6, "vector": 3, "axis_sense": 4}  # direction head -> output width
PRIORS = ("none", "moments")


def safe_unit(v: Array, eps: float = 1e-12) -> Array:
    """v / |v| over the last axis in float32, finite value and gradient at v = 0 (gives 0 there)."""
    v = v.astype(jnp.float32)
    return v * jax.lax.rsqrt(jnp.maximum(jnp.sum(v * v, axis=-1, keepdims=True), eps))


def directions(out: Array) -> Array:
    """Unit directions [..., 3] from a direction model's output: [..., 3] (vector head), [..., 6]
    (axis_vector head: the bisector of the vector [3:] and the axis [:3] turned to the vector's side)
    or [..., 4] (axis_sense head: the axis [:3], turned where the sense logit [3] is negative)."""
    if out.shape[-1] == 3:
        return safe_unit(out)
    axis = safe_unit(out[..., :3])
    if out.shape[-1] == 4:
        return jnp.where(out[..., 3:] < 0, -axis, axis)
    return bisector(safe_unit(out[..., 3:]), axis)


def sense_along(members: Array, line: Array) -> Array:
    """P(the electron goes along `line` [B, 3]) [B]: the mean over axis_sense members [M, B, 4] of
    each one's sense probability, sigmoid(logit), taken as said of its own axis and turned to the line."""
    p = jax.nn.sigmoid(members[..., 3].astype(jnp.float32))
    along = jnp.einsum("mbi,bi->mb", members[..., :3], line) >= 0
    return jnp.mean(jnp.where(along, p, 1.0 - p), axis=0)


def bisector(vector: Array, axis: Array) -> Array:
    """unit(v + sign(v . a) a) over the last axis (v and a unit): the direction halfway between the
    vector and the line, on the vector's side. Validation of a 24 k-event run: mean angle as the
    vector alone, 6 degrees less axis error (BUILD_NOTES)."""
    turned = jnp.where(jnp.sum(vector * axis, axis=-1, keepdims=True) < 0, -axis, axis)
    return safe_unit(vector + turned)


class SpatialAttention(nnx.Module):
    """CBAM-style spatial attention: x * sigmoid(conv([mean_c x, max_c x])).

    x: [B, H, W, C] -> same shape. The gate [B, H, W, 1] lies in (0, 1); the conv has 2 inputs,
    1 output and a k x k kernel (k = 1: the seed's 1x1 conv, a per-pixel function of the two maps).
    """

    def __init__(self, kernel: int = 7, dtype=jnp.float32, *, rngs: nnx.Rngs):
        self.conv = Conv(2, 1, kernel, dtype=dtype, use_bias=True, kernel_init=lecun_init, rngs=rngs)

    def gate(self, x: Array) -> Array:
        """[B, H, W, C] -> [B, H, W, 1] in (0, 1)."""
        pooled = jnp.concatenate([x.mean(-1, keepdims=True), x.max(-1, keepdims=True)], axis=-1)
        return nnx.sigmoid(self.conv(pooled))

    def __call__(self, x: Array) -> Array:
        return x * self.gate(x).astype(x.dtype)


def _pool_window(h: int, w: int) -> tuple[int, int]:
    """Halve an axis only while it stays >= 2 pixels."""
    return (2 if h >= 4 else 1, 2 if w >= 4 else 1)


class ConvBranch(nnx.Module):
    """Stages of Conv -> BatchNorm -> ReLU -> [SpatialAttention] -> MaxPool, then global avg+max pool.

    image [B, H, W] (one channel) or [B, H, W, C_in] -> features [B, 2 * filters[-1]] (compute dtype).
    """

    def __init__(self, spec: BranchSpec, in_channels: int = 1, dtype=jnp.float32, *, rngs: nnx.Rngs):
        if spec.depth < 1:
            raise ValueError(f"a branch needs depth >= 1, got {spec.depth}")
        filters = spec.filters()
        sizes = (in_channels, *filters)
        self.convs = nnx.List(
            [
                Conv(a, b, spec.kernel, dtype=dtype, kernel_init=lecun_init, rngs=rngs)
                for a, b in zip(sizes, sizes[1:])
            ]
        )
        # momentum 0.9 (PyTorch's 0.1): with 0.99 the running statistics of a few hundred steps
        # lagged the weights so far that a channel tagger at val AUC 0.80 put every event on one
        # side of 0.5 in eval mode (accuracy 0.49; 0.78 with batch statistics). BUILD_NOTES.
        self.norms = nnx.List([nnx.BatchNorm(b, momentum=0.9, dtype=dtype, rngs=rngs) for b in filters])
        self.attention = (
            nnx.List([SpatialAttention(spec.attention_kernel, dtype, rngs=rngs) for _ in filters])
            if spec.attention
            else None
        )
        self.out_features = 2 * filters[-1]
        self.dtype = dtype

    def __call__(self, image: Array) -> Array:
        h = image[..., None] if image.ndim == 3 else image
        h = h.astype(self.dtype)
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            h = nnx.relu(norm(conv(h)))
            if self.attention is not None:
                h = self.attention[i](h)
            window = _pool_window(h.shape[1], h.shape[2])
            if window != (1, 1):
                h = nnx.max_pool(h, window, strides=window)
        return jnp.concatenate([h.mean(axis=(1, 2)), h.max(axis=(1, 2))], axis=-1)


class MLPHead(nnx.Module):
    """Dense -> ReLU -> Dropout per hidden width, then Dense(n_out): [B, F] -> [B, n_out] float32."""

    def __init__(
        self, n_in: int, hidden: tuple[int, ...], n_out: int, dropout: float, dtype=jnp.float32, *, rngs
    ):
        sizes = (n_in, *hidden)
        self.layers = nnx.List([nnx.Linear(a, b, dtype=dtype, rngs=rngs) for a, b in zip(sizes, sizes[1:])])
        self.dropout = nnx.Dropout(dropout)
        self.out = nnx.Linear(sizes[-1], n_out, dtype=dtype, rngs=rngs)

    def __call__(self, h: Array, rngs: nnx.Rngs | None = None) -> Array:
        for layer in self.layers:
            h = self.dropout(nnx.relu(layer(h)), rngs=rngs)
        return self.out(h).astype(jnp.float32)


def direction_problem(cfg: DirectionConfig, planes: tuple[str, ...]) -> str | None:
    """What is wrong with a direction network of `cfg` on `planes` (a subset of PLANES), in one line,
    or None: `DirectionCNN` raises it, `dune.config.check` reports it before a run starts."""
    if set(planes) - set(PLANES) or not planes:
        return f"planes must be a non-empty subset of {PLANES}, got {planes}"
    if cfg.head not in HEADS:
        return f"unknown direction head {cfg.head!r} ({', '.join(HEADS)})"
    if cfg.prior not in PRIORS:
        return f"unknown direction prior {cfg.prior!r} ({', '.join(PRIORS)})"
    if cfg.prior == "moments" and cfg.head == "vector":
        return "the moments prior corrects an axis: it needs head='axis_vector' or 'axis_sense'"
    if cfg.profile_bins < 0 or (cfg.profile_bins and cfg.prior != "moments"):
        return "profile_bins (>= 0) are charge profiles along the fit: they need prior='moments'"
    if cfg.start_mm < 0 or (cfg.start_mm and (cfg.prior != "moments" or tuple(planes) != PLANES)):
        return "start_mm (>= 0) are start-segment fits: they need prior='moments' and three planes"
    if cfg.volume_bins < 0 or (cfg.volume_bins and (cfg.prior != "moments" or "x" not in planes)):
        return "volume_bins (>= 0) are volume profiles along the fit: they need prior='moments' and plane x"
    if cfg.end_bins < 0 or (cfg.end_bins and cfg.prior != "moments"):
        return "end_bins (>= 0) are end profiles along the fit: they need prior='moments'"
    if cfg.sense_dense and (cfg.prior != "moments" or cfg.head != "axis_sense" or min(cfg.sense_dense) < 1):
        return "sense_dense (widths >= 1), the sense MLP, needs prior='moments' and head='axis_sense'"
    return None


def direction_inputs(cfg: DirectionConfig, network: str) -> tuple[str, ...]:
    """The batch keys direction network `network` (NETWORK_PLANES) of `cfg` reads, in export order."""
    planes = tuple(PLANE_KEYS[p] for p in NETWORK_PLANES[network])
    return planes + ((VOLUME_KEY,) if cfg.volume_bins else ())


class DirectionCNN(nnx.Module):
    """One `ConvBranch` per plane in `planes`, concatenated -> `MLPHead` -> direction head.

    batch {images_u, images_v, images_x: [B, 128, 16]} (only the planes used) -> float32
    [B, 6] (axis_vector head: unit axis, unit vector) or [B, 3] (vector head: unit vector); each
    part has |.| = 1 (0 only for an exactly zero raw output). `directions(out)` -> [B, 3].
    """

    def __init__(
        self,
        cfg: DirectionConfig = DirectionConfig(),
        planes: tuple[str, ...] = PLANES,
        dtype: str = "float32",
        *,
        rngs: nnx.Rngs,
    ):
        dtype = jnp.dtype(dtype)
        problem = direction_problem(cfg, planes)
        if problem:
            raise ValueError(problem)
        self.planes, self.prior = tuple(planes), cfg.prior
        self.branches = nnx.List([ConvBranch(cfg.branch(p), 1, dtype, rngs=rngs) for p in self.planes])
        n_features = sum(b.out_features for b in self.branches)
        self.profile_bins, self.start_mm, self.volume_bins = cfg.profile_bins, cfg.start_mm, cfg.volume_bins
        self.end_bins = cfg.end_bins
        # The fit's elongations and profiles, volume profiles, end profiles; then its axis, start axes
        n_fit = len(self.planes) * (1 + self.profile_bins + 4 * self.end_bins) + 2 * self.volume_bins
        if self.prior == "moments":
            n_features += n_fit + 3 + (6 if self.start_mm else 0)
        # With sense_dense the sense comes from the fit's features alone; the head corrects the axis.
        sense = MLPHead(n_fit, cfg.sense_dense, 1, cfg.dropout, dtype, rngs=rngs) if cfg.sense_dense else None
        self.sense = sense
        n_out = 3 if cfg.sense_dense else HEADS[cfg.head]
        self.head = MLPHead(n_features, cfg.dense, n_out, cfg.dropout, dtype, rngs=rngs)
        if self.prior == "moments":  # the correction to the fit's axis starts at zero
            out = self.head.out
            out.kernel[...] = out.kernel[...].at[:, :3].set(0.0)
            out.bias[...] = out.bias[...].at[:3].set(0.0)

    def fit(self, batch: dict) -> tuple[Array, Array, Array | None, Array | None]:
        """The classical fit of the planes used: (axis [B, 3] float32, unit, turned to x >= 0 so that
        one line has one sign; features [B, F], F = n_planes * (1 + profile_bins + 4 end_bins) +
        2 volume_bins: each plane's elongation, then its charge profile along the axis, the volume's
        profiles, each plane's end profiles; with a sense MLP the same features along -axis [B, F],
        else None; with start_mm the start-segment axes [B, 2, 3] if the electron goes along the axis
        and against it, each turned to the axis's side, else None).
        No gradient flows into the images."""
        images = {PLANE_KEYS[p]: jax.lax.stop_gradient(batch[PLANE_KEYS[p]]) for p in self.planes}
        fits = moments.plane_fits(images)  # the planes' lines, once: the axis and the elongations
        axis = moments.fits_axis(fits)
        axis = jnp.where(axis[:, :1] < 0, -axis, axis)
        planes = [geometry.PLANES[PLANES.index(p)] for p in self.planes]
        elongations = [fits[p.name][1][:, None] for p in planes]
        volume = jax.lax.stop_gradient(batch[VOLUME_KEY]) if self.volume_bins else None

        # Both senses at once, vmapped over the line [axis, -axis]: the same arithmetic as two passes,
        # half the graph (jax2onnx's conversion time grows with the square of the graph's size).
        both = jnp.stack([axis, -axis])  # [2, B, 3]

        def features(line):  # the elongations, then what depends on the line's sense
            out = list(elongations)
            plane_images = [(images[PLANE_KEYS[p.name.lower()]], p) for p in planes]
            if self.profile_bins:
                out += [moments.charge_profiles(im, p, line, self.profile_bins) for im, p in plane_images]
            if self.volume_bins:
                out.append(moments.volume_profiles(volume, images["images_x"], line, self.volume_bins))
            if self.end_bins:
                out += [moments.end_profiles(im, p, line, self.end_bins) for im, p in plane_images]
            return jnp.concatenate(out, axis=-1)

        if self.sense is None:
            fitted, reverse = features(axis), None
        else:
            fitted, reverse = jax.vmap(features)(both)
        starts = None
        if self.start_mm:
            ends = jax.vmap(lambda line: moments.start_axes(images, line, self.start_mm))(both)
            starts = jnp.stack([jnp.where(jnp.sum(e * axis, -1, keepdims=True) < 0, -e, e) for e in ends], 1)
        return axis, fitted, reverse, starts

    def shared_inputs(self, batch: dict) -> dict:
        """The batch with the classical fit (`fit`, no parameters) under FIT_KEY, for members that read
        the same batch: the ensemble computes it once (`BootstrapEnsemble`); the batch as it is without
        the moments prior."""
        return {**batch, FIT_KEY: self.fit(batch)} if self.prior == "moments" else batch

    def raw(self, batch: dict, rngs: nnx.Rngs | None = None) -> Array:
        """The head's output before normalisation, [B, 6], [B, 4] or [B, 3] float32; with the moments
        prior the axis part [:, :3] is the fit's axis (or the sense-weighted start axes) plus the
        head's correction; with a sense MLP the sense logit [:, 3] is its g(features along the axis)
        - g(along -axis): antisymmetric, the reversed track gets the opposite logit."""
        feats = [branch(batch[PLANE_KEYS[p]]) for p, branch in zip(self.planes, self.branches)]
        if self.prior == "none":
            return self.head(jnp.concatenate(feats, axis=-1), rngs=rngs)
        axis, fitted, reverse, starts = batch[FIT_KEY] if FIT_KEY in batch else self.fit(batch)
        extra = [axis, fitted] if starts is None else [axis, fitted, starts.reshape(-1, 6)]
        dtype = feats[0].dtype
        out = self.head(jnp.concatenate([*feats, *(e.astype(dtype) for e in extra)], -1), rngs=rngs)
        if self.sense is not None:
            both = self.sense(jnp.stack([fitted, reverse]).astype(dtype), rngs=rngs)  # [2, B, 1]
            out = jnp.concatenate([out, both[0] - both[1]], axis=-1)
        if starts is not None and out.shape[-1] == 4:
            # axis_sense: the start segment at the end the sense picks (p: along the axis). A wrong
            # sense costs the axis too, so the sign-blind axis loss also teaches the sense.
            p = jax.nn.sigmoid(out[:, 3:])
            axis = p * starts[:, 0] + (1.0 - p) * starts[:, 1]
        return jnp.concatenate([axis + out[:, :3], out[:, 3:]], axis=-1)

    def __call__(self, batch: dict, rngs: nnx.Rngs | None = None) -> Array:
        raw = self.raw(batch, rngs)
        if raw.shape[-1] == 3:
            return safe_unit(raw)
        rest = raw[:, 3:] if raw.shape[-1] == 4 else safe_unit(raw[:, 3:])  # a logit stays as it is
        return jnp.concatenate([safe_unit(raw[:, :3]), rest], axis=-1)


class ThreePlaneCNN(DirectionCNN):
    """U, V and X branches (own depth and filter growth each) -> direction head ([B, 6] or [B, 3])."""

    def __init__(self, cfg: DirectionConfig = DirectionConfig(), dtype: str = "float32", *, rngs: nnx.Rngs):
        super().__init__(cfg, NETWORK_PLANES["three_plane"], dtype, rngs=rngs)


class SinglePlaneCNN(DirectionCNN):
    """The X (collection) branch of `cfg` alone: batch {images_x [B, 128, 16]} -> direction head."""

    def __init__(self, cfg: DirectionConfig = DirectionConfig(), dtype: str = "float32", *, rngs: nnx.Rngs):
        super().__init__(cfg, NETWORK_PLANES["single_plane"], dtype, rngs=rngs)


class ClusterClassifier(nnx.Module):
    """One `ConvBranch` on batch[cfg.input_key] -> `MLPHead` -> one logit.

    batch {input_key: [B, H, W]} (volume_x [B, 128, 64] or mt_images [B, 128, 16]) -> logits [B]
    float32; sigmoid(logit) = P(CC) for channel tagging, P(main track) for main-track identification.
    """

    def __init__(self, cfg: ClassifierConfig = CHANNEL_TAGGING, dtype: str = "float32", *, rngs: nnx.Rngs):
        dtype = jnp.dtype(dtype)
        self.input_key = cfg.input_key
        self.branch = ConvBranch(cfg.branch(), 1, dtype, rngs=rngs)
        self.head = MLPHead(self.branch.out_features, cfg.dense, 1, cfg.dropout, dtype, rngs=rngs)

    def __call__(self, batch: dict, rngs: nnx.Rngs | None = None) -> Array:
        return self.head(self.branch(batch[self.input_key]), rngs=rngs)[:, 0]


MODELS = {"three_plane": ThreePlaneCNN, "single_plane": SinglePlaneCNN, "classifier": ClusterClassifier}


def build_model(
    name: str,
    cfg: DirectionConfig | ClassifierConfig | None = None,
    seed: int = 0,
    precision: str = "float32",
) -> nnx.Module:
    """`name` in MODELS with parameters from `seed` (cfg None: the class default), computing in
    `precision` (float32 | bfloat16: `train.precision`; parameters stay float32)."""
    if name not in MODELS:
        raise ValueError(f"unknown DUNE model {name!r} ({', '.join(MODELS)})")
    cls = MODELS[name]
    rngs = nnx.Rngs(params=seed)
    return cls(dtype=precision, rngs=rngs) if cfg is None else cls(cfg, precision, rngs=rngs)
