"""Simulated ALICE Run 3 Pb-Pb tracks in the seed data set's 21-column format.

The measured quantities (dE/dx, time of flight) are drawn from a *true* detector
response that is deliberately not the nominal one of `jaxhep.pid.sim.response`, while
every derived column (`tpc_nsigma_*`, `tof_nsigma_*`, `tof_beta`, `bayes_prob_*`) is
computed from the nominal response exactly as O2 would. If the truth were the Gaussian
the Bayesian PID assumes, with its global priors equal to the true mix at every momentum,
Bayes would be optimal and no classifier could beat it; real PID is imperfect because of:

  * priors: Bayes uses the global abundances, but the species mix changes with pT
    (species-dependent Levy-Tsallis spectra, harder for heavier species);
  * TPC: a residual eta-dependent gain (calibration drift), eta-dependent resolution,
    a per-track resolution that varies with the number of clusters (a scale mixture of
    Gaussians, i.e. non-Gaussian tails) and a high-side tail from merged clusters;
  * TOF: a Run 3 core resolution (76 ps) below the nominal 80 ps, a late-time tail, and
    mismatches (a hit of another track) that pidBayes does not model;
  * DCA: secondaries (weak decays, conversions) and the mass-dependent multiple-scattering
    term make the DCAs species-dependent; Bayes ignores them.

`SimConfig.ideal()` switches the response imperfections off (truth = nominal), for tests.
Sizes and sources of each effect are on the `SimConfig` fields and in BUILD_NOTES.md.
Everything is vectorised: 1 M tracks take a few seconds.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from jaxhep.pid.bayes import DEFAULT_PRIORS, bayes_posterior
from jaxhep.pid.sim import response
from jaxhep.pid.species import FEATURES, LABEL, MASSES_GEV, N_SPECIES, PDG_CODES, SPECIES

Knots = tuple[tuple[float, float], ...]


@dataclasses.dataclass(frozen=True)
class SimConfig:
    """Every knob of the simulation; per-species tuples are in SPECIES order (pi, K, p, e)."""

    # --- event content -------------------------------------------------------------------
    abundances: tuple[float, ...] = DEFAULT_PRIORS  # seed 001_*.txt: pi 69 %, K 5 %, p 14 %, e 12 %
    pt_range: tuple[float, float] = (0.1, 10.0)  # GeV/c, seed
    eta_max: float = 0.9  # TPC acceptance
    # Levy-Tsallis dN/dpT ~ pT (1 + (mT - m)/(n T))^-n. T is tuned so that the untruncated <pT>
    # matches ALICE 0-5 % Pb-Pb at 5.02 TeV (PRC 101 (2020) 044907): pi 0.568, K 0.925, p 1.42
    # GeV/c; electrons (conversions, Dalitz) are assumed softer than pions, <pT> = 0.45 GeV/c.
    tsallis_t: tuple[float, ...] = (0.1684, 0.2953, 0.4783, 0.1286)
    tsallis_n: tuple[float, ...] = (7.0, 9.0, 12.0, 7.0)

    # --- availability ----------------------------------------------------------------------
    tpc_efficiency: float = 0.896  # seed: TPC present for 89.6 % of tracks (the rest: ITS-only)
    # P(has_tof | pT), linear between knots, for all tracks (TOF needs a TPC track, so the
    # efficiency among TPC tracks is this / tpc_efficiency). Tuned to the seed: ~40 % overall,
    # 8.5 % for 0.7 < pT < 1.5 GeV/c. Tracks with pT < ~0.28 GeV/c curl up before the TOF.
    tof_efficiency: Knots = (
        (0.28, 0.0),
        (0.30, 0.79),
        (0.66, 0.79),
        (0.70, 0.085),
        (1.5, 0.085),
        (1.6, 0.79),
        (10.0, 0.79),
    )
    bayes_missing: float = 0.03  # seed: Bayes probabilities missing for ~3 %
    dca_missing: float = 0.01  # seed: kinematics missing ~1 % (here: failed DCA fits; pT, eta, phi kept)

    # --- TPC truth --------------------------------------------------------------------------
    # Residual gain g(eta) = 1 + a (2|eta|/eta_max - 1): -a at eta = 0, +a at the edge, mean 1.
    # The raw dE/dx varies by several % over the acceptance and O2 corrects it with calibration
    # maps; we assume a +-2.5 % residual that the nominal response does not know.
    tpc_eta_gain: float = 0.025
    # Relative resolution 7 % x (1 + s (1 - 2|eta|/eta_max)): longer pad-row tracklets at large
    # |eta| improve it. s = 0.1 gives 7.7 % at eta = 0 and 6.3 % at the edge (assumed).
    tpc_sigma_eta_slope: float = 0.1
    # Per-track resolution ~ sqrt(135 / n_clusters), n_clusters = 159 - Gamma(2, 12) clipped to
    # [70, 159] (159 pad rows; a truncated mean over N_cl samples has sigma ~ 1/sqrt(N_cl)).
    tpc_ncl_spread: bool = True
    # Fraction of tracks with merged clusters in central Pb-Pb (assumed), shifted up by
    # Exp(1.5 sigma); cluster overlap is why the Pb-Pb resolution (6.5 %) is worse than pp
    # (5.2 %), IJMPA 29 (2014) 1430044.
    tpc_tail_fraction: float = 0.04
    tpc_tail_scale: float = 1.5  # in units of the track's sigma

    # --- TOF truth --------------------------------------------------------------------------
    tof_sigma_ps: float = 76.0  # Run 3 Pb-Pb measured 73-78 ps (DATA.md §2); nominal stays 80 ps
    tof_tail_fraction: float = 0.15  # late hits: + Exp(tof_tail_scale sigma) (assumed)
    tof_tail_scale: float = 1.0
    # Mismatch probability f (1 + 0.29 / pT^2), capped at 0.5: pT shape of the mismatch term of
    # AliPIDCombined / pidBayes (commented out in O2); the level, a few % at high pT in central
    # Pb-Pb, is assumed.
    tof_mismatch: float = 0.04

    # --- DCA (cm) ---------------------------------------------------------------------------
    # Primaries: sigma = a (+) b / (pT beta) (resolution (+) multiple scattering, ITS2-like).
    dca_xy_res: tuple[float, float] = (20e-4, 35e-4)
    dca_z_res: tuple[float, float] = (25e-4, 40e-4)
    # Fraction of secondaries per species: pions from K0s/Lambda, (almost no) kaons, protons from
    # Lambda feed-down and material, electrons from photon conversions (assumed sizes).
    secondary_fraction: tuple[float, ...] = (0.08, 0.01, 0.25, 0.60)
    # Secondaries: |DCA| ~ Exp(scale) truncated to the loose track selection |xy| < 2.4, |z| < 3.2.
    secondary_dca_scale: tuple[float, float] = (0.15, 0.25)
    dca_max: tuple[float, float] = (2.4, 3.2)

    @classmethod
    def ideal(cls, **changes) -> SimConfig:
        """A configuration whose true response equals the nominal one (Gaussian, no tails,
        no drift, no mismatch); for tests of the simulator against the formulas."""
        base = dict(
            tpc_eta_gain=0.0,
            tpc_sigma_eta_slope=0.0,
            tpc_ncl_spread=False,
            tpc_tail_fraction=0.0,
            tof_sigma_ps=response.TOF_SIGMA_PS,
            tof_tail_fraction=0.0,
            tof_mismatch=0.0,
        )
        base.update(changes)
        return cls(**base)


def _sample_pt(rng: np.random.Generator, species: np.ndarray, config: SimConfig) -> np.ndarray:
    """pT [N] from the truncated Levy-Tsallis spectrum of each track's species (inverse CDF)."""
    lo, hi = config.pt_range
    grid = np.geomspace(lo, hi, 20_000)
    u = rng.random(species.shape)
    pt = np.empty(species.shape)
    for s in range(N_SPECIES):
        m, t, n = MASSES_GEV[s], config.tsallis_t[s], config.tsallis_n[s]
        density = grid * (1.0 + (np.sqrt(grid * grid + m * m) - m) / (n * t)) ** (-n)
        cdf = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(grid))])
        sel = species == s
        pt[sel] = np.interp(u[sel] * cdf[-1], cdf, grid)
    return pt


