"""Train one DUNE network (a bootstrap ensemble of M members, M = 1 for a single model) with the
shared loop, and the validation figure that early stopping watches:

    direction            mean angular error on validation (degrees, minimised)
    channel, maintrack   ROC AUC on validation (maximised)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optax

from jaxhep import checkpoint, metrics
from jaxhep.config import from_dict, to_dict
from jaxhep.dune import ensemble as ens
from jaxhep.dune.config import DuneConfig, NetConfig
from jaxhep.dune.dataset import LABEL, DuneData
from jaxhep.dune.models import ClusterClassifier, SinglePlaneCNN, ThreePlaneCNN
from jaxhep.dune.symmetry import SymmetryAugmented
from jaxhep.runs import Run
from jaxhep.train import FitResult, TrainConfig, Trainer, fit_model, make_optimizer


@dataclass
class TrainedModel:
    """A trained network of one task (an ensemble of `model.n_members`) and where it is saved."""

    task: str
    network: str
    model: ens.BootstrapEnsemble  # eval mode
    directory: Path
    history: list[dict]
    fit: FitResult | None = None


def build(task: str, network: str, net: NetConfig, precision: str, seed: int) -> ens.BootstrapEnsemble:
    """The ensemble of `net.members` copies of the task's network, computing in `precision`
    (float32 | bfloat16: `train.precision`)."""
    if task == "direction":
        cfg = net.direction
        cls = ThreePlaneCNN if network == "three_plane" else SinglePlaneCNN
    else:
        cfg = net.channel if task == "channel" else net.maintrack
        cls = ClusterClassifier
    return ens.BootstrapEnsemble(_member_factory(cls, cfg, precision), net.members, seed)


@functools.lru_cache(maxsize=32)
def _member_factory(cls, cfg, precision: str):
    """One function object per (network, config, precision): the ensemble caches its compiled init
    per factory, so a second build of the same design (resume, load, search) does not recompile."""
    return lambda rngs: cls(cfg, precision, rngs=rngs)


def optimizer(cfg: TrainConfig, total_steps: int) -> optax.GradientTransformation:
    """The shared optimiser (`jaxhep.train.make_optimizer`) with gradients clipped per ensemble
    member to `cfg.grad_clip_norm` (`ens.clip_by_member_norm`; none when it is None): one global
    norm over all members would let one member's large gradient shrink every other member's update.
    The `optimizer` factory of `fit_model` / `load_best` for DUNE ensembles."""
    clip = ens.clip_by_member_norm(cfg.grad_clip_norm) if cfg.grad_clip_norm else None
    return make_optimizer(cfg, total_steps, clip=clip)


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


def train_model(
    name: str, cfg: DuneConfig, data: DuneData, run: Run, runtime, directory: Path | None = None
) -> TrainedModel:
    """Train (or resume, or load when finished in this run) network `name` of `cfg.task` with
    `cfg.net` and `cfg.train` on `data`, on `runtime.mesh`; saved in `directory` (default
    `models/<task>_<name>` of the run; a search trial gives its own)."""
    task, net, train = cfg.task, cfg.net, cfg.train
    directory = directory or run.sub("models", f"{task}_{name}")
    if (directory / "model.json").exists():
        return load_trained(directory)
    model = build(task, name, net, train.precision, train.seed)
    loss_fn = ens.make_loss_fn(member_loss(task, net), net.bootstrap)
    val_reader = data.reader("val")
    n_val = len(data.rows["val"])
    train_reader = data.reader("train")
    if task == "direction" and net.symmetries:
        train_reader = SymmetryAugmented(train_reader, train.seed)

    def validate(trainer: Trainer) -> dict:
        return validation_metrics(task, trainer.predict_rows(val_reader, n_val), data)

    model, result = fit_model(
        model,
        loss_fn,
        predict(task),
        train,
        runtime.mesh,
        ens.WithRowIndex(train_reader),
        len(data.rows["train"]),
        validate,
        directory / "ckpt",
        optimizer=optimizer,
        run=run,
        desc=f"{task} {name}",
        log_prefix={"task": task, "network": name},
    )
    meta = {
        "task": task,
        "network": name,
        "net": to_dict(net),
        "precision": train.precision,
        "seed": train.seed,
        "history": result.history,
        "best_epoch": result.best_epoch,
    }
    checkpoint.save_model(directory, model, meta)
    return TrainedModel(task, name, model, directory, result.history, result)


def load_trained(directory: str | Path) -> TrainedModel:
    """A finished model folder (model.json + weights) as a TrainedModel in eval mode."""

    def rebuild(meta):
        net = from_dict(NetConfig, meta["net"])
        return build(meta["task"], meta["network"], net, meta["precision"], meta["seed"])

    model, meta = checkpoint.load_model(directory, rebuild)
    return TrainedModel(meta["task"], meta["network"], model, Path(directory), meta.get("history", []))
