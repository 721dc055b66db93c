"""Train the edge classifier on padded event graphs with the shared loop, and score edges."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxhep import losses, metrics
from jaxhep.tracking.dataset import Split
from jaxhep.tracking.graph import EventGraph
from jaxhep.tracking.model import batched_logits
from jaxhep.tracking.padding import graph_buckets, pad_graph


@dataclass(frozen=True)
class LossConfig:
    kind: str = "bce"  # bce (weighted) | focal
    pos_weight: float | None = None  # None: n_negative / n_positive of the training graphs
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    hard_negative_ratio: float | None = None  # keep only the hardest negatives, this many per positive


def auto_pos_weight(train: Split) -> float:
    """n_negative / n_positive over the trainable real edges: balances the two classes in the loss."""
    mask = train.arrays["edge_mask"] & train.arrays["train_mask"]
    pos = float((train.arrays["labels"] * mask).sum())
    neg = float(mask.sum()) - pos
    return neg / max(pos, 1.0)


def make_loss_fn(cfg: LossConfig, pos_weight: float):
    def loss_fn(model, batch, key):
        logits = batched_logits(model, batch).astype(jnp.float32)
        labels = batch["labels"]
        mask = batch["edge_mask"].astype(jnp.float32) * batch["train_mask"].astype(jnp.float32)
        if cfg.hard_negative_ratio:
            mask = mask * _hard_negative_mask(logits, labels, mask, cfg.hard_negative_ratio)
        if cfg.kind == "focal":
            loss = losses.sigmoid_focal_loss(
                logits.ravel(), labels.ravel(), cfg.focal_alpha, cfg.focal_gamma, mask.ravel()
            )
        else:
            loss = losses.weighted_bce(logits.ravel(), labels.ravel(), pos_weight, mask.ravel())
        pred = logits > 0
        tp = jnp.sum(pred * labels * mask)
        return loss, {
            "precision": tp / jnp.maximum(jnp.sum(pred * mask), 1.0),
            "recall": tp / jnp.maximum(jnp.sum(labels * mask), 1.0),
        }

    return loss_fn


def _hard_negative_mask(logits, labels, mask, ratio):
    """1 for positives and for the `ratio` x n_pos highest-scoring negatives of each graph."""

    def one(lg, lb, m):
        neg_scores = jnp.where((lb == 0) & (m > 0), jax.lax.stop_gradient(lg), -jnp.inf)
        n_keep = jnp.maximum(jnp.sum(lb * m) * ratio, 1.0)
        # threshold = the n_keep-th largest negative score, found by sorting once
        sorted_scores = jnp.sort(neg_scores)[::-1]
        cut = sorted_scores[jnp.clip(n_keep.astype(jnp.int32) - 1, 0, lg.shape[0] - 1)]
        return jnp.where(lb > 0, 1.0, (neg_scores >= cut).astype(jnp.float32))

    return jax.vmap(one)(logits, labels, mask)


@partial(jax.jit, static_argnums=0)
def _scores(graphdef, state, graph):
    model = nnx.merge(graphdef, state)
    return jax.nn.sigmoid(model(graph).astype(jnp.float32))


def edge_scores(model: nnx.Module, split: Split) -> list[np.ndarray]:
    """Edge probabilities of each graph of a split, padding removed: list of [E_real]."""
    graphdef, state = nnx.split(model)
    out = []
    for i, graph in enumerate(split.graphs):
        padded = {k: v[i] for k, v in split.arrays.items()}
        out.append(np.asarray(_scores(graphdef, state, padded))[: graph.n_edge])
    return out


def graph_scores(model: nnx.Module, graphs: list[EventGraph], progress=None) -> list[np.ndarray]:
    """Edge probabilities of unpadded graphs, padded one at a time to one shared bucket (one compile,
    one graph in memory): list of [E_real]. progress: an optional wrapper of the graph list (tqdm)."""
    graphdef, state = nnx.split(model)
    n_node, n_edge = graph_buckets(graphs)
    out = []
    for graph in graphs if progress is None else progress(graphs):
        padded = pad_graph(graph, n_node, n_edge, model.cfg.bidirectional)
        out.append(np.asarray(_scores(graphdef, state, padded))[: graph.n_edge])
    return out


def edge_metrics(graphs: list[EventGraph], scores: list[np.ndarray], threshold: float | None = None) -> dict:
    """Edge accuracy / precision / recall / F1 / AUC on the trainable edges; threshold by F1 if None."""
    labels, probs = _flat(graphs, scores)
    if threshold is None:
        threshold = metrics.threshold_for(labels, probs, "f1")
    return {"threshold": float(threshold), **metrics.binary_metrics(labels, probs, threshold)}


def _flat(graphs: list[EventGraph], scores: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    labels = np.concatenate([g.labels[g.train_mask.astype(bool)] for g in graphs])
    probs = np.concatenate([s[g.train_mask.astype(bool)] for g, s in zip(graphs, scores)])
    return labels, probs
