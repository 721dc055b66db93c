"""Simulated DUNE supernova-neutrino events, written in the layout of the seed's matched-cluster NPZ.

Chain (one vectorised pass per chunk of events; see each module for the physics and sources):
`neutrino` (pinched spectrum; ES nu-e, CC nu_e 40Ar with 40K* photons) -> `transport` (electron
stepping, delta rays, bremsstrahlung, photons) -> `readout` (recombination, lifetime, diffusion,
U/V/X wires, shaping, trigger primitives) -> `clusters` (TP clustering, truth-matched main cluster
per plane) -> `images` (TPs painted into log-normalised images).

Vertices are uniform in drift distance (20-330 cm) and over 2 m x 2 m in y, z. Each event also
gets 39Ar beta decays near it (1.01 Bq/kg, WArP: Benetti et al., NIM A 574 (2007) 83): the decays
anywhere along the drift column whose drift time lands them inside the +-30 cm box, 0.66 per event.
An event is kept only when all three planes have a main cluster (so every row has three matched
images); chunks are simulated until `n` events are kept.

NPZ layout (event rows N; main-track rows M; uncompressed so members can be memory-mapped):

| key                  | dtype   | shape          | meaning                                             |
|----------------------|---------|----------------|-----------------------------------------------------|
| images_u, images_v,  | float32 | [N, 128, 16]   | main cluster per plane, (tick, channel), log-norm.  |
| images_x             |         |                | [0, 1], box centre at pixel (64, 8)                 |
| volume_x             | float16 | [N, 128, 64]   | collection plane around the main cluster, every TP  |
|                      |         |                | of the event, 4 ticks per row (41 cm x 31 cm)       |
| direction            | float32 | [N, 3]         | true initial electron direction (x drift, y, z)     |
| energy               | float32 | [N]            | electron kinetic energy, MeV                        |
| interaction          | int32   | [N]            | 0 = ES, 1 = CC (channel-tagging label)              |
| nu_direction         | float32 | [N, 3]         | neutrino direction                                  |
| nu_energy            | float32 | [N]            | neutrino energy, MeV                                |
| vertex               | float32 | [N, 3]         | interaction point, mm                               |
| cluster_adc          | float32 | [N, 3]         | sum of adc_integral of the main U, V, X clusters    |
| cluster_n_tps        | int32   | [N, 3]         | TPs in the main U, V, X clusters                    |
| mt_images            | float32 | [M, 128, 16]   | every X-plane cluster with >= 2 TPs (and the main)  |
| mt_label             | int32   | [M]            | 1 = main electron cluster, 0 = background / blip    |
| mt_event             | int32   | [M]            | its event row                                       |
| mt_primary_fraction  | float32 | [M]            | share of its charge from the primary electron       |
| mt_n_tps             | int32   | [M]            | TPs in the cluster                                  |
| metadata             | str     | []             | JSON: n, seed, kind, configuration, format version  |

`volume_x` and the `mt_*` keys are left out with volume=False / maintrack=False.
"""

from __future__ import annotations

import dataclasses
import json
import os
import uuid
from pathlib import Path

import numpy as np

from jaxhep.dune import images
from jaxhep.dune.clusters import cluster_tps, main_clusters, summarise
from jaxhep.dune.sim import argon, geometry, neutrino
from jaxhep.dune.sim.readout import ReadoutConfig, trigger_primitives
from jaxhep.dune.sim.transport import GAMMA, PRIMARY, RADIOLOGICAL, Particles, TransportConfig, shower
from jaxhep.errors import InputError

FORMAT_VERSION = 1
KINDS = {"es": 0, "cc": 1, "mixed": 2}
AR39_ACTIVITY_BQ_PER_KG = 1.01  # WArP, NIM A 574 (2007) 83
AR39_Q_MEV = 0.565


@dataclasses.dataclass(frozen=True)
class SimConfig:
    """Every knob of the event simulation (MeV, mm)."""

    nu_mean_energy: float = 12.0  # <E> of the pinched spectrum (supernova models: 10-15 MeV)
    pinching: float = 2.5  # alpha of the pinched spectrum (Keil, Raffelt & Janka 2003: 2-5)
    spectrum: str = "supernova"  # or "flat": E_nu uniform, to cover the energy window evenly
    energy_range: tuple[float, float] = (5.0, 50.0)  # electron kinetic energy window
    drift_range_mm: tuple[float, float] = (200.0, 3300.0)
    yz_half_width_mm: float = 1000.0
    radiological: bool = True
    radiological_box_mm: float = 300.0  # half-width of the box around the vertex
    channel_gap: int = 2  # clustering
    tick_bin: int = 8
    min_cluster_tps: int = 2  # background clusters kept for the main-track set
    chunk: int = 2000  # events simulated per vectorised pass
    transport: TransportConfig = TransportConfig()
    readout: ReadoutConfig = ReadoutConfig()

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


