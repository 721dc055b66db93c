"""Use a trained PID run from Python.

    from jaxhep.pid.api import load_predictor
    pid = load_predictor("runs/pid/<run-id>", model="fse", momentum_range="0.7-1.5")
    probs = pid.predict_proba("tracks.parquet")      # [N, 4]: pi, ka, pr, el
    species = pid.predict("tracks.parquet")          # [N] class indices

The table needs the 21 feature columns (mc_pdg is not required). The preprocessing
fitted on the run's training split is applied exactly as in training.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jaxhep.errors import InputError
from jaxhep.pid.features import Preprocessor
from jaxhep.pid.io import read_table
from jaxhep.pid.species import SPECIES
from jaxhep.pid.training import TrainedModel, load_trained


@dataclass
class PIDPredictor:
    """A trained network of one momentum range with its preprocessing."""

    trained: TrainedModel
    preprocessor: Preprocessor
    species: tuple[str, ...] = SPECIES

    def predict_proba(self, table: dict[str, np.ndarray] | str | os.PathLike) -> np.ndarray:
        """Species probabilities [N, 4] (SPECIES order) for a table or a CSV/Parquet path."""
        columns = read_table(table, require_label=False) if not isinstance(table, dict) else table
        arrays = self.preprocessor.transform(columns)
        return self.trained.predict_arrays(arrays["x"], arrays["group_mask"])

    def predict(self, table) -> np.ndarray:
        """Most probable species index [N] (0 pi, 1 ka, 2 pr, 3 el)."""
        return self.predict_proba(table).argmax(axis=1)


def available_models(run_dir: str | os.PathLike) -> list[tuple[str, str]]:
    """(model, range) pairs trained in a run."""
    models = Path(run_dir) / "models"
    return sorted(
        tuple(json.loads((d / "model.json").read_text())[k] for k in ("name", "range"))
        for d in models.glob("*")
        if (d / "model.json").exists()
    )


def load_predictor(
    run_dir: str | os.PathLike, model: str = "fse", momentum_range: str = "full"
) -> PIDPredictor:
    """The network `model` of range `momentum_range` trained in run folder `run_dir`."""
    directory = Path(run_dir) / "models" / f"{model}_{momentum_range}"
    if not (directory / "model.json").exists():
        have = ", ".join(f"{m}/{r}" for m, r in available_models(run_dir)) or "none"
        raise InputError(
            directory, f"no finished model {model!r} for range {momentum_range!r} (run has: {have})"
        )
    pre = Preprocessor.from_dict(json.loads((directory / "preprocessor.json").read_text()))
    return PIDPredictor(load_trained(directory), pre)
