"""Train the edge classifiers of the two stages on padded event graphs with the shared loop, prune
with the first, and score edges.

`train_model("filter", ...)` is stage 1 (on the whole graphs, its best epoch the one that keeps the
fewest edges at `cascade.target_recall`; or the classifier of another run, `cascade.filter_run`);
`train_model("edges", ...)` the classifier whose scores make the tracks (stage 2 on the pruned
graphs, or the only one of a one-stage run)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxhep import losses, metrics
from jaxhep.runs import Run
from jaxhep.tracking import cascade, dataset
from jaxhep.tracking.config import LossConfig, TrackingConfig, run_config, stage_model
from jaxhep.tracking.dataset import Events, Split, progress_bar
from jaxhep.tracking.graph import EventGraph
from jaxhep.tracking.model import EdgeClassifier, batched_logits
from jaxhep.tracking.padding import graph_buckets, pad_graph
from jaxhep.tracking.score import PT_FLOOR_GEV, PT_INF_GEV, PT_SUP_GEV, W_PT_MAX, W_PT_MIN
from jaxhep.train import FitResult, fit_model, load_best

STAGES = ("filter", "edges")


@dataclass
class TrainedModel:
    """An edge classifier of one stage: the best model (eval mode) and what it trained on."""

    name: str  # "filter" | "edges"
    model: EdgeClassifier
    fit: FitResult | None = None  # None: taken from another run (cascade.filter_run)
    val: Split | None = None  # the validation and test events as the model sees them
    test: Split | None = None


def global_batch(batch_size: int, n_dev: int) -> int:
    """Graphs per optimiser step over all devices: `batch_size` rounded up to a multiple of the
    device count, since the graph axis is what is sharded (one graph per device at least)."""
    return -(-max(batch_size, 1) // n_dev) * n_dev


def train_model(name: str, cfg: TrackingConfig, data: Events, run: Run, runtime) -> TrainedModel:
    """Train classifier `name` of STAGES on the events `data` (resuming its checkpoint in `run`).

    "filter": stage 1 on the whole graphs, checkpointed in `ckpt_filter/`; its validation also
    reports `val_kept` (the fraction of edges kept at `cascade.target_recall` of the validation true
    edges), the figure of merit of a filter, which picks its best epoch. With `cascade.filter_run`
    set, that run's classifier instead (nothing trained). "edges": the classifier whose scores make
    the tracks, on `data` as given (the pruned graphs of a two-stage run), in `ckpt/`.
    """
    if name not in STAGES:
        raise ValueError(f"tracking trains {' and '.join(STAGES)}, not {name!r}")
    if name == "filter" and cfg.cascade.filter_run:
        return TrainedModel(name, reused_filter(cfg.cascade.filter_run))
    target_recall = cfg.cascade.target_recall if name == "filter" else None
    train, val, test = dataset.split(data.graphs, data.prefixes, cfg.data, cfg.model.bidirectional)
    pos_weight = cfg.loss.pos_weight or auto_pos_weight(train, cfg.loss.pt_weighting)
    print(
        f"[tracking] {name}: {len(train)} training graphs ({cfg.data.train_sectors} phi sector(s) per "
        f"event), {len(val)}/{len(test)} validation/test events; padded to "
        f"{train.n_node} nodes / {train.n_edge} edges (training), {val.n_node} / {val.n_edge} (evaluation); "
        f"pos_weight {pos_weight:.1f}",
        flush=True,
    )
    n_dev = runtime.mesh.devices.size
    train_cfg = dataclasses.replace(cfg.train, batch_size=global_batch(cfg.train.batch_size, n_dev))
    if target_recall is not None:
        train_cfg = dataclasses.replace(
            train_cfg,
            epochs=cfg.cascade.filter_epochs or cfg.train.epochs,
            monitor="val_kept",
            monitor_mode="min",
        )
    model = EdgeClassifier(stage_model(cfg, name), dtype=cfg.train.precision, rngs=nnx.Rngs(cfg.train.seed))

    def validate(trainer):
        logits = trainer.predict_rows(val.read, len(val), n_dev)
        scores = [1 / (1 + np.exp(-lg[: g.n_edge].astype(np.float64))) for lg, g in zip(logits, val.graphs)]
        m = edge_metrics(val.graphs, scores)
        out = {f"val_{k}": m[k] for k in ("f1", "auc", "precision", "recall")}
        if target_recall is not None:
            t = cascade.recall_threshold(val.graphs, scores, target_recall)
            out["val_kept"] = cascade.filter_summary(val.graphs, scores, t)["kept_fraction"]
        return out

    model, result = fit_model(
        model,
        make_loss_fn(cfg.loss, pos_weight),
        batched_logits,
        train_cfg,
        runtime.mesh,
        train.read,
        len(train),
        validate,
        checkpoint_dir(run.path, name),
        run=run,
        desc=name,
        log_prefix={"stage": name},
    )
    return TrainedModel(name, model, result, val, test)


def checkpoint_dir(run_dir: str | Path, name: str) -> Path:
    """Where a run keeps the checkpoints of classifier `name`."""
    return Path(run_dir) / ("ckpt_filter" if name == "filter" else "ckpt")


def load_classifier(cfg: TrackingConfig, ckpt_dir: str | Path, stage: str = "edges") -> EdgeClassifier:
    """The best checkpoint in `ckpt_dir` of the `stage` classifier of a training with config `cfg`, in
    eval mode, computing in the precision it trained in."""
    model = EdgeClassifier(stage_model(cfg, stage), dtype=cfg.train.precision, rngs=nnx.Rngs(0))
    return load_best(model, cfg.train, ckpt_dir)


def reused_filter(path: str | Path) -> EdgeClassifier:
    """The classifier of a finished tracking run: its filter (`ckpt_filter/`) if it has one, else its
    only classifier (`ckpt/`), rebuilt from that run's own config."""
    other = Run.open(path)
    other_cfg = run_config(other.config, other.path / "config.json")
    stage = "filter" if checkpoint_dir(other.path, "filter").is_dir() else "edges"
    ckpt = checkpoint_dir(other.path, stage)
    print(f"[tracking] filter: the classifier of {ckpt}", flush=True)
    return load_classifier(other_cfg, ckpt, stage)


