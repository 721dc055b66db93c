"""The TrackML hit weights and event score, vectorised, with trackml-library's exact semantics.

Reference: `trackml/weights.py` (weight_hits_phase1) and `trackml/score.py` (score_event) of
https://github.com/LAL/trackml-library (v3). Checked against it to 1e-9 on simulated events
(BUILD_NOTES.md, "TrackML score cross-check").

Weights. Each hit of a particle gets w_pt(pT) * w_order(ihit, nhits), normalised to sum 1 over the event:
- w_pt interpolates (0.05, 0.2), (0.5, 0.2), (3, 1.0) GeV; 0 below 0.05 GeV, 1.0 above 3 GeV;
- ihit is the rank of the hit along the particle by |tz - vz| (pandas' average rank for ties, minus 1,
  truncated); nhits is the particle's `nhits` column of the particles table, not a count of truth rows;
- w_order interpolates [10, 8, 6, 5, 3, 3, 3, 5, 6] over the nhits hits, normalised per track; it is 0
  for nhits < 4 and for ihit >= 20, and a track longer than 20 hits uses the 20-hit row;
- hits of particles absent from the particles table (noise, particle_id 0) get 0.

Score. A reconstructed track counts when its majority particle (most hits; the smallest particle_id
among equals) owns more than half of the track's hits and the track holds more than half of that
particle's hits (counted in the truth table, noise included as particle 0). The event score is the
weight of those majority hits over the total weight. A truth hit missing from the submission is a
one-hit track of its own, as in the library (its NaN track id never equals the next one).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

ORDER_PROPOSAL = (10.0, 8.0, 6.0, 5.0, 3.0, 3.0, 3.0, 5.0, 6.0)
ORDER_MIN_HITS = 4
ORDER_MAX_HITS = 20
PT_INF_GEV, PT_SUP_GEV, PT_FLOOR_GEV = 0.5, 3.0, 0.05
W_PT_MIN, W_PT_MAX = 0.2, 1.0


def order_weight_matrix(
    proposal=ORDER_PROPOSAL, min_hits: int = ORDER_MIN_HITS, max_hits: int = ORDER_MAX_HITS
) -> np.ndarray:
    """[max_hits + 1, max_hits] table: row nhits holds the normalised weights of hits 0..nhits-1."""
    proposal = np.asarray(proposal, np.float64)
    table = np.zeros((max_hits + 1, max_hits))
    for nhits in range(min_hits, max_hits + 1):
        # The proposal's knots spread evenly over the nhits positions of the track.
        knots = np.arange(len(proposal)) * (nhits - 1) / (len(proposal) - 1)
        w = np.interp(np.arange(nhits), knots, proposal)
        table[nhits, :nhits] = w / w.sum()
    return table


ORDER_MATRIX = order_weight_matrix()


def pt_weight(pt: np.ndarray) -> np.ndarray:
    """w_pt of the TrackML score for pT in GeV: [n] -> [n]."""
    xp = [min(PT_FLOOR_GEV, PT_INF_GEV), PT_INF_GEV, PT_SUP_GEV]
    return np.interp(np.asarray(pt, np.float64), xp, [W_PT_MIN, W_PT_MIN, W_PT_MAX], left=0.0, right=W_PT_MAX)


def _lookup(keys: np.ndarray, table_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row of each key in table_keys (unique) and whether it was found: [n] -> ([n] int, [n] bool)."""
    if len(table_keys) == 0:
        return np.zeros(len(keys), np.int64), np.zeros(len(keys), bool)
    order = np.argsort(table_keys, kind="stable")
    sorted_keys = table_keys[order]
    pos = np.clip(np.searchsorted(sorted_keys, keys), 0, len(sorted_keys) - 1)
    return order[pos], sorted_keys[pos] == keys


