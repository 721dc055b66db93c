"""Train one DUNE network (a bootstrap ensemble of M members, M = 1 for a single model) with the
shared loop, and the validation figure that early stopping watches:

    direction            mean angular error on validation (degrees, minimised)
    channel, maintrack   ROC AUC on validation (maximised)
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jaxhep import checkpoint, metrics
from jaxhep.config import from_dict, to_dict
from jaxhep.dune import ensemble as ens
from jaxhep.dune.dataset import LABEL, DuneData
from jaxhep.dune.models import (
    CHANNEL_TAGGING,
    MAIN_TRACK,
    ClassifierConfig,
    ClusterClassifier,
    DirectionConfig,
    SinglePlaneCNN,
    ThreePlaneCNN,
)
from jaxhep.dune.symmetry import SymmetryAugmented
from jaxhep.runs import Run
from jaxhep.train import FitResult, TrainConfig, Trainer, fit_model

NETWORKS = {
    "direction": ("three_plane", "single_plane"),
    "channel": ("classifier",),
    "maintrack": ("classifier",),
}


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


@dataclass
class Trained:
    task: str
    network: str
    model: ens.BootstrapEnsemble  # eval mode
    directory: Path
    history: list[dict]
    fit: FitResult | None = None


def build(task: str, network: str, net: NetConfig, dtype: str, seed: int) -> ens.BootstrapEnsemble:
    """The ensemble of `net.members` copies of the task's network."""
    if task == "direction":
        cfg = _with_dtype(net.direction, dtype)
        cls = ThreePlaneCNN if network == "three_plane" else SinglePlaneCNN
    else:
        cfg = _with_dtype(net.channel if task == "channel" else net.maintrack, dtype)
        cls = ClusterClassifier
    return ens.BootstrapEnsemble(_member_factory(cls, cfg), net.members, seed)


@functools.lru_cache(maxsize=32)
def _member_factory(cls, cfg):
    """One function object per (network, config): the ensemble caches its compiled init per
    factory, so a second build of the same design (resume, load, search) does not recompile."""
    return lambda rngs: cls(cfg, rngs=rngs)


def _with_dtype(cfg, dtype: str):
    return dataclasses.replace(cfg, dtype=dtype)


def monitor(task: str) -> tuple[str, str]:
    """(validation metric, mode) that early stopping watches."""
    return ("val_angle_deg", "min") if task == "direction" else ("val_auc", "max")


def member_loss(task: str, net: NetConfig) -> ens.MemberLoss:
    """The loss of one ensemble member for `task` with `net`'s loss settings."""
    if task == "direction":
        return ens.direction_loss(net.loss)
    return ens.binary_loss(LABEL[task])


def predict(task: str):
    return ens.predict_directions if task == "direction" else ens.predict_logits


def validation_metrics(task: str, outputs: dict, data: DuneData, part: str = "val") -> dict:
    if task == "direction":
        true = data.column("direction", part)
        angle = metrics.angular_error_deg(outputs["direction"], true)
        return {
            "val_angle_deg": float(np.mean(angle)),
            "val_axis_deg": float(np.mean(metrics.axis_error_deg(outputs["direction"], true))),
        }
    labels = data.column(LABEL[task], part)
    return {
        "val_auc": metrics.roc_auc(labels, outputs["prob"]),
        "val_accuracy": float(np.mean((outputs["prob"] >= 0.5) == (labels > 0))),
    }


def train(
    task: str,
    network: str,
    net: NetConfig,
    train_cfg: TrainConfig,
    data: DuneData,
    mesh,
    run: Run,
    dtype: str = "float32",
    directory: Path | None = None,
) -> Trained:
    """Train (or resume, or load when finished in this run) one network of a task."""
    directory = directory or run.sub("models", f"{task}_{network}")
    if (directory / "model.json").exists():
        return load_trained(directory)
    model = build(task, network, net, dtype, train_cfg.seed)
    loss_fn = ens.make_loss_fn(member_loss(task, net), net.bootstrap)
    val_reader = data.reader("val")
    n_val = len(data.rows["val"])
    train_reader = data.reader("train")
    if task == "direction" and net.symmetries:
        train_reader = SymmetryAugmented(train_reader, train_cfg.seed)

    def validate(trainer: Trainer) -> dict:
        return validation_metrics(task, trainer.predict_rows(val_reader, n_val), data)

    model, result = fit_model(
        model,
        loss_fn,
        predict(task),
        train_cfg,
        mesh,
        ens.WithRowIndex(train_reader),
        len(data.rows["train"]),
        validate,
        directory / "ckpt",
        run=run,
        desc=f"{task} {network}",
        log_prefix={"task": task, "network": network},
    )
    meta = {
        "task": task,
        "network": network,
        "net": to_dict(net),
        "dtype": dtype,
        "seed": train_cfg.seed,
        "history": result.history,
        "best_epoch": result.best_epoch,
    }
    checkpoint.save_model(directory, model, meta)
    return Trained(task, network, model, directory, result.history, result)


def load_trained(directory: str | Path) -> Trained:
    def rebuild(meta):
        return build(
            meta["task"], meta["network"], from_dict(NetConfig, meta["net"]), meta["dtype"], meta["seed"]
        )

    model, meta = checkpoint.load_model(directory, rebuild)
    return Trained(meta["task"], meta["network"], model, Path(directory), meta.get("history", []))