def filter_scores(cfg: TrackingConfig, data: Events, run: Run, runtime) -> tuple[list, list]:
    """The first stage's scores of every event, [E] each, and its per-epoch history.

    Scored once and cached in the run (`filter_scores.npz`), so a resumed run goes straight on
    to the second stage. The classifier is trained here (`ckpt_filter/`) or taken from
    `cascade.filter_run`.
    """
    cache, names = run.path / "filter_scores.npz", [Path(p).name for p in data.prefixes]
    scores = cascade.load_scores(cache, names, data.graphs)
    if scores is None:
        model = train_model("filter", cfg, data, run, runtime).model
        progress = progress_bar(cfg.train.progress, "filter scores")
        cascade.save_scores(cache, names, graph_scores(model, data.graphs, progress))
        scores = cascade.load_scores(cache, names, data.graphs)  # the cached (float16) values, as on resume
    return scores, [r for r in run.read_log() if r.get("stage") == "filter"]


def prune_with_filter(
    cfg: TrackingConfig, data: Events, run: Run, runtime
) -> tuple[Events, list[np.ndarray], dict]:
    """The first stage: (the events with their pruned graphs, each one's kept-edge indices [E'] into
    its whole graph, the filter's report). The threshold keeps `cascade.target_recall` of the
    validation events' true edges."""
    scores, history = filter_scores(cfg, data, run, runtime)
    threshold = cascade.recall_threshold(data.graphs[data.val], scores[data.val], cfg.cascade.target_recall)
    pruned = [cascade.prune(g, s, threshold) for g, s in zip(data.graphs, scores)]
    report = {
        part: cascade.filter_summary(data.graphs[sl], scores[sl], threshold)
        for part, sl in (("validation", data.val), ("test", data.test))
    } | {"target_recall": cfg.cascade.target_recall, "epochs": history}
    f = report["test"]
    print(
        f"[tracking] filter: threshold {threshold:.4f} keeps {f['kept_fraction']:.2%} of the test edges, "
        f"{f['recall']:.2%} of their true edges; purity {f['purity_before']:.2%} -> {f['purity_after']:.2%}",
        flush=True,
    )
    return data.with_graphs([p[0] for p in pruned]), [p[1] for p in pruned], report


def edge_weight(labels, edge_pt):
    """Loss weight [E] of each edge under `loss.pt_weighting`: the TrackML pT weight of a true edge's
    particle (`score.pt_weight`: 0.2 up to 0.5 GeV, rising to 1 at 3 GeV, 0 below 0.05 GeV), 1 for a
    false edge. labels, edge_pt [E] (or [G, E]): NumPy or jax arrays alike (the loss runs it jitted)."""
    xp = jnp if isinstance(labels, jax.Array) else np
    w_pt = xp.interp(
        edge_pt,
        xp.asarray([PT_FLOOR_GEV, PT_INF_GEV, PT_SUP_GEV]),
        xp.asarray([W_PT_MIN, W_PT_MIN, W_PT_MAX]),
        left=0.0,
        right=W_PT_MAX,
    )
    return xp.where(labels > 0, w_pt, 1.0)


def auto_pos_weight(train: Split, pt_weighting: bool = False) -> float:
    """Negatives / positives over the trainable edges of the training events (positives counted by
    their pt weight under `pt_weighting`): balances the two classes in the loss. Every trainable edge
    is the core of one sector, so the whole events hold the same counts as the sectors."""
    pos = neg = 0.0
    for g in train.graphs:
        mask = g.train_mask.astype(bool)
        labels = g.labels[mask]
        pos += float((labels * (edge_weight(labels, g.edge_pt[mask]) if pt_weighting else 1.0)).sum())
        neg += float(len(labels) - labels.sum())
    return neg / max(pos, 1e-9 if pt_weighting else 1.0)


def make_loss_fn(cfg: LossConfig, pos_weight: float):
    def loss_fn(model, batch, key):
        logits = batched_logits(model, batch).astype(jnp.float32)
        labels = batch["labels"]
        mask = batch["edge_mask"].astype(jnp.float32) * batch["train_mask"].astype(jnp.float32)
        if cfg.hard_negative_ratio:
            mask = mask * _hard_negative_mask(logits, labels, mask, cfg.hard_negative_ratio)
        weight = edge_weight(labels, batch["edge_pt"]) * mask if cfg.pt_weighting else mask
        if cfg.kind == "focal":
            loss = losses.sigmoid_focal_loss(
                logits.ravel(), labels.ravel(), cfg.focal_alpha, cfg.focal_gamma, weight.ravel()
            )
        else:
            loss = losses.weighted_bce(logits.ravel(), labels.ravel(), pos_weight, weight.ravel())
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
        padded = {k: v[0] for k, v in split.read([i]).items()}
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
