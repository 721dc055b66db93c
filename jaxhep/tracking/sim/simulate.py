"""A fast TrackML event simulator that writes the real file format.

Physics choices (details and sources in BUILD_NOTES.md, "Detector, simulator, reader, score"):
- pile-up: max(1, Poisson(mu)) interactions, each at a vertex with sigma_z = 55 mm, sigma_xy = 15 um;
- charged multiplicity per interaction: negative binomial with mean 50 (k = 2), so mu = 200 gives
  about 10,000 particles (TrackML paper, arXiv:1904.06778);
- species pi / K / p / e / mu with fractions 0.82 / 0.11 / 0.05 / 0.015 / 0.005 (LHC pp: K/pi ~ 0.13,
  p/pi ~ 0.06), charge +-1 with equal odds;
- pT from dN/dpT ~ pT (1 + pT/p0)^-n with p0 = 0.98 GeV, n = 6.6 (mean 0.545 GeV as CMS measured
  at 7 TeV), above pt_min = 0.1 GeV: 85 % below 1 GeV, about one particle per mu = 200 event above
  10 GeV; eta flat in |eta| < eta_max; phi flat;
- transport, multiple scattering and crossings: `propagate.py`; smearing, modules, cells:
  `digitize.py`; noise hits with particle_id 0; weights: `score.hit_weights`.

Columns come out in trackml-library's dtypes (float32 positions), so an event in memory equals the
event read back from its files.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from jaxhep.tracking.io import DTYPES, PARTS, find_file
from jaxhep.tracking.score import hit_weights
from jaxhep.tracking.sim import digitize
from jaxhep.tracking.sim.detector import GENERIC_DETECTOR, Detector
from jaxhep.tracking.sim.propagate import propagate

# Beam spot (TrackML paper, arXiv:1904.06778): sigma_z = 55 mm, sigma_x = sigma_y = 15 um.
VERTEX_SIGMA_Z_MM = 55.0
VERTEX_SIGMA_XY_MM = 0.015
# Negative-binomial shape of the multiplicity per interaction (a choice, not a fit).
MULTIPLICITY_K = 2.0
# Tsallis-like pT spectrum dN/dpT ~ pT (1 + pT/p0)^-n; n and p0 = n T as in CMS's Tsallis fit to
# 7 TeV minimum bias (n ~ 6.6, T ~ 0.145 GeV; mean pT 2 p0 / (n - 3) = 0.545 GeV before the cut).
PT_P0_GEV, PT_POWER = 0.98, 6.6
PT_MAX_GEV = 100.0

# (PDG code of the positive particle, mass GeV (PDG), fraction).
SPECIES = (
    (211, 0.13957, 0.82),
    (321, 0.49368, 0.11),
    (2212, 0.93827, 0.05),
    (-11, 0.000511, 0.015),  # e+ (PDG code -11)
    (-13, 0.10566, 0.005),  # mu+ (PDG code -13)
)


def _sample_pt(rng: np.random.Generator, n: int, pt_min: float) -> np.ndarray:
    """pT [n] in GeV from pT (1 + pT/p0)^-n on [pt_min, PT_MAX_GEV], by inverting the tabulated CDF."""
    grid = np.geomspace(pt_min, PT_MAX_GEV, 4096)
    u = 1.0 + grid / PT_P0_GEV
    # Antiderivative of (u - 1) u^-n du (times p0^2, dropped: it cancels in the normalisation).
    cdf = u ** (2 - PT_POWER) / (2 - PT_POWER) - u ** (1 - PT_POWER) / (1 - PT_POWER)
    cdf = (cdf - cdf[0]) / (cdf[-1] - cdf[0])
    return np.interp(rng.random(n), cdf, grid)


def generate_particles(
    rng: np.random.Generator,
    pileup: float,
    particles_per_vertex: float = 50.0,
    pt_min: float = 0.1,
    eta_max: float = 4.0,
) -> dict[str, np.ndarray]:
    """Primary charged particles of max(1, Poisson(pileup)) interactions: the particles columns but nhits.

    particle_id = vertex << 52 | index << 36 (trackml-library `decode_particle_id` layout, both 1-based,
    generation 0), so ids are unique, positive and non-zero.
    """
    # At least one interaction: an event without hits would make an unreadable hits file.
    n_vertex = max(int(rng.poisson(pileup)), 1)
    if n_vertex >= 2**11:
        raise ValueError(f"pileup {pileup}: {n_vertex} vertices do not fit the 11-bit vertex id")
    mean = rng.gamma(MULTIPLICITY_K, particles_per_vertex / MULTIPLICITY_K, n_vertex)
    per_vertex = rng.poisson(mean)
    n = int(per_vertex.sum())
    vertex = np.repeat(np.arange(n_vertex), per_vertex)
    index = np.arange(n) - np.repeat(np.cumsum(per_vertex) - per_vertex, per_vertex)
    vpos = np.stack(
        [
            rng.normal(0, VERTEX_SIGMA_XY_MM, n_vertex),
            rng.normal(0, VERTEX_SIGMA_XY_MM, n_vertex),
            rng.normal(0, VERTEX_SIGMA_Z_MM, n_vertex),
        ],
        axis=1,
    )[vertex]

    codes, masses, fractions = (np.array(c) for c in zip(*SPECIES))
    kind = rng.choice(len(SPECIES), size=n, p=fractions / fractions.sum())
    sign = rng.choice(np.array([-1, 1]), size=n)
    pt = _sample_pt(rng, n, pt_min)
    eta = rng.uniform(-eta_max, eta_max, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    return dict(
        particle_id=((vertex + 1).astype(np.int64) << 52) | ((index + 1).astype(np.int64) << 36),
        particle_type=codes[kind] * sign,
        vx=vpos[:, 0],
        vy=vpos[:, 1],
        vz=vpos[:, 2],
        px=pt * np.cos(phi),
        py=pt * np.sin(phi),
        pz=pt * np.sinh(eta),
        q=sign,
        mass=masses[kind],
    )


def _noise(rng, table, n_noise: int, true_layer: np.ndarray, n_layers: int):
    """Noise hit positions [n_noise, 3] and layers [n_noise], uniform over the area of each layer.

    A layer is picked in proportion to its true hits (noise follows occupancy; by area if no hits).
    """
    counts = np.bincount(true_layer, minlength=n_layers).astype(np.float64)
    if counts.sum() == 0:
        area = np.where(
            table["is_barrel"],
            4 * np.pi * table["radius"] * table["half_length"],
            np.pi * (table["r_max"] ** 2 - table["r_min"] ** 2),
        )
        counts = area
    layer = rng.choice(n_layers, size=n_noise, p=counts / counts.sum())
    barrel = table["is_barrel"][layer]
    phi = rng.uniform(-np.pi, np.pi, n_noise)
    r_lo, r_hi = table["r_min"][layer], table["r_max"][layer]
    r_disk = np.sqrt(rng.uniform(r_lo**2, r_hi**2))
    r = np.where(barrel, table["radius"][layer], r_disk)
    half = table["half_length"][layer]
    z = np.where(barrel, rng.uniform(-1.0, 1.0, n_noise) * half, table["z"][layer])
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1), layer


def _as_trackml(columns: dict[str, np.ndarray], part: str) -> dict[str, np.ndarray]:
    return {name: np.asarray(columns[name]).astype(dt) for name, dt in DTYPES[part].items()}


def _cells(rng, table, layer, true_pos, true_mom, u, v, is_noise) -> dict[str, np.ndarray]:
    """Cells of all hits, grouped by hit: a cluster per true hit (`digitize.cluster_cells`), one cell
    with a small random charge per noise hit. Returns hit (row index), ch0, ch1, value."""
    cells = digitize.cluster_cells(table, layer, true_pos, true_mom, u, v, rng)
    keep = ~is_noise[cells["hit"]]
    noise = np.flatnonzero(is_noise)
    nl = layer[noise]
    extra = dict(
        hit=noise,
        ch0=np.floor(u[noise] / table["pitch_u"][nl]).astype(np.int64),
        ch1=np.floor(v[noise] / table["pitch_v"][nl]).astype(np.int64),
        value=rng.uniform(0.1, 1.0, len(noise)) * digitize.MIP_MPV_MEV_PER_MM * table["thickness"][nl],
    )
    merged = {k: np.concatenate([cells[k][keep], extra[k]]) for k in cells}
    order = np.argsort(merged["hit"], kind="stable")
    return {k: c[order] for k, c in merged.items()}


def simulate_event(
    rng_or_seed: np.random.Generator | int,
    pileup: float = 200,
    noise_fraction: float = 0.1,
    *,
    detector: Detector = GENERIC_DETECTOR,
    particles_per_vertex: float = 50.0,
    pt_min: float = 0.1,
    eta_max: float = 4.0,
    max_turns: float = 1.0,
    multiple_scattering: bool = True,
) -> dict[str, dict[str, np.ndarray]]:
    """One event: {"hits", "cells", "particles", "truth"}, each a {column: [n_rows] array} in TrackML dtypes.

    noise_fraction: the share of noise hits among all hits. max_turns: how far a low-pT particle may
    loop (1.0 = one full circle). Hits are ordered by volume, layer and module (random inside a
    module); hit_id = 1..N in that order.
    """
    if not 0.0 <= noise_fraction < 1.0:
        raise ValueError(f"noise_fraction must be in [0, 1), got {noise_fraction}")
    rng = rng_or_seed if isinstance(rng_or_seed, np.random.Generator) else np.random.default_rng(rng_or_seed)
    table = digitize.layer_table(detector)
    n_layers = len(detector.layers)

    particles = generate_particles(rng, pileup, particles_per_vertex, pt_min, eta_max)
    vertex = np.stack([particles["vx"], particles["vy"], particles["vz"]], axis=1)
    momentum = np.stack([particles["px"], particles["py"], particles["pz"]], axis=1)
    cross = propagate(
        detector,
        vertex,
        momentum,
        particles["q"],
        particles["mass"],
        rng,
        max_turns=max_turns,
        multiple_scattering=multiple_scattering,
    )

    n_true = len(cross.layer)
    n_noise = int(round(noise_fraction / (1.0 - noise_fraction) * n_true))
    noise_pos, noise_layer = _noise(rng, table, n_noise, cross.layer, n_layers)
    layer = np.concatenate([cross.layer, noise_layer])
    true_pos = np.concatenate([cross.position, noise_pos])
    true_mom = np.concatenate([cross.momentum, np.zeros((n_noise, 3))])
    pid = np.concatenate([particles["particle_id"][cross.particle], np.zeros(n_noise, np.int64)])
    is_noise = np.arange(len(layer)) >= n_true

    meas = np.where(is_noise[:, None], true_pos, digitize.smear(table, layer, true_pos, rng))
    module, u, v = digitize.module_coordinates(table, layer, meas)
    volume_id, layer_id = table["volume_id"][layer], table["layer_id"][layer]

    # Hit order: by volume, layer, module, then random, so the order tells nothing about particles.
    order = np.lexsort((rng.random(len(layer)), module, layer_id, volume_id))
    layer, meas, true_pos, true_mom, pid, is_noise = (
        a[order] for a in (layer, meas, true_pos, true_mom, pid, is_noise)
    )
    module, u, v, volume_id, layer_id = (a[order] for a in (module, u, v, volume_id, layer_id))
    hit_id = np.arange(1, len(layer) + 1)

    cells = _cells(rng, table, layer, true_pos, true_mom, u, v, is_noise)
    cells["hit_id"] = hit_id[cells.pop("hit")]

    particles["nhits"] = np.bincount(
        np.searchsorted(particles["particle_id"], pid[~is_noise]), minlength=len(particles["particle_id"])
    )
    hits = dict(
        hit_id=hit_id,
        x=meas[:, 0],
        y=meas[:, 1],
        z=meas[:, 2],
        volume_id=volume_id,
        layer_id=layer_id,
        module_id=module,
    )
    truth = dict(
        hit_id=hit_id,
        particle_id=pid,
        tx=true_pos[:, 0],
        ty=true_pos[:, 1],
        tz=true_pos[:, 2],
        tpx=true_mom[:, 0],
        tpy=true_mom[:, 1],
        tpz=true_mom[:, 2],
        weight=np.zeros(len(hit_id)),
    )
    event = {
        "hits": _as_trackml(hits, "hits"),
        "cells": _as_trackml(cells, "cells"),
        "particles": _as_trackml(particles, "particles"),
        "truth": _as_trackml(truth, "truth"),
    }
    # Weights from the stored (float32) values, so that they agree with weights recomputed from files.
    event["truth"]["weight"] = hit_weights(event["truth"], event["particles"]).astype(np.float32)
    return event


def _write_csv(columns: dict[str, np.ndarray], path: Path) -> None:
    """A CSV with a plain `a,b,c` header like the TrackML files (Arrow would quote the names).

    `.gz` files use gzip level 6 (Arrow's own gzip stream is several times slower) and no time stamp,
    so that the same event gives the same bytes.
    """
    table = pa.table({name: pa.array(col) for name, col in columns.items()})
    sink = pa.BufferOutputStream()
    sink.write((",".join(columns) + "\n").encode())
    pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False))
    data = sink.getvalue()
    with open(path, "wb") as f:
        if path.name.endswith(".gz"):
            with gzip.GzipFile(filename="", mode="wb", fileobj=f, compresslevel=6, mtime=0) as gz:
                gz.write(data)
        else:
            f.write(data)


def write_event(
    event: dict[str, dict[str, np.ndarray]], folder: str | os.PathLike, event_id: int, compress: bool = False
) -> Path:
    """Write `event{event_id:09d}-{hits,cells,particles,truth}.csv` (or `.csv.gz`); returns the prefix.

    Each file is written under a temporary name and renamed, so a killed run leaves no half file.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    prefix = folder / f"event{event_id:09d}"
    suffix = ".csv.gz" if compress else ".csv"
    for part in PARTS:
        if part not in event:
            continue
        path = Path(f"{prefix}-{part}{suffix}")
        tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
        _write_csv(_as_trackml(event[part], part), tmp)
        os.replace(tmp, path)
    return prefix


def simulate_dataset(
    folder: str | os.PathLike,
    n_events: int,
    seed: int = 0,
    pileup: float = 200,
    first_event_id: int = 1000,
    compress: bool = False,
    **kwargs,
) -> list[Path]:
    """Simulate events first_event_id ... first_event_id + n_events - 1 into `folder`.

    Events whose four files already exist are skipped. Event i uses the seed (seed, i), so an event's
    content does not depend on which others were made before. kwargs go to `simulate_event`.
    Returns the prefixes of all n_events events.
    """
    prefixes = []
    for event_id in range(first_event_id, first_event_id + n_events):
        prefix = Path(folder) / f"event{event_id:09d}"
        prefixes.append(prefix)
        if all(find_file(prefix, part) is not None for part in PARTS):
            continue
        rng = np.random.default_rng([seed, event_id])
        write_event(simulate_event(rng, pileup, **kwargs), folder, event_id, compress=compress)
    return prefixes