def _truncated_exp(rng: np.random.Generator, scale: float, limit: float, size: int) -> np.ndarray:
    """Signed |x| ~ Exp(scale) truncated to |x| < limit, [size]."""
    u = rng.random(size)
    magnitude = -scale * np.log1p(-u * (1.0 - np.exp(-limit / scale)))
    return np.where(rng.random(size) < 0.5, -magnitude, magnitude)


def _simulate_dca(rng, species, pt, beta, config: SimConfig) -> tuple[np.ndarray, np.ndarray]:
    """dca_xy, dca_z [N] in cm: narrow Gaussian primaries, broad secondaries."""
    n = species.size
    secondary = rng.random(n) < np.asarray(config.secondary_fraction)[species]
    out = []
    for (a, b), scale, limit in zip(
        (config.dca_xy_res, config.dca_z_res), config.secondary_dca_scale, config.dca_max
    ):
        sigma = np.hypot(a, b / (pt * beta))
        dca = rng.normal(0.0, 1.0, n) * sigma
        dca = np.where(secondary, _truncated_exp(rng, scale, limit, n) + dca, dca)
        out.append(np.clip(dca, -limit, limit))
    return out[0], out[1]


def _simulate_tpc(rng, species, p, eta, config: SimConfig) -> np.ndarray:
    """True dE/dx [N]: nominal expectation x eta gain x (1 + sigma_track z) + merged-cluster tail."""
    n = species.size
    expected = response.tpc_expected_signal(p)[np.arange(n), species]
    edge = 2.0 * np.abs(eta) / config.eta_max - 1.0  # -1 at eta = 0, +1 at |eta| = eta_max
    gain = 1.0 + config.tpc_eta_gain * edge
    rel_sigma = response.TPC_RELATIVE_SIGMA * (1.0 - config.tpc_sigma_eta_slope * edge)
    if config.tpc_ncl_spread:
        ncl = np.clip(159.0 - rng.gamma(2.0, 12.0, n), 70.0, 159.0)
        rel_sigma = rel_sigma * np.sqrt(135.0 / ncl)
    z = rng.normal(0.0, 1.0, n)
    tail = rng.random(n) < config.tpc_tail_fraction
    z = z + np.where(tail, rng.exponential(config.tpc_tail_scale, n), 0.0)
    return expected * gain * (1.0 + rel_sigma * z)


