"""The e/gamma sample of a run: files -> source -> stratified 70/15/15 split -> batch readers.

Images stay in the HDF5 files (`io.EcalImageSource` reads batches lazily); only labels and the
split's row numbers live in memory. Normalisation statistics come from the training rows.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jaxhep.egamma.augment import AugmentedReader, ChannelStats
from jaxhep.egamma.config import AugmentConfig, DataConfig
from jaxhep.egamma.io import EcalImageSource, SplitReader, fit_normalisation, split_indices
from jaxhep.egamma.sim.simulate import default_files

CLASS_NAMES = ["photon", "electron"]  # label 0, 1


@dataclass
class EgammaData:
    source: EcalImageSource
    rows: dict[str, np.ndarray]  # "train" / "val" / "test" -> source rows [n_k]
    stats: ChannelStats

    def labels(self, part: str) -> np.ndarray:
        """[n_k] int labels of a split (1 electron, 0 photon)."""
        return self.source.labels[self.rows[part]]

    def reader(self, part: str, augment: AugmentConfig | None = None, seed: int = 0) -> AugmentedReader:
        """read_rows(positions) of a split: normalised, augmented only when `augment` is given."""
        return AugmentedReader(SplitReader(self.source, self.rows[part]), augment, self.stats, seed)

    def fingerprint(self) -> str:
        """Identifies the files and the split (for the run record)."""
        h = hashlib.sha256()
        for p in self.source.paths:
            h.update(f"{p.resolve()}:{p.stat().st_size}:{p.stat().st_mtime_ns}".encode())
        for part in ("train", "val", "test"):
            h.update(self.rows[part].tobytes())
        return h.hexdigest()[:12]


def load(cfg: DataConfig, data_dir: str | os.PathLike) -> EgammaData:
    """Open the files (simulating the default sample on first use), split and fit normalisation."""
    paths = [Path(p) for p in cfg.paths] or default_files(data_dir, cfg.n_per_class, cfg.sim_seed)
    source = EcalImageSource(paths)
    labels = source.labels
    if cfg.max_rows is not None and cfg.max_rows < len(labels):
        keep = np.sort(_stratified_subset(labels, cfg.max_rows, cfg.split_seed))
    else:
        keep = np.arange(len(labels))
    parts = split_indices(labels[keep], cfg.fractions, cfg.split_seed)
    rows = {name: keep[p] for name, p in zip(("train", "val", "test"), parts)}
    stats = fit_normalisation(source, rows["train"], max_rows=cfg.norm_rows, seed=cfg.split_seed)
    return EgammaData(source, rows, stats)


def _stratified_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n rows keeping the class mix: the first rows of a seeded shuffle within each class."""
    rng = np.random.default_rng(seed)
    out = []
    for value in np.unique(labels):
        rows = np.flatnonzero(labels == value)
        take = int(round(n * len(rows) / len(labels)))
        out.append(rng.permutation(rows)[:take])
    return np.concatenate(out)
