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
from jaxhep.egamma.augment import ChannelStats
from jaxhep.egamma.config import EgammaConfig, LossConfig
from jaxhep.egamma.dataset import EgammaData
from jaxhep.egamma.model import ResNet15, ResNetConfig, build_model
from jaxhep.mixup import mixup, mixup_loss
from jaxhep.runs import Run
from jaxhep.train import FitResult, Trainer, fit_model, predict_with


@dataclass
class TrainedModel:
    """A trained network and what is needed to use it on raw crops."""

    name: str
    model: ResNet15  # eval mode
    directory: Path
    history: list[dict]
    fit: FitResult | None = None
    stats: ChannelStats | None = None  # the normalisation it was trained with (None: older folders)


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


def model_config(name: str, cfg: EgammaConfig) -> ResNetConfig:
    """The ResNetConfig of network `name` ("se" | "plain") at the experiment's sizes."""
    return ResNetConfig(name=name, widths=cfg.widths, blocks_per_stage=cfg.blocks_per_stage)


def train_model(name: str, cfg: EgammaConfig, data: EgammaData, run: Run, runtime) -> TrainedModel:
    """Train network `name` on the split, resuming its checkpoint in this run; a finished one is
    loaded. `runtime.mesh` shards the batches; `cfg.data.workers` input processes (None: 0)."""
    directory = run.sub("models", name)
    if (directory / "model.json").exists():  # finished earlier in this very run (resume)
        return load_trained(directory)
    train_cfg = cfg.train
    model_cfg = model_config(name, cfg)
    model = build_model(model_cfg, seed=train_cfg.seed, precision=train_cfg.precision)
    val_reader, val_labels = data.reader("val"), data.labels("val")

    def validate(trainer: Trainer) -> dict:
        logits = trainer.predict_rows(val_reader, len(val_labels))
        return {
            "val_auc": metrics.roc_auc(val_labels, logits),
            "val_accuracy": float(np.mean((logits > 0) == (val_labels > 0))),
        }

    model, result = fit_model(
        model,
        make_loss_fn(cfg.loss),
        predict_fn,
        train_cfg,
        runtime.mesh,
        data.reader("train", cfg.augment, seed=train_cfg.seed),
        len(data.rows["train"]),
        validate,
        directory / "ckpt",
        run=run,
        desc=name,
        log_prefix={"model": name},
        workers=cfg.data.workers or 0,
    )
    meta = {
        "name": name,
        "model": to_dict(model_cfg),
        "precision": train_cfg.precision,
        "stats": data.stats.to_dict(),  # the normalisation, for `api.load_predictor`
        "history": result.history,
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
    }
    checkpoint.save_model(directory, model, meta)
    return TrainedModel(name, model, directory, result.history, result, data.stats)


def load_trained(directory: str | Path) -> TrainedModel:
    """A finished model folder (model.json + weights) in eval mode, in the precision it trained in."""

    def build(meta: dict) -> ResNet15:
        fields = dict(meta["model"])
        # Folders written before `train.precision` kept the compute dtype in the model config.
        precision = meta.get("precision", fields.pop("dtype", "float32"))
        fields.pop("dtype", None)
        return build_model(from_dict(ResNetConfig, fields), precision=precision)

    model, meta = checkpoint.load_model(directory, build)
    stats = ChannelStats.from_dict(meta["stats"]) if meta.get("stats") else None
    return TrainedModel(meta["name"], model, Path(directory), meta.get("history", []), stats=stats)


def infer(model: ResNet15, read_rows, n_rows: int, what: str = "logits", batch_size: int = 1024):
    """Logits [n] or penultimate features [n, C] of rows [0, n_rows) of a reader, in eval mode."""
    if what == "features":
        return predict_with(
            model, lambda m, b: m.features(b["image"]).astype(jnp.float32), read_rows, n_rows, batch_size
        )
    return predict_with(model, predict_fn, read_rows, n_rows, batch_size)
