"""Use a trained e/gamma run from Python.

    from jaxhep.egamma.api import load_predictor
    model = load_predictor("runs/egamma/<run-id>", model="se")
    p_electron = model.predict_proba("SingleElectronPt50_IMGCROPS_n249k_RHv1.hdf5")  # [N]
    is_electron = model.predict(X)          # X [N, 32, 32, 2] -> [N]: 1 electron, 0 photon

Input: an ML4SCI HDF5 file (`X` [N, 32, 32, 2]: energy in GeV, time in ns; `y` optional, not
used), read a batch at a time, or an array of the same layout. The images are normalised with
the statistics of the run's training rows, as in training. `predict` cuts at the run's decision
threshold, the accuracy-optimal logit on validation that the report's figures use.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jaxhep.egamma.augment import AugmentedReader
from jaxhep.egamma.io import IMAGE_SHAPE, EcalImageSource
from jaxhep.egamma.training import TrainedModel, infer, load_trained
from jaxhep.errors import InputError


@dataclass
class EgammaPredictor:
    """A trained network with its normalisation and decision threshold."""

    trained: TrainedModel
    threshold_logit: float = 0.0  # logit >= it: electron
    batch_size: int = 1024

    def logits(self, x: np.ndarray | str | os.PathLike) -> np.ndarray:
        """Network logits [N] (electron positive) of an HDF5 path or an array [N, 32, 32, 2]."""
        read_rows, n = _reader(x)
        reader = AugmentedReader(read_rows, None, self.trained.stats)
        return infer(self.trained.model, reader, n, batch_size=self.batch_size)

    def predict_proba(self, x: np.ndarray | str | os.PathLike) -> np.ndarray:
        """Electron probability [N] (the sigmoid of the logit) of an HDF5 path or an array."""
        return 1.0 / (1.0 + np.exp(-self.logits(x).astype(np.float64)))

    def predict(self, x: np.ndarray | str | os.PathLike) -> np.ndarray:
        """Class [N] int64 (1 electron, 0 photon) at the run's decision threshold."""
        return (self.logits(x) >= self.threshold_logit).astype(np.int64)


def _reader(x) -> tuple:
    """(read_rows(indices) -> {"image": [n, 32, 32, 2]}, number of rows) of a path or an array."""
    if isinstance(x, (str, os.PathLike)):
        source = EcalImageSource(x, require_labels=False)
        return source.read_rows, len(source)
    images = np.asarray(x, np.float32)
    if images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE:
        raise ValueError(f"images of shape {images.shape}: expected [N, 32, 32, 2] (channels last)")
    if not np.isfinite(images).all():
        raise ValueError("images hold NaN or infinite values")
    return (lambda idx: {"image": images[idx]}), len(images)


def available_models(run_dir: str | os.PathLike) -> list[str]:
    """Networks trained to the end in a run."""
    return sorted(d.name for d in (Path(run_dir) / "models").glob("*") if (d / "model.json").exists())


def load_predictor(run_dir: str | os.PathLike, model: str = "se") -> EgammaPredictor:
    """Network `model` ("se" | "plain") of the run folder `run_dir`."""
    directory = Path(run_dir) / "models" / model
    if not (directory / "model.json").exists():
        have = ", ".join(available_models(run_dir)) or "none"
        raise InputError(directory, f"no finished model {model!r} (run has: {have})")
    trained = load_trained(directory)
    if trained.stats is None:
        raise InputError(directory / "model.json", "no normalisation saved (a run older than the API)")
    metrics = Path(run_dir) / "metrics.json"
    threshold = 0.0  # a run stopped before its evaluation: the network's own cut
    if metrics.exists():
        threshold = json.loads(metrics.read_text())["models"].get(model, {}).get("threshold_logit", 0.0)
    return EgammaPredictor(trained, float(threshold))
