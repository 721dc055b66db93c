"""Configuration of a tracking experiment: events and graphs, edge classifier, loss, training, the two
stages, evaluation; `default()` (60 events at pile-up 200), `quick()` (a one-minute smoke run) and the
task's flags."""

from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass, field

from jaxhep.cli import Flag
from jaxhep.config import from_dict
from jaxhep.errors import ConfigError, InputError
from jaxhep.tracking.model import EdgeClassifierConfig
from jaxhep.train import TrainConfig

GRAPH_METHODS = ("geometric", "knn")
TRACK_METHODS = ("walk", "components")


@dataclass(frozen=True)
class DataConfig:
    """Where the events come from, how their graphs are built and how they are split."""

    path: str | None = None  # folder of TrackML events; None = simulated events
    n_events: int = 60  # simulated events (and the most read from a folder)
    pileup: float = 200.0
    sim_seed: int = 0
    method: str = "geometric"  # geometric | knn
    k: int = 8  # kNN neighbours
    # Geometric edges: None = HEP.TrkX's straight phi-slope cut (pT >~ 0.5 GeV); a value in GeV = the
    # helix cut down to that pT (graph.py), which keeps the low-pT particles the TrackML score weighs.
    pt_floor: float | None = None
    pt_min: float | None = 1.0  # truth cut of the training labels (GeV); None = all particles
    val_events: int = 6
    test_events: int = 6
    # Training graphs cut into this many phi sectors (sectors.py): many cheap steps instead of a few
    # of ~10 s on a CPU at mu = 200. 1 = whole events. Validation and test always use whole events.
    train_sectors: int = 1
    sector_halo: float = 0.1  # rad of context around each sector


@dataclass(frozen=True)
class LossConfig:
    """The edge loss: weighted BCE (the seed's) or focal, optionally on the hardest negatives only."""

    kind: str = "bce"  # bce (weighted) | focal
    pos_weight: float | None = None  # None: n_negative / n_positive of the training graphs
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    hard_negative_ratio: float | None = None  # keep only the hardest negatives, this many per positive
    # Weigh each true edge by the TrackML score's pT weight of its particle (0.2 below 0.5 GeV up to 1
    # above 3 GeV, score.pt_weight), as the score weighs its hits; pos_weight then balances the weights.
    pt_weighting: bool = False


@dataclass(frozen=True)
class EvalConfig:
    """Track building and the figures of merit of the test events."""

    track_method: str = "walk"  # walk | components
    # Join the way out and the way back of each looper into one track (tracks.merge_loopers).
    merge_loopers: bool = True
    # The edge threshold of the tracks, picked on the validation events: "score" (the best TrackML
    # score of a grid, evaluate.TRACK_THRESHOLDS) or "f1" (the best edge F1).
    threshold: str = "score"
    pt_min: float = 1.0  # the pT cut of the headline score and efficiency
    displays: int = 1


@dataclass(frozen=True)
class CascadeConfig:
    """Two stages (jaxhep/tracking/cascade.py): a first classifier, trained on the whole graphs, prunes
    them; a second one, same model config, trains and predicts on what is left."""

    stages: int = 2  # 1: one classifier on the whole graphs
    target_recall: float = 0.995  # of the validation events' true edges, kept by the first stage
    filter_epochs: int | None = None  # the first stage's epochs (None: train.epochs)
    # The first stage's network where it differs from `model` (None: the same): it sees every edge
    # of the whole graph, so at low pT floors (millions of edges) a narrower, shallower GNN is what
    # keeps the time per event down (BUILD_NOTES.md, "All particles").
    filter_width: int | None = None
    filter_layers: int | None = None
    # A finished tracking run (folder) whose classifier serves as the first stage instead of training
    # one: its filter if it ran two stages, else its only classifier. Same data settings expected.
    filter_run: str | None = None


