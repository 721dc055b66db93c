"""From a track table to per-momentum-range arrays ready for the networks.

The global split is made once for the whole table (stratified, seed 231: 80 % train,
20 % test; validation carved out of train), so every model of every range is tested on
the same tracks. A range keeps the tracks of each split whose pT lies in [lo, hi); its
preprocessing (medians, standardisation) is fitted on that range's training tracks only.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jaxhep.pid.config import DataConfig, parse_range
from jaxhep.pid.features import Preprocessor, momentum_range_mask, stratified_split
from jaxhep.pid.io import data_files, read_table
from jaxhep.pid.sim.simulate import default_sample
from jaxhep.pid.species import LABEL, labels_from_pdg


@dataclass
class Table:
    """All tracks of one file, their labels and the global split."""

    path: Path
    columns: dict[str, np.ndarray]
    labels: np.ndarray  # [N] int32 class index
    train: np.ndarray  # global row indices
    val: np.ndarray
    test: np.ndarray
    fingerprint: str  # identifies the data for model reuse

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Split:
    """One split of one range: network inputs and where its rows sit in the table."""

    rows: np.ndarray  # [n] global row indices
    x: np.ndarray  # [n, 21] float32
    group_mask: np.ndarray  # [n, 4] float32
    label: np.ndarray  # [n] int32

    def __len__(self) -> int:
        return len(self.rows)

    def read(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        """The batch of rows `idx` (positions within this split)."""
        return {"x": self.x[idx], "group_mask": self.group_mask[idx], "label": self.label[idx]}


@dataclass
class RangeData:
    name: str
    preprocessor: Preprocessor
    train: Split
    val: Split
    test: Split
    fingerprint: str  # the table's: with the range's name, what identifies the data for model reuse


def load_table(cfg: DataConfig, data_dir: str | os.PathLike) -> Table:
    """Read (or simulate once and cache) the track table and split it.

    `cfg.path` is a file or a glob pattern of files (`jaxhep.pid.io.read_table`); `Table.path`
    keeps it as given.
    """
    path = Path(cfg.path) if cfg.path else default_sample(data_dir, n=cfg.n_tracks, seed=cfg.sim_seed)
    columns = read_table(path)
    if cfg.max_rows is not None:
        columns = {k: v[: cfg.max_rows] for k, v in columns.items()}
    labels = labels_from_pdg(columns[LABEL])
    rest, test = stratified_split(labels, cfg.test_fraction, cfg.split_seed)
    train_pos, val_pos = stratified_split(labels[rest], cfg.val_fraction, cfg.split_seed + 1)
    # Each file by place, size and time; a pattern's files in name order (one file: as before).
    files = "|".join(f"{f.resolve()}|{f.stat().st_size}|{int(f.stat().st_mtime)}" for f in data_files(path))
    fingerprint = hashlib.sha256(f"{files}|{cfg}".encode()).hexdigest()[:12]
    return Table(path, columns, labels, rest[train_pos], rest[val_pos], test, fingerprint)


def range_data(table: Table, name: str) -> RangeData:
    """The arrays of momentum range `name` ('full', '0.7-1.5', ...) for train/val/test."""
    lo, hi = parse_range(name)
    pt = table.columns["pt"]
    in_range = np.ones(len(table), bool) if lo is None else momentum_range_mask(pt, lo, hi)
    train_rows = table.train[in_range[table.train]]
    pre = Preprocessor().fit(table.columns, train_rows)

    def split(rows):
        rows = rows[in_range[rows]]
        arrays = pre.transform(table.columns, rows)
        return Split(rows, arrays["x"], arrays["group_mask"], arrays["label"])

    return RangeData(name, pre, split(table.train), split(table.val), split(table.test), table.fingerprint)