def _group_rank(groups: np.ndarray, values: np.ndarray) -> np.ndarray:
    """pandas `groupby(groups)[values].rank() - 1` (average ranks for ties; NaN stays NaN): [n] -> [n]."""
    n = len(groups)
    nan = np.isnan(values)
    order = np.lexsort((values, nan, groups))  # NaNs last in each group; they take no rank
    g, val, isn = groups[order], values[order], nan[order]
    new_group = np.ones(n, bool)
    new_group[1:] = g[1:] != g[:-1]
    group_start = np.maximum.accumulate(np.where(new_group, np.arange(n), 0))
    pos = np.arange(n) - group_start
    # A run of equal values inside a group shares the mean of its positions.
    new_run = new_group.copy()
    new_run[1:] |= val[1:] != val[:-1]
    run_id = np.cumsum(new_run) - 1
    run_first = np.flatnonzero(new_run)
    run_last = np.append(run_first[1:], n) - 1
    rank = ((pos[run_first] + pos[run_last]) / 2.0)[run_id]
    out = np.empty(n)
    out[order] = np.where(isn, np.nan, rank)
    return out


def hit_weights(truth: Mapping[str, np.ndarray], particles: Mapping[str, np.ndarray]) -> np.ndarray:
    """TrackML phase-1 hit weights, [n_hits], in the order of `truth`; they sum to 1 (all 0 if none count).

    truth needs particle_id and tz; particles needs particle_id, vz, px, py and nhits.
    Raises ValueError for duplicate particle ids or a hit index beyond a particle's `nhits`
    (the library raises there too).
    """
    pid = np.asarray(truth["particle_id"]).astype(np.int64)
    ppid = np.asarray(particles["particle_id"]).astype(np.int64)
    if _has_duplicates(ppid):
        raise ValueError("particles: particle_id is not unique")
    if len(ppid) == 0:  # no particles: every hit is noise
        return np.zeros(len(pid))
    row, found = _lookup(pid, ppid)
    w_pt = np.where(found, pt_weight(np.hypot(particles["px"], particles["py"]))[row], 0.0)
    nhits = np.where(found, np.asarray(particles["nhits"]).astype(np.int64)[row], 0)
    # Same arithmetic (and dtype) as the library's `abs(tz - particle_vz)`.
    abs_dvz = np.where(found, np.abs(np.asarray(truth["tz"]) - np.asarray(particles["vz"])[row]), np.nan)
    rank = _group_rank(pid, abs_dvz)
    ihit = np.where(np.isnan(rank), 0, rank).astype(np.int64)

    counted = nhits >= ORDER_MIN_HITS
    n_row = np.clip(nhits, 0, ORDER_MAX_HITS)
    bad = counted & (ihit < ORDER_MAX_HITS) & (n_row <= ihit)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"particle {pid[i]}: hit index {ihit[i]} is not below its nhits = {nhits[i]}")
    use = counted & (ihit < ORDER_MAX_HITS)
    w_order = np.where(use, ORDER_MATRIX[n_row, np.minimum(ihit, ORDER_MAX_HITS - 1)], 0.0)
    w = w_pt * w_order
    total = w.sum()
    return w / total if total > 0 else w


def _dense_ids(values: np.ndarray) -> np.ndarray:
    """0..k-1 labels that keep the order of the k distinct values: [n] -> [n] int64."""
    order = np.argsort(values, kind="stable")
    v = values[order]
    new = np.ones(len(v), bool)
    new[1:] = v[1:] != v[:-1]
    out = np.empty(len(v), np.int64)
    out[order] = np.cumsum(new) - 1
    return out


def _has_duplicates(values: np.ndarray) -> bool:
    v = np.sort(values)
    return bool(np.any(v[1:] == v[:-1]))


