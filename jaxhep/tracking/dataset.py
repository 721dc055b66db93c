"""Events -> graphs -> one stacked, padded array set per split (what the training loop reads).

Every graph of a split is padded to the same bucketed size, so the train step compiles
once; a row of the stacked arrays is one event's graph. Graphs are cached next to the
events (`graphs-<hash>.npz`), keyed by the graph settings, because building a mu = 200
graph takes seconds and an epoch reads every event.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from jaxhep.errors import InputError
from jaxhep.tracking.config import DataConfig
from jaxhep.tracking.graph import EventGraph, build_graph
from jaxhep.tracking.io import list_events, read_event
from jaxhep.tracking.padding import bucket_size, graph_buckets, stack_graphs
from jaxhep.tracking.sectors import phi_sector, phi_sectors
from jaxhep.tracking.sim.simulate import simulate_dataset


@dataclass
class Split:
    """Rows of one split, padded to one size (`n_node`, `n_edge`: one compiled program per split) when
    they are read: the events' `graphs` (unpadded) themselves, or for training each one's `sectors`
    phi sectors (row i = sector i % sectors of event i // sectors, cut when read). Padding on read
    keeps memory at the unpadded graphs: a stack of every padded training sector of 48 mu = 200
    events at a 0.2 GeV floor would take ~20 GB."""

    graphs: list[EventGraph]
    prefixes: list[str]
    n_node: int
    n_edge: int
    bidirectional: bool | None = None  # the model's setting, for each row's `message_order`
    sectors: int = 1
    halo: float = 0.1

    def __len__(self) -> int:
        return len(self.graphs) * self.sectors

    def row(self, i: int) -> EventGraph:
        """Row i, unpadded: an event's graph or one of its sectors."""
        event, k = divmod(int(i), self.sectors)
        return phi_sector(self.graphs[event], self.sectors, k, self.halo)

    def read(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        """Rows idx (any shape [...]) padded and stacked: every key of `pad_graph` as [..., ...]."""
        idx = np.asarray(idx)
        rows = [self.row(i) for i in idx.ravel()]
        stack = stack_graphs(rows, self.n_node, self.n_edge, self.bidirectional)
        return {k: v.reshape(*idx.shape, *v.shape[1:]) for k, v in stack.items()}


@dataclass
class Events:
    """Every event's graph and file prefix, in file order: the training events, then `n_val`
    validation events, then `n_test` test events (the last ones)."""

    graphs: list[EventGraph]
    prefixes: list[str]
    n_val: int
    n_test: int

    def __len__(self) -> int:
        return len(self.graphs)

    @property
    def val(self) -> slice:
        """The validation events' positions."""
        return slice(len(self) - self.n_val - self.n_test, len(self) - self.n_test)

    @property
    def test(self) -> slice:
        """The test events' positions."""
        return slice(len(self) - self.n_test, None)

    def with_graphs(self, graphs: list[EventGraph]) -> Events:
        """The same events with other graphs (one per event, e.g. the pruned ones of stage 2)."""
        if len(graphs) != len(self):
            raise ValueError(f"{len(graphs)} graphs for {len(self)} events")
        return Events(graphs, self.prefixes, self.n_val, self.n_test)


def progress_bar(on: bool, desc: str):
    """A wrapper of a list that shows a progress bar over it (tqdm), or None when `on` is False."""
    if not on:
        return None
    from tqdm.auto import tqdm

    return lambda xs: tqdm(xs, desc=desc, leave=False)


def event_folder(cfg: DataConfig, data_dir: str | os.PathLike) -> Path:
    """The folder holding the events: `cfg.path`, or simulated ones (made once) under data_dir."""
    if cfg.path:
        folder = Path(cfg.path)
        if not folder.is_dir():
            raise InputError(folder, "not a folder of TrackML events (eventNNNNNNNNN-hits.csv ...)")
        return folder
    folder = Path(data_dir) / "tracking" / f"sim_mu{cfg.pileup:g}_seed{cfg.sim_seed}"
    simulate_dataset(folder, cfg.n_events, seed=cfg.sim_seed, pileup=cfg.pileup)
    return folder


def graph_options(cfg: DataConfig) -> dict:
    """build_graph's keyword arguments for a run's data settings (training, evaluation and api alike)."""
    return dict(method=cfg.method, k=cfg.k, pt_min=cfg.pt_min, pt_floor=cfg.pt_floor)


def _graph_settings(cfg: DataConfig) -> dict:
    # Bump "version" whenever graph.py's defaults or features change: it keys the cache. pt_floor only
    # enters when set, so the caches of runs made before it stay valid.
    settings = {"method": cfg.method, "k": cfg.k, "pt_min": cfg.pt_min, "version": 1}
    if cfg.pt_floor is not None:
        settings["pt_floor"] = cfg.pt_floor
    return settings


def load_graphs(
    cfg: DataConfig, data_dir: str | os.PathLike, progress=None
) -> tuple[list[EventGraph], list[str]]:
    """Every event's graph (built once, then read from the cache)."""
    folder = event_folder(cfg, data_dir)
    prefixes = [str(folder / name) for name in list_events(folder)][: cfg.n_events]
    if len(prefixes) < cfg.val_events + cfg.test_events + 1:
        raise InputError(
            folder,
            f"{len(prefixes)} events; need at least {cfg.val_events + cfg.test_events + 1} "
            "(training, validation and test events)",
        )
    key = hashlib.sha256(json.dumps(_graph_settings(cfg), sort_keys=True).encode()).hexdigest()[:10]
    cache = folder / f"graphs-{key}"
    cache.mkdir(exist_ok=True)
    graphs = []
    for prefix in prefixes if progress is None else progress(prefixes):
        path = cache / f"{Path(prefix).name}.npz"
        if path.exists():
            graphs.append(_load(path))
            continue
        graph = build_graph(read_event(prefix), **graph_options(cfg))
        _save(path, graph)
        graphs.append(graph)
    return graphs, prefixes


def load_events(cfg: DataConfig, data_dir: str | os.PathLike, progress=None) -> Events:
    """`load_graphs` as Events split by `cfg`'s validation and test counts."""
    graphs, prefixes = load_graphs(cfg, data_dir, progress)
    return Events(graphs, prefixes, cfg.val_events, cfg.test_events)


def split(
    graphs: list[EventGraph], prefixes: list[str], cfg: DataConfig, bidirectional: bool | None = None
) -> tuple[Split, Split, Split]:
    """Train / validation / test by event (last events are test, the ones before validation).

    Training events are cut into `cfg.train_sectors` phi sectors (each a row of the training split).
    The training rows share one padded size, and validation and test another (two compiled programs:
    the train step and the forward pass). bidirectional: the model's setting, to store each row's
    `message_order` (None: none stored).
    """
    n_test, n_val = cfg.test_events, cfg.val_events
    n_train = len(graphs) - n_val - n_test
    # The training rows' bucket fits every sector of every training event (cut here one event at a
    # time); validation and test share the bucket of the evaluation events, so one forward program
    # serves both.
    sizes = [
        (part.n_node, part.n_edge)
        for graph in graphs[:n_train]
        for part in phi_sectors(graph, cfg.train_sectors, cfg.sector_halo)
    ]
    n_node = bucket_size(max(n for n, _ in sizes) + 1)  # room for the padding node
    n_edge = bucket_size(max(e for _, e in sizes))
    train = Split(
        graphs[:n_train],
        prefixes[:n_train],
        n_node,
        n_edge,
        bidirectional,
        cfg.train_sectors,
        cfg.sector_halo,
    )
    n_node, n_edge = graph_buckets(graphs[n_train:])
    val, test = (
        Split(graphs[part], prefixes[part], n_node, n_edge, bidirectional)
        for part in (slice(n_train, n_train + n_val), slice(n_train + n_val, None))
    )
    return train, val, test


def _save(path: Path, graph: EventGraph) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    fields = {k: v for k, v in asdict(graph).items() if k != "info"}
    np.savez(tmp, **fields, info=json.dumps(graph.info, default=float))
    os.replace(tmp, path)


def _load(path: Path) -> EventGraph:
    with np.load(path) as f:
        data = {k: f[k] for k in f.files}
    info = json.loads(str(data.pop("info")))
    return EventGraph(**data, info=info)
