"""Use a trained DUNE run from Python.

    from jaxhep.dune.api import load_predictor
    model = load_predictor("runs/dune/<run-id>")             # the task's first network
    out = model.predict("three_plane_matched_50k.npz")       # direction: unit vectors [N, 3]
    load_predictor(channel_run).predict("mixed.npz")         # channel: P(CC) [N]
    load_predictor(maintrack_run).predict("es.npz")          # maintrack: P(main track) [M clusters]

The input is an NPZ file in the seed's layout (only the network's image keys are needed:
images_u / images_v / images_x, volume_x or mt_images) or a dict of those image arrays, as the
model takes them (rows first, float in [0, 1], e.g. images_x [N, 128, 16]). The ensemble's
members are combined as in the run's evaluation (`dune.ensemble.combine_directions` /
`combine_logits`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jaxhep.config import from_dict
from jaxhep.dune.config import NETWORKS, NetConfig
from jaxhep.dune.io import NpzSource
from jaxhep.dune.models import direction_inputs
from jaxhep.dune.training import TrainedModel, load_trained, predict
from jaxhep.errors import InputError
from jaxhep.train import predict_with


@dataclass
class DunePredictor:
    """A trained ensemble of one network with the image keys it reads."""

    trained: TrainedModel
    input_keys: tuple[str, ...]
    batch_size: int = 512  # the run's evaluation batch

    @property
    def task(self) -> str:
        return self.trained.task

    def outputs(self, x: str | os.PathLike | dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every output of the ensemble, rows first: direction [N, 3], sense_agreement [N],
        spread_deg [N], members [N, M, 3] (direction); prob [N], prob_std [N], logit [N],
        members [N, M] (channel, maintrack)."""
        read, n = self._reader(x)
        return predict_with(self.trained.model, predict(self.task), read, n, self.batch_size)

    def predict(self, x: str | os.PathLike | dict[str, np.ndarray]) -> np.ndarray:
        """Unit directions [N, 3] (direction), or the probability [N] of CC (channel) or of the
        main track (maintrack), for an NPZ path or a dict of image arrays."""
        out = self.outputs(x)
        return out["direction"] if self.task == "direction" else out["prob"]

    def _reader(self, x):
        if isinstance(x, (str, os.PathLike)):
            source = NpzSource(x, self.input_keys)
            return source.read_rows, len(source)
        missing = [k for k in self.input_keys if k not in x]
        if missing:
            raise ValueError(f"{self.trained.network} reads {', '.join(self.input_keys)}; missing {missing}")
        arrays = {k: np.asarray(x[k], np.float32) for k in self.input_keys}
        lengths = {len(a) for a in arrays.values()}
        if len(lengths) != 1:
            raise ValueError(f"the image arrays disagree on the number of rows: {sorted(lengths)}")
        return (lambda idx: {k: a[idx] for k, a in arrays.items()}), lengths.pop()


def available_networks(run_dir: str | os.PathLike) -> list[str]:
    """Networks with a finished model in a run folder."""
    return sorted(json.loads(p.read_text())["network"] for p in Path(run_dir).glob("models/*/model.json"))


def load_predictor(run_dir: str | os.PathLike, network: str | None = None) -> DunePredictor:
    """The ensemble `network` (None: the task's first one trained) of the run folder `run_dir`."""
    run_dir = Path(run_dir)
    try:
        task = json.loads((run_dir / "config.json").read_text())["dune"]["task"]
    except (OSError, ValueError, KeyError):
        raise InputError(run_dir / "config.json", "not the config of a DUNE run") from None
    have = available_networks(run_dir)
    if network is None:
        network = next((n for n in NETWORKS[task] if n in have), NETWORKS[task][0])
    directory = run_dir / "models" / f"{task}_{network}"
    if not (directory / "model.json").exists():
        raise InputError(
            directory, f"no finished {task} model {network!r} (run has: {', '.join(have) or 'none'})"
        )
    net = from_dict(NetConfig, json.loads((directory / "model.json").read_text())["net"])
    return DunePredictor(load_trained(directory), _input_keys(task, network, net))


def _input_keys(task: str, network: str, net: NetConfig) -> tuple[str, ...]:
    if task == "direction":
        return direction_inputs(net.direction, network)
    return (getattr(net, task).input_key,)
