"""Train one PID network on one momentum range, or reuse an identical one trained before."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxhep import checkpoint, losses, runs
from jaxhep.calibration import Calibration, fit_calibration
from jaxhep.config import from_dict, to_dict
from jaxhep.pid.config import PIDConfig
from jaxhep.pid.dataset import RangeData, Split
from jaxhep.pid.models import N_CLASSES, ModelConfig, build_model
from jaxhep.runs import Run
from jaxhep.train import FitResult, Trainer, fit_model


@dataclass
class TrainedModel:
    """A trained network of one range and what is needed to use it."""

    name: str
    range_name: str
    model: nnx.Module  # eval mode
    directory: Path
    history: list[dict]
    calibration: Calibration | None = None
    reused_from: Path | None = None
    fit: FitResult | None = None

    def predict_arrays(self, x: np.ndarray, group_mask: np.ndarray) -> np.ndarray:
        """Calibrated species probabilities [n, 4] of preprocessed inputs.

        The network was trained with class weights and focal loss, which tilt its softmax
        away from the true species mix; the calibration fitted on the validation split
        (temperature + per-class bias, see jaxhep.calibration) undoes that, so the argmax
        is the accuracy-optimal decision and the probabilities mean what they say.
        """
        logits = predict_logits(self.model, x, group_mask)
        return (self.calibration or Calibration.identity(N_CLASSES)).apply(logits)

    def predict_split(self, split: Split) -> np.ndarray:
        return self.predict_arrays(split.x, split.group_mask)


@partial(jax.jit, static_argnums=(0, 4))
def _logits(graphdef, state, x, m, micro: int):
    """Logits of one transfer block, computed in micro-batches of `micro` rows with lax.map."""
    n = x.shape[0]

    def apply(xs):
        return nnx.merge(graphdef, state)({"x": xs[0], "group_mask": xs[1]})

    out = jax.lax.map(apply, (x.reshape(n // micro, micro, -1), m.reshape(n // micro, micro, -1)))
    return out.reshape(n, -1)


def predict_logits(
    model: nnx.Module,
    x: np.ndarray,
    group_mask: np.ndarray,
    batch_size: int = 65536,
    micro_batch: int | None = None,
) -> np.ndarray:
    """Network logits [n, 4] on host arrays, in fixed-size blocks (compiled once per model and size).

    On a CPU each block is computed in micro-batches of 4096 tracks, whose activations stay
    in cache: 1.5x the throughput of one 65 k-track pass (BUILD_NOTES.md, PID benchmark).
    Accelerators take the block in one pass.
    """
    graphdef, state = nnx.split(model)
    n = len(x)
    size = min(batch_size, max(n, 1))
    if micro_batch is None:
        micro_batch = 4096 if jax.default_backend() == "cpu" else size
    micro = min(micro_batch, size)
    size = -(-size // micro) * micro  # a whole number of micro-batches
    out = []
    for start in range(0, n, size):
        xb, mb = x[start : start + size], group_mask[start : start + size]
        pad = size - len(xb)
        if pad:
            xb = np.concatenate([xb, np.zeros((pad, xb.shape[1]), xb.dtype)])
            mb = np.concatenate([mb, np.ones((pad, mb.shape[1]), mb.dtype)])
        out.append(np.asarray(_logits(graphdef, state, xb, mb, micro))[: size - pad])
    return np.concatenate(out) if out else np.zeros((0, N_CLASSES), np.float32)


def predict_proba(
    model: nnx.Module, x: np.ndarray, group_mask: np.ndarray, batch_size: int = 65536
) -> np.ndarray:
    """Uncalibrated softmax [n, 4] of the network (for benchmarks and debugging)."""
    logits = predict_logits(model, x, group_mask, batch_size)
    return np.asarray(jax.nn.softmax(logits, axis=-1))


def model_key(name: str, range_name: str, cfg: PIDConfig, data_fingerprint: str) -> str:
    """What makes two trainings the same: data, network, range, loss and optimiser settings."""
    train = dataclasses.replace(cfg.train, progress=True)
    return "pid-" + runs.config_hash(
        [
            data_fingerprint,
            name,
            range_name,
            to_dict(_model_cfg(name, cfg)),
            to_dict(train),
            to_dict(cfg.loss),
        ]
    )


def _model_cfg(name: str, cfg: PIDConfig) -> ModelConfig:
    return dataclasses.replace(cfg.model, name=name)


def train_model(name: str, cfg: PIDConfig, data: RangeData, run: Run, runtime) -> TrainedModel:
    """Train network `name` on the range `data`, resuming a checkpoint in this run, or reuse a
    finished twin of another run (unless `cfg.reuse` is off: --force-train)."""
    key = model_key(name, data.name, cfg, data.fingerprint)
    directory = run.sub("models", f"{name}_{data.name}")
    model_cfg = _model_cfg(name, cfg)
    done = directory / "model.json"
    if done.exists():  # finished earlier in this very run (resume)
        return load_trained(directory)
    previous = runs.find_artifact(run.workdir, key) if cfg.reuse else None
    if previous is not None:
        trained = load_trained(previous)
        trained.reused_from = previous
        _write_model_json(
            directory,
            name,
            data,
            model_cfg,
            key,
            trained.history,
            weights=previous / "weights",
            calibration=trained.calibration.to_dict(),
            precision=cfg.train.precision,
        )
        return trained

    model = build_model(model_cfg, seed=cfg.train.seed, precision=cfg.train.precision)
    weights = (
        losses.balanced_class_weights(data.train.label, N_CLASSES)
        if cfg.loss.balanced_weights
        else np.ones(N_CLASSES)
    )
    weights = np.where(weights > 0, weights, 1.0)  # a class absent from training: no tilt
    class_weights = jnp.asarray(weights, jnp.float32)

    def loss_fn(model, batch, key):
        logits = model(batch, rngs=nnx.Rngs(dropout=key))
        loss = losses.softmax_focal_loss(
            logits, batch["label"], cfg.loss.alpha, cfg.loss.gamma, class_weights
        )
        # Monitor only: the weights tilt the raw argmax; the calibrated one is in val_accuracy.
        return loss, {"accuracy": jnp.mean(jnp.argmax(logits - jnp.log(class_weights), -1) == batch["label"])}

    def predict_fn(model, batch):
        return model(batch)

    def validate(trainer: Trainer) -> dict:
        """Accuracy of the calibrated decision, the one the model will be used with."""
        logits = trainer.predict_rows(data.val.read, len(data.val))
        probs = fit_calibration(logits, data.val.label, init_bias=-np.log(weights)).apply(logits)
        return {
            "val_accuracy": float(np.mean(probs.argmax(1) == data.val.label)),
            "val_loss": float(-np.mean(np.log(probs[np.arange(len(probs)), data.val.label] + 1e-12))),
        }

    model, result = fit_model(
        model,
        loss_fn,
        predict_fn,
        cfg.train,
        runtime.mesh,
        data.train.read,
        len(data.train),
        validate,
        directory / "ckpt",
        run=run,
        desc=f"{name} [{data.name}]",
        log_prefix={"model": name, "range": data.name},
    )
    calibration = fit_calibration(
        predict_logits(model, data.val.x, data.val.group_mask), data.val.label, init_bias=-np.log(weights)
    )
    checkpoint.save_weights(directory / "weights", nnx.state(model))
    _write_model_json(
        directory,
        name,
        data,
        model_cfg,
        key,
        result.history,
        weights=directory / "weights",
        calibration=calibration.to_dict(),
        precision=cfg.train.precision,
        best_epoch=result.best_epoch,
        stopped_early=result.stopped_early,
    )
    run.set_status("running", artifacts=_artifacts(run, key, directory))
    return TrainedModel(name, data.name, model, directory, result.history, calibration, fit=result)


def _artifacts(run: Run, key: str, directory: Path) -> list[dict]:
    """This run's artifact list with one more entry (the registry merges records per run)."""
    current = next((r for r in runs.load_registry(run.workdir, run.task) if r["run_id"] == run.run_id), {})
    return [*current.get("artifacts", []), {"key": key, "path": str(directory)}]


def _write_model_json(
    directory: Path,
    name: str,
    data: RangeData,
    model_cfg: ModelConfig,
    key: str,
    history: list[dict],
    weights: Path,
    **extra,
) -> None:
    # preprocessor.json first, model.json last: model.json's presence means the folder is complete.
    if runs.is_primary() and not (directory / "preprocessor.json").exists():
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "preprocessor.json").write_text(json.dumps(data.preprocessor.to_dict()))
    meta = {"name": name, "range": data.name, "model": to_dict(model_cfg), "key": key, "history": history}
    checkpoint.write_model_json(directory, {**meta, **extra}, weights)


def load_trained(directory: str | Path) -> TrainedModel:
    """A finished model folder (model.json + weights) as a TrainedModel in eval mode."""
    directory = Path(directory)
    model, meta = checkpoint.load_model(
        directory,
        lambda m: build_model(from_dict(ModelConfig, m["model"]), precision=m.get("precision", "float32")),
    )
    calibration = Calibration.from_dict(meta["calibration"]) if meta.get("calibration") else None
    return TrainedModel(meta["name"], meta["range"], model, directory, meta.get("history", []), calibration)