def trackml_score(truth_hit_ids, truth_particle_ids, truth_weights, sub_hit_ids, sub_track_ids) -> float:
    """The TrackML event score of a submission: a float in [0, 1].

    truth_*: [n_hits] arrays of one event; sub_*: [n_sub] the submission's hit -> track assignment.
    Submission hits absent from the truth are ignored. Raises ValueError for duplicate hit ids and for
    a zero total weight.
    """
    t_hit = np.asarray(truth_hit_ids).astype(np.int64)
    t_pid = np.asarray(truth_particle_ids).astype(np.int64)
    t_w = np.asarray(truth_weights, np.float64)
    s_hit = np.asarray(sub_hit_ids).astype(np.int64)
    s_trk = np.asarray(sub_track_ids)
    if _has_duplicates(t_hit):
        raise ValueError("truth: hit_id is not unique")
    if _has_duplicates(s_hit):
        raise ValueError("submission: hit_id is not unique (each hit belongs to one track)")
    total = t_w.sum()
    if not total > 0:
        raise ValueError("truth: the weights sum to zero")

    row, found = _lookup(t_hit, s_hit)
    track = np.full(len(t_hit), -1, np.int64)
    if found.any():
        track[found] = _dense_ids(s_trk[row[found]])
    n_found = track.max() + 1 if found.any() else 0
    track[~found] = n_found + np.arange((~found).sum())  # unassigned hits: one-hit tracks

    particle = _dense_ids(t_pid)
    particle_nhits = np.bincount(particle)

    # (track, particle) pairs: hit counts and weights.
    order = np.lexsort((particle, track))
    trk, par, w = track[order], particle[order], t_w[order]
    new_pair = np.ones(len(trk), bool)
    new_pair[1:] = (trk[1:] != trk[:-1]) | (par[1:] != par[:-1])
    start = np.flatnonzero(new_pair)
    pair_trk, pair_par = trk[start], par[start]
    pair_n = np.diff(np.append(start, len(trk)))
    pair_w = np.add.reduceat(w, start)
    track_n = np.bincount(pair_trk, weights=pair_n).astype(np.int64)

    # Majority particle: most hits, then smallest particle id (pairs are sorted by particle id).
    best = np.lexsort((pair_par, -pair_n, pair_trk))
    first = np.ones(len(best), bool)
    first[1:] = pair_trk[best][1:] != pair_trk[best][:-1]
    major = best[first]
    maj_n = pair_n[major]
    good = (2 * maj_n > track_n[pair_trk[major]]) & (2 * maj_n > particle_nhits[pair_par[major]])
    return float(np.sum(pair_w[major][good] / total))


def hit_particle_pt(truth_particle_ids, particles: Mapping[str, np.ndarray]) -> np.ndarray:
    """pT (GeV) of the particle behind each truth hit, 0 for noise and unknown particles: [n_hits]."""
    pid = np.asarray(truth_particle_ids).astype(np.int64)
    ppid = np.asarray(particles["particle_id"]).astype(np.int64)
    if len(ppid) == 0:
        return np.zeros(len(pid))
    row, found = _lookup(pid, ppid)
    return np.where(found, np.hypot(particles["px"], particles["py"])[row], 0.0)


def trackml_score_above_pt(
    truth_hit_ids,
    truth_particle_ids,
    truth_weights,
    sub_hit_ids,
    sub_track_ids,
    hit_pt,
    pt_min: float,
    pt_max: float = np.inf,
) -> float:
    """The TrackML score counting only particles with pt_min <= pT < pt_max (GeV).

    hit_pt: [n_hits] the pT of each truth hit's particle (see `hit_particle_pt`). The weights of the
    other hits are set to 0 and the rest renormalised; the matching rules are unchanged (a track still
    needs > 50 % of its hits, low-pT ones included, from its majority particle). NaN when no hit of
    the band carries weight.
    """
    pt = np.asarray(hit_pt)
    w = np.where((pt >= pt_min) & (pt < pt_max), np.asarray(truth_weights, np.float64), 0.0)
    if not w.sum() > 0:
        return float("nan")
    return trackml_score(truth_hit_ids, truth_particle_ids, w, sub_hit_ids, sub_track_ids)


def score_by_pt(
    truth_hit_ids, truth_particle_ids, truth_weights, sub_hit_ids, sub_track_ids, hit_pt, bands
) -> dict[str, list[float]]:
    """Where an event's score comes from: for each pT band [lo, hi) of `bands` (edges [K+1], GeV),
    the share of the event's weight its particles carry and the score within the band
    (`trackml_score_above_pt`); sum over bands of share x score = the event's score."""
    pt, w = np.asarray(hit_pt), np.asarray(truth_weights, np.float64)
    args = (truth_hit_ids, truth_particle_ids, truth_weights, sub_hit_ids, sub_track_ids, hit_pt)
    share, score = [], []
    for lo, hi in zip(bands[:-1], bands[1:]):
        share.append(float(w[(pt >= lo) & (pt < hi)].sum() / w.sum()))
        score.append(trackml_score_above_pt(*args, lo, hi))
    return {"share": share, "score": score}