def _simulate_tof_time(rng, species, p, pt, length, config: SimConfig) -> np.ndarray:
    """Measured time of flight [N] in ps (event time subtracted); NaN where length is NaN."""
    n = species.size
    rows = np.arange(n)
    t_exp = response.tof_expected_time(p, length)[rows, species]
    # The momentum term of the nominal sigma is physical (momentum uncertainty), so it stays;
    # only the detector part is replaced by the measured Run 3 resolution.
    nominal = response.tof_expected_sigma(p, length)[rows, species]
    sigma = np.sqrt(np.maximum(nominal**2 - response.TOF_SIGMA_PS**2, 0.0) + config.tof_sigma_ps**2)
    time = t_exp + sigma * rng.normal(0.0, 1.0, n)
    tail = rng.random(n) < config.tof_tail_fraction
    time += np.where(tail, rng.exponential(config.tof_tail_scale, n) * sigma, 0.0)
    # Mismatch: the hit of another (random) track, so its time is that track's beta over our path.
    p_mismatch = np.minimum(config.tof_mismatch * (1.0 + 0.29 / pt**2), 0.5)
    mismatch = rng.random(n) < p_mismatch
    other_beta = response.beta_of(p, np.asarray(MASSES_GEV)[species])[rng.permutation(n)]
    other_time = length / (response.C_CM_PER_PS * other_beta) + config.tof_sigma_ps * rng.normal(0.0, 1.0, n)
    return np.where(mismatch, other_time, time)


