"""Train one e/gamma ResNet-15 with the shared loop: focal loss + mixup on the device, early stopping
on validation ROC AUC; and the inference helpers (scores, penultimate features) used by evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxhep import checkpoint, losses, metrics
from jaxhep.config import from_dict, to_dict
from jaxhep.egamma.augment import AugmentConfig
from jaxhep.egamma.dataset import EgammaData
from jaxhep.egamma.model import ResNet15, ResNetConfig, build_model
from jaxhep.mixup import mixup, mixup_loss
from jaxhep.runs import Run
from jaxhep.train import FitResult, TrainConfig, Trainer, fit_model, predict_with


@dataclass(frozen=True)
class LossConfig:
    """The seed's objective: focal loss on mixup batches."""

    kind: str = "focal"  # focal | bce
    focal_alpha: float | None = None  # None: no class weighting (the two classes are equally common)
    focal_gamma: float = 2.0
    mixup_alpha: float = 0.2  # Beta(alpha, alpha) mixing weight; 0 = no mixup


@dataclass
class TrainedModel:
    name: str
    model: ResNet15  # eval mode
    directory: Path
    history: list[dict]
    fit: FitResult | None = None


def make_loss_fn(cfg: LossConfig):
    """loss_fn(model, batch, key) for the Trainer; batch: image [B, 32, 32, 2], label [B] int."""
    if cfg.kind not in ("focal", "bce"):
        raise ValueError(f"loss kind must be 'focal' or 'bce', got {cfg.kind!r}")

    def loss_fn(model, batch, key):
        k_mix, k_drop = jax.random.split(key)
        labels = batch["label"].astype(jnp.float32)
        images, partner, lam = mixup(k_mix, batch["image"], labels, cfg.mixup_alpha)
        logits = model(images, rngs=nnx.Rngs(dropout=k_drop))

        def loss_of(y):
            if cfg.kind == "focal":
                return losses.sigmoid_focal_loss(logits, y, cfg.focal_alpha, cfg.focal_gamma)
            return losses.weighted_bce(logits, y)

        dominant = jnp.where(lam >= 0.5, labels, partner)
        return mixup_loss(loss_of, labels, partner, lam), {
            "accuracy": jnp.mean((logits > 0) == (dominant > 0.5))
        }

    return loss_fn


def predict_fn(model, batch):
    return model(batch["image"])


def train_model(
    name: str,
    model_cfg: ResNetConfig,
    train_cfg: TrainConfig,
    loss_cfg: LossConfig,
    augment: AugmentConfig,
    data: EgammaData,
    mesh,
    run: Run,
    workers: int = 0,
) -> TrainedModel:
    """Train `name` on the split, resuming its checkpoint in this run; a finished one is loaded."""
    directory = run.sub("models", name)
    if (directory / "model.json").exists():  # finished earlier in this very run (resume)
        return load_trained(directory)
    model = build_model(model_cfg, seed=train_cfg.seed)
    val_reader, val_labels = data.reader("val"), data.labels("val")

    def validate(trainer: Trainer) -> dict:
        logits = trainer.predict_rows(val_reader, len(val_labels))
        return {
            "val_auc": metrics.roc_auc(val_labels, logits),
            "val_accuracy": float(np.mean((logits > 0) == (val_labels > 0))),
        }

    model, result = fit_model(
        model,
        make_loss_fn(loss_cfg),
        predict_fn,
        train_cfg,
        mesh,
        data.reader("train", augment, seed=train_cfg.seed),
        len(data.rows["train"]),
        validate,
        directory / "ckpt",
        run=run,
        desc=name,
        log_prefix={"model": name},
        workers=workers,
    )
    meta = {
        "name": name,
        "model": to_dict(model_cfg),
        "history": result.history,
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
    }
    checkpoint.save_model(directory, model, meta)
    return TrainedModel(name, model, directory, result.history, result)


def load_trained(directory: str | Path) -> TrainedModel:
    """A finished model folder (model.json + weights) in eval mode."""
    model, meta = checkpoint.load_model(directory, lambda m: build_model(from_dict(ResNetConfig, m["model"])))
    return TrainedModel(meta["name"], model, Path(directory), meta.get("history", []))


def infer(model: ResNet15, read_rows, n_rows: int, what: str = "logits", batch_size: int = 1024):
    """Logits [n] or penultimate features [n, C] of rows [0, n_rows) of a reader, in eval mode."""
    if what == "features":
        return predict_with(
            model, lambda m, b: m.features(b["image"]).astype(jnp.float32), read_rows, n_rows, batch_size
        )
    return predict_with(model, predict_fn, read_rows, n_rows, batch_size)