def _interactions(rng: np.random.Generator, kinds: np.ndarray, config: SimConfig) -> dict[str, np.ndarray]:
    """Electron and neutrino kinematics per event [m] (ES rows where kinds == 0, CC where 1)."""
    m = kinds.size
    kw = dict(
        mean=config.nu_mean_energy,
        alpha=config.pinching,
        energy_range=config.energy_range,
        spectrum=config.spectrum,
    )
    out = {"gamma_energies": np.zeros((m, neutrino.MAX_GAMMAS))}
    for code, make in ((0, neutrino.elastic_scattering), (1, neutrino.charged_current)):
        rows = np.flatnonzero(kinds == code)
        if rows.size == 0:
            continue
        part = make(rng, rows.size, **kw)
        for key, value in part.items():
            if key not in out:
                out[key] = np.zeros((m, *value.shape[1:]))
            out[key][rows] = value
    return out


def _ar39_energies(rng: np.random.Generator, n: int) -> np.ndarray:
    """39Ar beta kinetic energies [n] from the allowed shape p E (Q - T)^2 (Fermi function neglected)."""
    out, have = [], 0
    while have < n:
        t = rng.uniform(0.0, AR39_Q_MEV, 3 * (n - have) + 16)
        e = t + argon.ELECTRON_MASS
        w = np.sqrt(t * (t + 2 * argon.ELECTRON_MASS)) * e * (AR39_Q_MEV - t) ** 2
        keep = t[rng.uniform(0.0, 0.05, t.size) < w]  # max of w: 0.048 MeV^4 at T = 0.16 MeV
        out.append(keep)
        have += keep.size
    return np.concatenate(out)[:n]


def _sources(rng, kin, vertex, config: SimConfig) -> tuple[Particles, Particles]:
    """Initial electrons (primary + radiological) and photons (40K* de-excitation)."""
    m = len(vertex)
    electrons = [
        Particles.make(vertex, kin["electron_direction"], kin["electron_energy"], np.arange(m), PRIMARY, True)
    ]
    gammas = kin["gamma_energies"]
    ev, slot = np.nonzero(gammas > 0)
    photons = Particles.make(vertex[ev], neutrino.isotropic(rng, ev.size), gammas[ev, slot], ev, GAMMA)
    if config.radiological:
        b = config.radiological_box_mm
        # Decays anywhere along the drift column whose drift time puts them in the box: mass of the
        # column over the box's y-z area, times the time the box spans in drift.
        column_kg = argon.DENSITY * (2 * b) ** 2 * config.readout.drift_length_mm * 1e-6
        mean = AR39_ACTIVITY_BQ_PER_KG * column_kg * (2 * b / geometry.DRIFT_SPEED_MM_PER_US) * 1e-6
        count = rng.poisson(mean, m)
        owner = np.repeat(np.arange(m), count)
        pos = vertex[owner] + rng.uniform(-b, b, (owner.size, 3))
        electrons.append(
            Particles.make(
                pos, neutrino.isotropic(rng, owner.size), _ar39_energies(rng, owner.size), owner, RADIOLOGICAL
            )
        )
    return Particles.concat(electrons), photons


def _cluster_images(
    tps,
    cluster,
    summary,
    chosen: np.ndarray,
    shape,
    threshold,
    ticks_per_row=1,
    whole_event: np.ndarray | None = None,
) -> np.ndarray:
    """Images [k, *shape] centred on clusters `chosen` [k]: their own TPs, or with `whole_event` [k]
    (event ids) every TP of that event on the same plane."""
    k = chosen.size
    origin_tick, origin_channel = images.centred_origin(summary, chosen, shape, ticks_per_row)
    if whole_event is None:
        image_of_cluster = np.full(len(summary["event"]), -1)
        image_of_cluster[chosen] = np.arange(k)
        image_of = image_of_cluster[cluster]
    else:
        image_of_event = np.full(int(tps["event"].max(initial=0)) + 1, -1)
        image_of_event[whole_event] = np.arange(k)
        plane = summary["plane"][chosen[0]] if k else 0
        image_of = np.where(tps["plane"] == plane, image_of_event[tps["event"]], -1)
    rows = np.flatnonzero(image_of >= 0)
    return images.paint(
        tps, rows, image_of[rows], origin_tick, origin_channel, k, shape, threshold, ticks_per_row
    )


