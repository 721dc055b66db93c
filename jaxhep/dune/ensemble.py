"""Bootstrap ensembles trained in one program: M members stacked on a leading axis, one optax update.

`BootstrapEnsemble(make_member, n_members)` creates M copies of a model with `nnx.split_rngs` +
`nnx.vmap`, so every parameter and BatchNorm statistic of `ensemble.members` has shape [M, ...], and
runs them in one program (`member_outputs`: batch -> [M, B, ...]). It is a plain `nnx.Module`, so the
shared `jaxhep.train.Trainer` trains it unchanged with

    loss_fn = make_loss_fn(direction_loss("cosine"))      # (model, batch, key) -> (sum_m L_m, aux)
    predict_fn = predict_directions                       # (model, batch) -> dict, rows first

The loss is the sum of the member losses, so the gradient with respect to member m's parameters is
exactly dL_m / d theta_m: one Adam update trains all members independently (Adam is elementwise,
and the training clips each member's gradient on its own, `clip_by_member_norm`: a global-norm clip
would be the one coupling).

Bootstrap (Poisson(1) weights). Each member m sees example i with weight w_mi ~ Poisson(1) in a
weighted mean of its per-example loss, the standard online version of the bootstrap (Oza & Russell
2001): a resample of n out of n with replacement gives each example a Binomial(n, 1/n) -> Poisson(1)
count. Weights are cheaper than index resampling (no [M, B, ...] gather of images, every member reads
the same batch) and plug into the `mask` argument of `jaxhep.losses`, which is a weighted mean.

- bootstrap="fixed" (default): w_mi is a hash of (ensemble seed, m, row index i), so member m keeps the
  *same* resample in every epoch, as in the classic bootstrap: ~37 % of the rows (w = 0) are never
  seen by member m (out of bag). Needs the row index in the batch: wrap the reader with
  `WithRowIndex(source.read_rows)`.
- bootstrap="online": fresh weights every step from the step key. Over E epochs an example's total
  weight is Poisson(E), relative spread 1 / sqrt(E): after many epochs every member has seen
  everything about equally, and the diversity left comes from initialisation and dropout only.
- bootstrap="none": weights 1 (a plain deep ensemble: different initialisations only).

BatchNorm batch statistics are those of the (unweighted) batch; each member keeps its own running
averages.

Strategy (how the member axis runs inside the program; same numbers, tested):
- "vmap": members batched. A conv whose kernel carries the member axis becomes a grouped convolution
  (feature_group_count = M), and its gradient a batch-grouped one: cuDNN has kernels for these. On
  XLA:CPU a 5-member three-plane step is 1.14x slower than 5 single-model steps with the core `Conv`
  (it was 12-17x with `nnx.Conv`; BUILD_NOTES, `benchmarks/dune.py --race`).
- "unroll": a Python loop, M copies of the member program in one jitted step (compile time x M;
  1.45x faster than 5 single-model steps on the CPU; `lax.map` over the members was slower).
- "auto" (default): the strategy measured fastest, now "unroll" on every backend. On an H100 (bf16,
  batch 256, the default three-plane network) a 5-member vmapped step took 61.9 ms against 7.9 ms
  for one member, so 1.56x slower than 5 single steps one after another: the member-grouped
  convolutions do not reach the speed of ordinary ones there either. Unroll on the GPU is not yet
  timed (`benchmarks/dune.py --race` on a device).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxhep import losses
from jaxhep.dune.models import bisector, directions, safe_unit, sense_along

Array = jax.Array
STRATEGIES = ("auto", "vmap", "unroll")
MemberLoss = Callable[[Array, dict, Array], Array]  # (pred [B, ...], batch, weights [B]) -> scalar

# Inverse CDF of Poisson(1): k = #{j : cdf[j] <= u}. Float32 uniforms stay below 1 - 2^-24, and
# cdf[10] > 1 - 2^-24, so k <= 10 (P(k > 10) = 1e-8: the truncation is invisible).
_POISSON1_CDF = np.cumsum([np.exp(-1.0) / np.prod(np.arange(1, k + 1)) for k in range(11)]).astype(np.float32)


class BootstrapEnsemble(nnx.Module):
    """M members of one architecture with parameters stacked on axis 0 of `self.members`.

    make_member(rngs) -> nnx.Module builds one member (e.g. `lambda r: ThreePlaneCNN(cfg, rngs=r)`);
    members must take (batch, rngs=None) and return arrays [B, ...]. `seed` draws the initial
    parameters (member m's from the m-th split of the key) and the fixed bootstrap resample;
    `shared_init=True` starts every member from member 0's parameters (so that only the bootstrap,
    and dropout, make them differ: used by the tests).
    """

    def __init__(
        self,
        make_member: Callable[[nnx.Rngs], nnx.Module],
        n_members: int = 5,
        seed: int = 0,
        shared_init: bool = False,
        strategy: str = "auto",
    ):
        if n_members < 1:
            raise ValueError(f"an ensemble needs n_members >= 1, got {n_members}")
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r} ({', '.join(STRATEGIES)})")
        self.members = _builder(make_member, n_members)(jax.random.key(seed))
        if shared_init:
            nnx.update(self.members, _copy_member_0(nnx.state(self.members)))
        self.n_members = n_members
        self.seed = seed
        self.strategy = strategy

    def resolved_strategy(self) -> str:
        """The strategy in use ("auto" is "unroll": see the module docstring)."""
        return "unroll" if self.strategy == "auto" else self.strategy

    def member_outputs(self, batch: dict, rngs: nnx.Rngs | None = None, per_member_batch: bool = False):
        """Every member on the batch: [M, B, ...] (float32 as the members return it).

        rngs: dropout keys (member m gets the m-th split of one `rngs.dropout()` key; None: no
        dropout). per_member_batch: the batch leaves carry a leading member axis [M, B, ...] (e.g. an
        index-resampled bootstrap) instead of being shared by all members.
        """
        keys = None if rngs is None else jax.random.split(rngs.dropout(), self.n_members)
        if self.resolved_strategy() == "unroll":
            return self._unrolled(batch, keys, per_member_batch)
        batch_axis = 0 if per_member_batch else None
        if keys is None:
            return nnx.vmap(lambda m, b: m(b), in_axes=(0, batch_axis))(self.members, batch)
        apply = nnx.vmap(lambda m, b, k: m(b, rngs=nnx.Rngs(dropout=k)), in_axes=(0, batch_axis, 0))
        return apply(self.members, batch, keys)

    def _unrolled(self, batch: dict, keys: Array | None, per_member_batch: bool) -> Array:
        """The members one after another in one program (a Python loop over static member indices)."""
        graphdef, state = nnx.split(self.members)
        results = []
        for m in range(self.n_members):
            member = nnx.merge(graphdef, jax.tree.map(lambda x, m=m: x[m], state))
            if m == 0 and not per_member_batch and hasattr(member, "shared_inputs"):
                # What every member reads and no parameter changes (the direction networks' classical
                # fit), computed once: one copy in the program, not M (XLA would merge them, an ONNX
                # export would not, and jax2onnx's time grows with the square of the graph's size).
                batch = member.shared_inputs(batch)
            b = jax.tree.map(lambda x, m=m: x[m], batch) if per_member_batch else batch
            y = member(b) if keys is None else member(b, rngs=nnx.Rngs(dropout=keys[m]))
            results.append((nnx.state(member, nnx.Not(nnx.Param)), y))  # BatchNorm statistics move
        new_state, outputs = jax.tree.map(lambda *r: jnp.stack(r), *results)
        nnx.update(self.members, new_state)
        return outputs

    def __call__(self, batch: dict, rngs: nnx.Rngs | None = None) -> Array:
        """Member outputs [M, B, ...] (use `combine_directions` / `combine_logits` to reduce them)."""
        return self.member_outputs(batch, rngs)

    def member(self, m: int) -> nnx.Module:
        """Member m as a standalone model (a copy of its parameters and statistics)."""
        graphdef, state = nnx.split(self.members)
        return nnx.merge(graphdef, _take(state, m))


@functools.lru_cache(maxsize=16)
def _builder(make_member: Callable, n_members: int) -> Callable:
    """key -> stacked members, as one compiled program (eagerly, every initialiser of every shape
    would be compiled on its own), cached per (make_member, M) so that ensembles of the same design
    and other seeds reuse it."""

    @nnx.split_rngs(splits=n_members)
    @nnx.vmap(in_axes=(0,), out_axes=0)
    def create(rngs: nnx.Rngs) -> nnx.Module:
        return make_member(rngs)

    return nnx.jit(lambda key: create(nnx.Rngs(params=key)))


@jax.jit
def _copy_member_0(state):
    return jax.tree.map(lambda x: jnp.broadcast_to(x[:1], x.shape), state)


@jax.jit
def _take(tree, m):
    return jax.tree.map(lambda x: x[m], tree)


# ----------------------------------------------------------------------------- bootstrap weights


def _poisson1(u: Array) -> Array:
    return jnp.sum(u[..., None] >= jnp.asarray(_POISSON1_CDF), axis=-1).astype(jnp.float32)


def bootstrap_weights(key: Array, n_members: int, rows: Array) -> Array:
    """Poisson(1) weights [M, B] that depend only on (key, member, row index): a fixed resample.

    key: a PRNG key (e.g. jax.random.PRNGKey(seed)); rows: [B] integer row indices of the batch.
    """
    rows = jnp.asarray(rows).astype(jnp.uint32)
    member_keys = jax.vmap(lambda m: jax.random.fold_in(key, m))(jnp.arange(n_members))

    def draw(k, r):
        return jax.random.uniform(jax.random.fold_in(k, r), ())

    u = jax.vmap(jax.vmap(draw, in_axes=(None, 0)), in_axes=(0, None))(member_keys, rows)
    return _poisson1(u)


def online_bootstrap_weights(key: Array, n_members: int, batch_size: int) -> Array:
    """Fresh Poisson(1) weights [M, B] from a per-step key (the online bootstrap)."""
    return _poisson1(jax.random.uniform(key, (n_members, batch_size)))


class WithRowIndex:
    """Wraps `read_rows(indices) -> dict` to add the row indices as batch[key] (int32 [B]).

    `bootstrap="fixed"` needs them; picklable when `read_rows` is (grain workers).
    """

    def __init__(self, read_rows: Callable[[np.ndarray], dict], key: str = "row"):
        self.read_rows, self.key = read_rows, key

    def __call__(self, indices: np.ndarray) -> dict:
        out = dict(self.read_rows(indices))
        out[self.key] = np.asarray(indices, np.int32)
        return out


# ----------------------------------------------------------------------------- losses


def direction_loss(name: str = "cosine", target_key: str = "direction", **kwargs) -> MemberLoss:
    """A member loss from `jaxhep.losses` (cosine | angular | focal_angular | hybrid_angular).

    pred [B, 3] (vector head): the loss of pred against batch[target_key] [B, 3].
    pred [B, 6] (axis_vector head): the same loss of the vector pred[:, 3:] against the true
    direction, plus that of the axis pred[:, :3] against the true direction *or its opposite,
    whichever is nearer*: sign-blind, so it teaches the line even where head and tail are ambiguous.
    pred [B, 4] (axis_sense head): that axis loss plus the BCE of the sense logit pred[:, 3] against
    "the electron goes along the axis" (a classification, so every event teaches the sense).
    The bootstrap weights are the losses' `mask` (a weighted mean). kwargs go to the loss (gamma, alpha).
    """
    fns = {
        "cosine": losses.cosine_loss,
        "angular": losses.angular_loss,
        "focal_angular": losses.focal_angular_loss,
        "hybrid_angular": losses.hybrid_angular_loss,
    }
    if name not in fns:
        raise ValueError(f"unknown direction loss {name!r} ({', '.join(fns)})")
    fn = fns[name]

    def member_loss(pred, batch, w):
        true = batch[target_key]
        if pred.shape[-1] == 3:
            return fn(pred, true, mask=w, **kwargs)
        axis, rest = pred[:, :3], pred[:, 3:]
        along = jax.lax.stop_gradient(jnp.sum(axis * true.astype(jnp.float32), axis=-1) >= 0)
        nearer = jnp.where(along[:, None], true, -true)
        if pred.shape[-1] == 4:  # axis_sense: is the electron going along the axis, a logit
            return losses.weighted_bce(rest[:, 0], along, mask=w) + fn(axis, nearer, mask=w, **kwargs)
        return fn(rest, true, mask=w, **kwargs) + fn(axis, nearer, mask=w, **kwargs)

    return member_loss


def binary_loss(label_key: str, pos_weight: float = 1.0) -> MemberLoss:
    """Weighted BCE on one logit per example: pred [B], batch[label_key] [B] in {0, 1}."""
    return lambda pred, batch, w: losses.weighted_bce(pred, batch[label_key], pos_weight, mask=w)


def make_loss_fn(
    member_loss: MemberLoss,
    bootstrap: str = "fixed",
    row_key: str = "row",
    mask_key: str = "mask",
) -> Callable:
    """A `Trainer` loss_fn(ensemble, batch, key) -> (sum over members of L_m, aux).

    L_m = member_loss(pred_m, batch, w_m) with w_m the member's bootstrap weights [B] (times
    batch[mask_key] when present). aux: `member_loss` (mean of L_m over members; comparable with a
    single model's loss, while the Trainer's `loss` is M times larger) and `member_loss_spread` (max -
    min).
    """
    if bootstrap not in ("fixed", "online", "none"):
        raise ValueError(f"unknown bootstrap {bootstrap!r} (fixed, online, none)")

    def loss_fn(model: BootstrapEnsemble, batch: dict, key: Array):
        k_boot, k_drop = jax.random.split(key)
        m, b = model.n_members, jax.tree.leaves(batch)[0].shape[0]
        if bootstrap == "fixed":
            if row_key not in batch:
                raise KeyError(
                    f"bootstrap='fixed' needs the row indices in batch[{row_key!r}]: read the batches "
                    "with WithRowIndex(read_rows), or use bootstrap='online'"
                )
            weights = bootstrap_weights(jax.random.PRNGKey(model.seed), m, batch[row_key])
        elif bootstrap == "online":
            weights = online_bootstrap_weights(k_boot, m, b)
        else:
            weights = jnp.ones((m, b), jnp.float32)
        if mask_key in batch:
            weights = weights * batch[mask_key].astype(jnp.float32)[None]
        preds = model.member_outputs(batch, rngs=nnx.Rngs(dropout=k_drop))  # [M, B, ...]
        per_member = jax.vmap(member_loss, in_axes=(0, None, 0))(preds, batch, weights)  # [M]
        aux = {"member_loss": per_member.mean(), "member_loss_spread": per_member.max() - per_member.min()}
        return per_member.sum(), aux

    return loss_fn


def clip_by_member_norm(max_norm: float) -> optax.GradientTransformation:
    """Clip each member's gradient to global norm `max_norm` on its own (every leaf [M, ...]).

    `optax.clip_by_global_norm` (the shared `make_optimizer`'s default) takes one norm over all
    members (sqrt(M) times a member's), so it clips more often and one member's large gradient
    scales down all the others' updates. This is the member-wise equivalent, the clip of the DUNE
    training (`dune.training.optimizer`).
    """

    def update(updates, state, params=None):
        del params
        leaves = jax.tree.leaves(updates)
        sq = sum(jnp.sum(x.reshape(x.shape[0], -1).astype(jnp.float32) ** 2, axis=1) for x in leaves)
        scale = jnp.minimum(1.0, max_norm / jnp.maximum(jnp.sqrt(sq), 1e-12))  # [M]
        clipped = jax.tree.map(
            lambda x: x * scale.reshape((-1,) + (1,) * (x.ndim - 1)).astype(x.dtype), updates
        )
        return clipped, state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


# ----------------------------------------------------------------------------- predictions


def _angle_deg(a: Array, b: Array) -> Array:
    """Angle between unit vectors over the last axis, degrees, accurate near 0 and 180 (atan2)."""
    cross = jnp.linalg.norm(jnp.cross(a, b), axis=-1)
    return jnp.degrees(jnp.arctan2(cross, jnp.sum(a * b, axis=-1)))


def combine_directions(members: Array) -> dict[str, Array]:
    """Member outputs [M, B, 3] (vector head), [M, B, 6] (axis_vector) or [M, B, 4] (axis_sense) ->
    the ensemble's direction, rows first.

    The line is the principal axis of the members' axes (largest eigenvector of sum_m a_m a_m^T, so
    members that disagree on the sense still agree on the line; for the vector head a_m = v_m),
    oriented as one member orients its axis (`models.directions`, `oriented`): by the bisector with
    the members' mean vector, or by their mean sense probability.

    direction [B, 3]; sense_agreement [B]: fraction of members whose own direction lies on the side
    of `direction`; spread_deg [B]: RMS angle of the members' own directions to `direction`;
    members [B, M, 3]: those directions.
    """
    axes = safe_unit(members[..., :3])
    own = directions(members)
    _, eigenvectors = jnp.linalg.eigh(jnp.einsum("mbi,mbj->bij", axes, axes))
    line = eigenvectors[..., -1]  # eigh sorts eigenvalues ascending
    direction = oriented(members, line)
    spread = jnp.sqrt(jnp.mean(_angle_deg(own, direction[None]) ** 2, axis=0))
    return {
        "direction": direction,
        "sense_agreement": jnp.mean(jnp.einsum("mbi,bi->mb", own, direction) > 0, axis=0),
        "spread_deg": spread,
        "members": jnp.swapaxes(own, 0, 1),
    }


def oriented(members: Array, line: Array) -> Array:
    """The ensemble's direction [B, 3] on its `line` [B, 3] (unit): the bisector of the line and the
    members' mean vector (vector, axis_vector heads), or the line turned to the side the members'
    mean sense probability favours (axis_sense head: `models.sense_along`)."""
    if members.shape[-1] == 4:
        return jnp.where(sense_along(members, line)[:, None] >= 0.5, line, -line)
    vectors = safe_unit(members[..., 3:] if members.shape[-1] == 6 else members)
    return bisector(safe_unit(vectors.mean(axis=0)), line)


def combine_logits(members: Array) -> dict[str, Array]:
    """Member logits [M, B] -> prob [B] (mean of member probabilities), prob_std [B], logit [B]
    (of the mean probability) and members [B, M] (logits)."""
    p = jax.nn.sigmoid(members.astype(jnp.float32))
    mean = p.mean(axis=0)
    clipped = jnp.clip(mean, 1e-7, 1 - 1e-7)
    return {
        "prob": mean,
        "prob_std": p.std(axis=0),
        "logit": jnp.log(clipped) - jnp.log1p(-clipped),
        "members": jnp.swapaxes(members, 0, 1),
    }


def predict_directions(model: BootstrapEnsemble, batch: dict) -> dict[str, Array]:
    """Trainer predict_fn for direction ensembles (see `combine_directions`); every output is rows first,
    as `Trainer.predict_rows` concatenates and trims along axis 0."""
    return combine_directions(model.member_outputs(batch))


def predict_logits(model: BootstrapEnsemble, batch: dict) -> dict[str, Array]:
    """Trainer predict_fn for classifier ensembles (see `combine_logits`)."""
    return combine_logits(model.member_outputs(batch))
