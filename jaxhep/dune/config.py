"""Configuration of a DUNE experiment: the task, its data, networks, ensemble and loss, training;
`default(task)` (the full setup), `quick(task)` (a one-minute smoke run) and the task's flags."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from jaxhep.cli import Flag
from jaxhep.dune.models import (
    CHANNEL_TAGGING,
    MAIN_TRACK,
    NETWORK_PLANES,
    ClassifierConfig,
    DirectionConfig,
    direction_problem,
)
from jaxhep.errors import ConfigError
from jaxhep.train import TrainConfig

TASKS = ("direction", "channel", "maintrack")
NETWORKS = {
    "direction": ("three_plane", "single_plane"),
    "channel": ("classifier",),
    "maintrack": ("classifier",),
}


@dataclass(frozen=True)
class DataConfig:
    path: str | None = None  # NPZ file; None = the simulated default of the task
    n_events: int = 50_000  # simulated events (the seed's three_plane_matched_50k)
    sim_seed: int = 0
    split_seed: int = 0
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    max_rows: int | None = None  # use only the first N rows (smoke runs)


@dataclass(frozen=True)
class NetConfig:
    """Network, ensemble and loss of one training."""

    direction: DirectionConfig = field(default_factory=DirectionConfig)
    channel: ClassifierConfig = CHANNEL_TAGGING
    maintrack: ClassifierConfig = MAIN_TRACK
    members: int = 5  # bootstrap ensemble size (1 = one model)
    bootstrap: str = "fixed"  # fixed | online | none (see dune.ensemble)
    loss: str = "hybrid_angular"  # direction: cosine | angular | focal_angular | hybrid_angular
    symmetries: bool = False  # direction: train on mirrored events too (dune.symmetry)


@dataclass(frozen=True)
class DuneConfig:
    task: str = "direction"
    data: DataConfig = field(default_factory=DataConfig)
    networks: tuple[str, ...] = ()  # () = every network of the task
    net: NetConfig = field(default_factory=NetConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    search_epochs: int = 5  # epochs of each search trial (one model, no ensemble)


def monitor(task: str) -> tuple[str, str]:
    """(validation metric, mode) that early stopping watches."""
    return ("val_angle_deg", "min") if task == "direction" else ("val_auc", "max")


def default(task: str) -> DuneConfig:
    """The full setup of `task`: 5-member ensembles, AdamW 1e-3 with warm-up and cosine decay,
    batch 256, <= 30 epochs, patience 6."""
    mon, mode = monitor(task)
    return DuneConfig(
        task=task,
        train=TrainConfig(
            epochs=30,
            batch_size=256,
            steps_per_call=8,
            optimizer="adamw",
            learning_rate=1e-3,
            weight_decay=1e-4,
            schedule="warmup_cosine",
            warmup_steps=200,
            # Clipped per ensemble member (dune.training.optimizer: dune.ensemble.clip_by_member_norm):
            # one global norm over the stacked members would let one member's large gradient shrink
            # every other member's update, coupling members that should train independently.
            grad_clip_norm=1.0,
            monitor=mon,
            monitor_mode=mode,
            patience=6,
            eval_batch_size=1024,
        ),
    )


def quick(task: str) -> DuneConfig:
    """About a minute on a laptop CPU: 1500 events, 2 members of small networks, 2 epochs."""
    cfg = default(task)
    small_dir = dataclasses.replace(cfg.net.direction, base_filters=8, dense=(32,), depths=(2, 2, 3))
    small_cls = dict(base_filters=8, dense=(32,), depth=3)
    return dataclasses.replace(
        cfg,
        data=dataclasses.replace(cfg.data, n_events=1500),
        net=dataclasses.replace(
            cfg.net,
            members=2,
            direction=small_dir,
            channel=dataclasses.replace(cfg.net.channel, **small_cls),
            maintrack=dataclasses.replace(cfg.net.maintrack, **small_cls),
        ),
        train=dataclasses.replace(cfg.train, epochs=2, batch_size=64, warmup_steps=5, patience=2),
        search_epochs=1,
    )


# The positional that picks the task (`default(task)` / `quick(task)`); `registry` is a command.
SELECT = Flag("task", "task", "what to train (or `registry`: print every run)", choices=TASKS)

FLAGS = (
    Flag(
        "--data",
        "data.path",
        "NPZ file in our layout, or a folder of ml_for_pointing cluster files (README: DUNE input)",
    ),
    Flag(
        "--network",
        "networks",
        "train only this network (direction: three_plane, single_plane)",
        repeat=True,
    ),
    Flag("--members", "net.members", "bootstrap ensemble size (1 = one model)", type=int),
)


def check(cfg: DuneConfig) -> None:
    """A ConfigError for an unknown task, a network the task does not have, no ensemble member, or
    direction settings its networks cannot have (before a run folder exists)."""
    if cfg.task not in TASKS:
        raise ConfigError(f"task {cfg.task!r}: DUNE has {', '.join(TASKS)}")
    unknown = set(cfg.networks) - set(NETWORKS[cfg.task])
    if unknown:
        raise ConfigError(f"task {cfg.task} has networks {NETWORKS[cfg.task]}, not {sorted(unknown)}")
    if cfg.net.members < 1:
        raise ConfigError(f"--members {cfg.net.members}: an ensemble needs at least one member")
    if cfg.task == "direction":
        for name in cfg.networks or NETWORKS["direction"]:
            problem = direction_problem(cfg.net.direction, NETWORK_PLANES[name])
            if problem:
                raise ConfigError(f"--set net.direction.* ({name}): {problem}")


def registry_params(cfg: DuneConfig) -> dict:
    """The key settings of a run, as the seed's registry kept them: ensemble, training and the
    task's network (the registry's `params` column)."""
    t, net = cfg.train, cfg.net
    params = {"members": net.members, "epochs": t.epochs, "batch": t.batch_size, "lr": t.learning_rate}
    if cfg.task == "direction":
        d = net.direction
        params.update(loss=net.loss, head=d.head, prior=d.prior, filters=d.base_filters, depths=d.depths)
        params.update(dense=d.dense, dropout=d.dropout)
        if d.prior == "moments":  # what the fit inside gives the network
            params.update(profile_bins=d.profile_bins, start_mm=d.start_mm, volume_bins=d.volume_bins)
            params.update(end_bins=d.end_bins, sense_dense=d.sense_dense)
    else:
        c = net.channel if cfg.task == "channel" else net.maintrack
        params.update(filters=c.base_filters, depth=c.depth, dense=c.dense, dropout=c.dropout)
    return {**params, "n_events": cfg.data.n_events if cfg.data.path is None else cfg.data.path}