def _chunk(
    rng: np.random.Generator, m: int, kind: str, config: SimConfig, volume: bool, maintrack: bool
) -> dict[str, np.ndarray]:
    """Simulate m events; returns the NPZ columns of those with three main clusters (rows <= m)."""
    kinds = {"es": np.zeros(m, np.int64), "cc": np.ones(m, np.int64)}.get(kind)
    if kinds is None:
        kinds = (rng.random(m) < 0.5).astype(np.int64)
    kin = _interactions(rng, kinds, config)
    h = config.yz_half_width_mm
    vertex = np.stack(
        [rng.uniform(*config.drift_range_mm, m), rng.uniform(-h, h, m), rng.uniform(-h, h, m)], 1
    )
    electrons, photons = _sources(rng, kin, vertex, config)
    tps = trigger_primitives(rng, shower(rng, electrons, photons, config.transport), config.readout)
    cluster = cluster_tps(tps, config.channel_gap, config.tick_bin)
    summary = summarise(tps, cluster)
    main = main_clusters(summary, m)
    ok = np.flatnonzero((main >= 0).all(axis=1))
    threshold = np.asarray(config.readout.threshold)
    out = {}
    for plane in geometry.PLANES:
        out[f"images_{plane.name.lower()}"] = _cluster_images(
            tps, cluster, summary, main[ok, plane.index], images.CLUSTER_SHAPE, threshold
        )
    if volume:
        out["volume_x"] = _cluster_images(
            tps,
            cluster,
            summary,
            main[ok, geometry.X.index],
            images.VOLUME_SHAPE,
            threshold,
            images.VOLUME_TICKS_PER_ROW,
            whole_event=ok,
        ).astype(np.float16)
    out.update(
        direction=kin["electron_direction"][ok].astype(np.float32),
        energy=kin["electron_energy"][ok].astype(np.float32),
        interaction=kinds[ok].astype(np.int32),
        nu_direction=kin["nu_direction"][ok].astype(np.float32),
        nu_energy=kin["nu_energy"][ok].astype(np.float32),
        vertex=vertex[ok].astype(np.float32),
        cluster_adc=summary["adc"][main[ok]].astype(np.float32),
        cluster_n_tps=summary["n_tps"][main[ok]].astype(np.int32),
    )
    if maintrack:
        row_of_event = np.full(m, -1)
        row_of_event[ok] = np.arange(ok.size)
        is_main = np.zeros(len(summary["event"]), bool)
        is_main[main[ok, geometry.X.index]] = True
        chosen = np.flatnonzero(
            (summary["plane"] == geometry.X.index)
            & (row_of_event[summary["event"]] >= 0)
            & ((summary["n_tps"] >= config.min_cluster_tps) | is_main)
        )
        out.update(
            mt_images=_cluster_images(tps, cluster, summary, chosen, images.CLUSTER_SHAPE, threshold),
            mt_label=is_main[chosen].astype(np.int32),
            mt_event=row_of_event[summary["event"][chosen]].astype(np.int32),
            mt_primary_fraction=(
                summary["primary_adc"][chosen] / np.maximum(summary["adc"][chosen], 1e-9)
            ).astype(np.float32),
            mt_n_tps=summary["n_tps"][chosen].astype(np.int32),
        )
    return out


def simulate_events(
    n: int,
    seed: int,
    kind: str = "es",
    config: SimConfig = SimConfig(),
    volume: bool = True,
    maintrack: bool = True,
) -> dict[str, np.ndarray]:
    """Simulate until n events have three matched clusters; the NPZ columns (module docstring).

    Deterministic for (n, seed, kind, config): chunk c uses the seed (seed, c, kind).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}, not {kind!r}")
    parts, have, c = [], 0, 0
    while have < n:
        rng = np.random.default_rng([seed, c, KINDS[kind]])
        part = _chunk(rng, min(config.chunk, max(2 * (n - have), 64)), kind, config, volume, maintrack)
        if maintrack:
            part["mt_event"] = part["mt_event"] + have
        parts.append(part)
        have += len(part["energy"])
        c += 1
    out = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    event_keys = [k for k in out if not k.startswith("mt_")]
    for key in event_keys:
        out[key] = out[key][:n]
    if maintrack:
        keep = out["mt_event"] < n
        for key in [k for k in out if k.startswith("mt_")]:
            out[key] = out[key][keep]
    return out


def _metadata(n: int, seed: int, kind: str, config: SimConfig, volume: bool, maintrack: bool) -> str:
    return json.dumps(
        dict(
            format_version=FORMAT_VERSION,
            n=n,
            seed=seed,
            kind=kind,
            volume=volume,
            maintrack=maintrack,
            config=json.loads(config.to_json()),
        ),
        sort_keys=True,
    )


def default_path(data_dir: str | os.PathLike, n: int, seed: int, kind: str = "es") -> Path:
    """data_dir/dune/sim_{kind}_n{n}_seed{seed}.npz: the cache name of a default simulation."""
    return Path(data_dir) / "dune" / f"sim_{kind}_n{n}_seed{seed}.npz"


def simulate_dataset(
    path: str | os.PathLike,
    n: int,
    seed: int = 0,
    kind: str = "es",
    config: SimConfig = SimConfig(),
    volume: bool = True,
    maintrack: bool = True,
) -> Path:
    """Simulate n events into the NPZ `path` (uncompressed), unless it already holds exactly that.

    Written under a temporary name and renamed, so an interrupted or concurrent run never leaves a
    partial file under `path`. An existing file made with other settings (or not by this simulator)
    raises InputError rather than being overwritten.
    """
    from jaxhep.dune.io import read_metadata  # io imports nothing from here; avoid a cycle anyway

    path = Path(path)
    wanted = _metadata(n, seed, kind, config, volume, maintrack)
    if path.exists():
        found = read_metadata(path)
        if found != json.loads(wanted):
            raise InputError(
                path,
                "exists but holds a different simulation (or real data); delete it or "
                f"choose another name (found {found}, wanted {wanted})",
            )
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = simulate_events(n, seed, kind, config, volume, maintrack)
    columns["metadata"] = np.array(wanted)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex}.tmp.npz")
    try:
        np.savez(tmp, **columns)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