@dataclass(frozen=True)
class TrackingConfig:
    """A whole tracking experiment (config.json's `tracking` section)."""

    data: DataConfig = field(default_factory=DataConfig)
    model: EdgeClassifierConfig = field(default_factory=EdgeClassifierConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    cascade: CascadeConfig = field(default_factory=CascadeConfig)


def stage_model(cfg: TrackingConfig, stage: str) -> EdgeClassifierConfig:
    """The network of `stage` ("filter" | "edges"): `model`, with the cascade's filter sizes for the
    first stage."""
    if stage != "filter":
        return cfg.model
    c = cfg.cascade
    return dataclasses.replace(
        cfg.model,
        width=cfg.model.width if c.filter_width is None else c.filter_width,
        layers=cfg.model.layers if c.filter_layers is None else c.filter_layers,
    )


def default() -> TrackingConfig:
    """60 simulated events at pile-up 200, every particle as the TrackML score weighs it: helix graphs
    down to 0.2 GeV, edges of all particles as signal weighted by the score's pT weight, a light first
    stage (width 64, 2 layers) over the millions of edges, 40 epochs of the two-stage cascade."""
    return TrackingConfig(
        # 16 phi sectors per training event: 16x the optimiser steps for the same work (BUILD_NOTES.md).
        data=DataConfig(
            n_events=60,
            pileup=200.0,
            val_events=6,
            test_events=6,
            train_sectors=16,
            pt_floor=0.2,
            pt_min=None,
        ),
        loss=LossConfig(pt_weighting=True),
        cascade=CascadeConfig(filter_width=64, filter_layers=2, filter_epochs=10),
        train=TrainConfig(
            epochs=40,
            # Graphs per optimiser step over all devices. The graph axis is what is sharded, so a
            # batch that is not a multiple of the device count is rounded up to one, with a note
            # (training.global_batch): 1, the default, is one graph per device per step.
            batch_size=1,
            steps_per_call=4,
            learning_rate=1e-3,
            schedule="warmup_cosine",
            warmup_steps=50,
            grad_clip_norm=1.0,
            monitor="val_f1",
            patience=8,
            eval_batch_size=1,
        ),
    )


def quick() -> TrackingConfig:
    """About half a minute on a laptop CPU: 14 events at pile-up 10, a small network, 3 epochs."""
    cfg = default()
    return dataclasses.replace(
        cfg,
        data=dataclasses.replace(
            cfg.data, n_events=14, pileup=10.0, val_events=2, test_events=2, train_sectors=2
        ),
        model=dataclasses.replace(cfg.model, width=32, layers=2),
        cascade=dataclasses.replace(cfg.cascade, filter_width=32, filter_layers=1, filter_epochs=None),
        train=dataclasses.replace(cfg.train, epochs=3, patience=3, warmup_steps=5),
    )


FLAGS = (
    Flag("--data", "data.path", "folder of TrackML events (eventNNNNNNNNN-{hits,cells,particles,truth}.csv)"),
    Flag(
        "--pt-min",
        ("data.pt_min", "eval.pt_min"),
        "truth pT cut (GeV) for the training labels and the headline score",
        type=float,
    ),
    Flag("--graph", "data.method", "graph construction method", choices=GRAPH_METHODS),
    Flag("--pt-floor", "data.pt_floor", "lowest pT (GeV) the geometric graph's helix cut keeps", type=float),
)


def check(cfg: TrackingConfig) -> None:
    """A ConfigError for a config that cannot run."""
    if cfg.cascade.stages not in (1, 2):
        raise ConfigError(f"cascade.stages must be 1 or 2, got {cfg.cascade.stages}")
    if cfg.data.pt_floor is not None and cfg.data.pt_floor <= 0:
        raise ConfigError(f"data.pt_floor must be positive (GeV) or null, got {cfg.data.pt_floor}")
    for name in ("filter_width", "filter_layers"):
        value = getattr(cfg.cascade, name)
        if value is not None and value < (1 if name == "filter_width" else 0):
            raise ConfigError(f"cascade.{name} must be a positive size or null, got {value}")
    if cfg.cascade.filter_width is not None and cfg.cascade.filter_width % cfg.model.heads:
        raise ConfigError(
            f"cascade.filter_width {cfg.cascade.filter_width} must be a multiple of model.heads "
            f"{cfg.model.heads}"
        )
    if cfg.data.method not in GRAPH_METHODS:
        raise ConfigError(f"data.method {cfg.data.method!r}: must be one of {', '.join(GRAPH_METHODS)}")
    if cfg.eval.threshold not in ("score", "f1"):
        raise ConfigError(f"eval.threshold {cfg.eval.threshold!r}: must be score or f1")
    if cfg.eval.track_method not in TRACK_METHODS:
        raise ConfigError(
            f"eval.track_method {cfg.eval.track_method!r}: must be one of {', '.join(TRACK_METHODS)}"
        )


def run_config(config: dict, path: str | os.PathLike) -> TrackingConfig:
    """The TrackingConfig of a run's config.json `config` (read from `path`, which errors name).

    Runs made before `train.precision` kept the compute dtype in `model.dtype`, which becomes their
    precision (the recorded value: those runs computed in bfloat16 on accelerators even where it
    said float32; the parameters are the same either way)."""
    if "tracking" not in config:
        raise InputError(path, "not the config of a tracking run")
    section = copy.deepcopy(config["tracking"])
    model, train = section.get("model", {}), section.setdefault("train", {})
    if isinstance(model, dict) and "dtype" in model and isinstance(train, dict):
        train.setdefault("precision", model.pop("dtype"))
    try:
        return from_dict(TrackingConfig, section)
    except (ConfigError, TypeError, AttributeError) as err:
        raise InputError(path, str(err)) from None