def simulate_tracks(n: int, seed: int, config: SimConfig = SimConfig()) -> dict[str, np.ndarray]:
    """Simulate `n` tracks; deterministic for a seed.

    Returns:
      dict of the 21 FEATURES, each float32 [n] (NaN = not measured; has_tpc/has_tof 0/1),
      and LABEL "mc_pdg", int64 [n] (211, 321, 2212, 11 with a random sign).
    """
    rng = np.random.default_rng(seed)
    abundances = np.asarray(config.abundances, dtype=np.float64)
    species = rng.choice(N_SPECIES, size=n, p=abundances / abundances.sum())
    pt = _sample_pt(rng, species, config)
    eta = rng.uniform(-config.eta_max, config.eta_max, n)
    phi = rng.uniform(0.0, 2.0 * np.pi, n)
    p = response.momentum(pt, eta)
    beta = response.beta_of(p, np.asarray(MASSES_GEV)[species])
    dca_xy, dca_z = _simulate_dca(rng, species, pt, beta, config)

    has_tpc = rng.random(n) < config.tpc_efficiency
    tpc_signal = np.where(has_tpc, _simulate_tpc(rng, species, p, eta, config), np.nan)

    length = response.track_length_cm(pt, eta)
    knots = np.asarray(config.tof_efficiency)
    p_tof = np.interp(pt, knots[:, 0], knots[:, 1], left=0.0) / config.tpc_efficiency
    has_tof = has_tpc & np.isfinite(length) & (rng.random(n) < p_tof)
    time = np.where(has_tof, _simulate_tof_time(rng, species, p, pt, length, config), np.nan)

    tpc_ns = response.tpc_nsigma(tpc_signal, p)
    tof_ns = response.tof_nsigma(time, p, length)
    bayes = bayes_posterior(
        tpc_ns, tof_ns, has_tpc, has_tof, DEFAULT_PRIORS, tof_sigma=response.tof_expected_sigma(p, length)
    )
    bayes[rng.random(n) < config.bayes_missing] = np.nan
    no_dca = rng.random(n) < config.dca_missing
    dca_xy[no_dca] = np.nan
    dca_z[no_dca] = np.nan
    sign = np.where(rng.random(n) < 0.5, -1, 1)

    columns = dict(pt=pt, eta=eta, phi=phi, tpc_signal=tpc_signal)
    columns.update({f"tpc_nsigma_{s}": tpc_ns[:, i] for i, s in enumerate(SPECIES)})
    columns["tof_beta"] = response.tof_beta(time, length)
    columns.update({f"tof_nsigma_{s}": tof_ns[:, i] for i, s in enumerate(SPECIES)})
    columns.update({f"bayes_prob_{s}": bayes[:, i] for i, s in enumerate(SPECIES)})
    columns.update(dca_xy=dca_xy, dca_z=dca_z, has_tpc=has_tpc, has_tof=has_tof)
    out = {name: np.asarray(columns[name], dtype=np.float32) for name in FEATURES}
    out[LABEL] = np.asarray(PDG_CODES, dtype=np.int64)[species] * sign
    return out


def write_table(columns: dict[str, np.ndarray], path: str | os.PathLike) -> Path:
    """Write equal-length columns to .parquet, .csv or .csv.gz (chosen by the suffix)."""
    path = Path(path)
    table = pa.table({name: np.asarray(values) for name, values in columns.items()})
    name = path.name.lower()
    if name.endswith(".parquet"):
        pq.write_table(table, path)
    elif name.endswith(".csv.gz"):
        with pa.CompressedOutputStream(str(path), "gzip") as stream:
            pacsv.write_csv(table, stream)
    elif name.endswith(".csv"):
        pacsv.write_csv(table, path)
    else:
        raise ValueError(f"{path}: unsupported table format (use .parquet, .csv or .csv.gz)")
    return path


def default_sample(data_dir: str | os.PathLike, n: int = 1_000_000, seed: int = 231) -> Path:
    """Path of the cached default sample data_dir/pid/alice_pbpb_run3_sim_n{n}_seed{seed}.parquet.

    Simulated and written on first use (to a temporary name, then renamed atomically, so a
    concurrent or interrupted writer never leaves a partial file under the final name).
    """
    path = Path(data_dir) / "pid" / f"alice_pbpb_run3_sim_n{n}_seed{seed}.parquet"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex}.tmp.parquet")
    try:
        write_table(simulate_tracks(n, seed), tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
