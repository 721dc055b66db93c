"""The sample of one DUNE task: NPZ file (simulated on first use, or converted from a folder of
ml_for_pointing cluster files: `pointing_files`) -> rows -> train / val / test.

Tasks and what they read (`jaxhep.dune.io` key groups):

    direction  ES events (5-50 MeV electrons): images_u/v/x -> direction [3]; energy for the plots
    channel    ES + CC events ("mixed"): volume_x -> interaction (0 ES, 1 CC); training rows balanced
    maintrack  X-plane clusters of ES events: mt_images -> mt_label (1 main track, 0 background);
               split by event (mt_event), so no event has clusters on both sides of a split

Images stay memory-mapped in the file; only row numbers and small label columns live in memory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jaxhep.dune import pointing_files
from jaxhep.dune.config import TASKS, DataConfig, DuneConfig
from jaxhep.dune.io import CHANNEL_KEYS, DIRECTION_KEYS, MAINTRACK_KEYS, NpzSource, balanced_indices, load_npz
from jaxhep.dune.models import VOLUME_KEY
from jaxhep.dune.sim.simulate import default_path, simulate_dataset
from jaxhep.errors import InputError
from jaxhep.pipeline import RowSubset

SIM_KIND = {"direction": "es", "channel": "mixed", "maintrack": "es"}
KEYS = {"direction": DIRECTION_KEYS, "channel": CHANNEL_KEYS, "maintrack": (*MAINTRACK_KEYS, "mt_event")}
LABEL = {"channel": "interaction", "maintrack": "mt_label"}


@dataclass
class DuneData:
    task: str
    source: NpzSource
    rows: dict[str, np.ndarray]  # "train" / "val" / "test" -> source rows
    _columns: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def reader(self, part: str):
        """read_rows(positions) of a split: positions [0, n) -> rows of the source."""
        return RowSubset(self.source.read_rows, self.rows[part])

    def column(self, key: str, part: str) -> np.ndarray:
        """A small column (label, energy, direction) of a split [n, ...].

        The whole column is read (and checked for NaN) once, not at every validation pass."""
        if key not in self._columns:
            self._columns[key] = np.asarray(load_npz(self.source.path, [key])[key])
        return self._columns[key][self.rows[part]]


def data_path(task: str, cfg: DataConfig, data_dir: str | os.PathLike) -> Path:
    """The task's NPZ: cfg.path, the conversion of a folder of ml_for_pointing cluster files
    (`pointing_files`, made once under data_dir), or the simulated default under data_dir (made once)."""
    if cfg.path:
        path = Path(cfg.path)
        if not path.exists():
            raise InputError(path, "no such file")
        if path.is_dir():
            return pointing_files.convert(task, path, data_dir)
        return path
    kind = SIM_KIND[task]
    path = default_path(data_dir, cfg.n_events, cfg.sim_seed, kind)
    return simulate_dataset(path, cfg.n_events, cfg.sim_seed, kind)


def load(
    task: str, cfg: DataConfig, data_dir: str | os.PathLike, extra_keys: tuple[str, ...] = ()
) -> DuneData:
    """The task's sample split train / val / test; each row reads KEYS[task] plus `extra_keys`."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, not {task!r}")
    source = NpzSource(data_path(task, cfg, data_dir), (*KEYS[task], *extra_keys))
    n = len(source) if cfg.max_rows is None else min(len(source), cfg.max_rows)
    if n < 10:
        raise InputError(source.path, f"{n} rows for task {task!r}: too few to split")
    rng = np.random.default_rng(cfg.split_seed)
    if task == "maintrack":
        # Split events, then take their clusters.
        event = np.asarray(load_npz(source.path, ["mt_event"])["mt_event"][:n])
        parts = _split(np.unique(event), cfg, rng)
        rows = {name: np.flatnonzero(np.isin(event, ev)) for name, ev in parts.items()}
    else:
        rows = _split(np.arange(n), cfg, rng)
    if task == "channel":
        # ES and CC equally often in training (the seed's balanced sampling); val / test as they come.
        labels = np.asarray(load_npz(source.path, ["interaction"])["interaction"])[rows["train"]]
        rows["train"] = rows["train"][balanced_indices(labels, cfg.split_seed)]
    return DuneData(task, source, rows)


def load_run(cfg: DuneConfig, data_dir: str | os.PathLike) -> DuneData:
    """The sample a run of `cfg` reads: its task's keys, plus volume_x where the direction network's
    volume profiles (`DirectionConfig.volume_bins`) need it."""
    extra = (VOLUME_KEY,) if cfg.task == "direction" and cfg.net.direction.volume_bins else ()
    return load(cfg.task, cfg.data, data_dir, extra)


def _split(items: np.ndarray, cfg: DataConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    items = rng.permutation(items)
    n_test = int(round(cfg.test_fraction * len(items)))
    n_val = int(round(cfg.val_fraction * len(items)))
    return {
        "test": np.sort(items[:n_test]),
        "val": np.sort(items[n_test : n_test + n_val]),
        "train": np.sort(items[n_test + n_val :]),
    }
