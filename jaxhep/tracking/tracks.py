"""From scored edges to tracks: track building, Kaggle submission files and tracking metrics.

Input contract, per event: `senders`, `receivers` [E] hit indices 0..N-1 (edges point inner -> outer),
`scores` [E] edge probabilities, and a threshold; an edge is kept when `score >= threshold` (the
convention of `jaxhep.metrics.binary_metrics`; NaN scores are never kept). Self-loops are ignored.

Two ways to build tracks (no Python loop over hits or edges):
- "components": connected components of the kept edges (Exa.TrkX's baseline; SciPy's csgraph). One
  fake edge above threshold merges two tracks.
- "walk": every hit keeps at most one outgoing and one incoming edge, chosen greedily by score, so a
  branching keeps its best continuation and tracks become simple chains (see `walk_edges`).

Metrics use the TrackML double majority: a particle is found when one track holds more than half of
its hits and more than half of that track's hits are the particle's.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterable
from contextlib import nullcontext
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from scipy.sparse import coo_array, csgraph
from scipy.spatial import cKDTree

METHODS = ("components", "walk")
SUBMISSION_COLUMNS = ("event_id", "hit_id", "track_id")


# --------------------------------------------------------------------------- track building
def _edges(n_nodes: int, senders, receivers) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(senders).astype(np.int64, copy=False).ravel()
    r = np.asarray(receivers).astype(np.int64, copy=False).ravel()
    if s.shape != r.shape:
        raise ValueError(f"senders {s.shape} and receivers {r.shape} differ in length")
    for name, a in (("senders", s), ("receivers", r)):
        if len(a) and (a.min() < 0 or a.max() >= n_nodes):
            raise ValueError(f"{name} must index hits 0..{n_nodes - 1}, got {a.min()}..{a.max()}")
    return s, r


def connected_components(n_nodes: int, senders, receivers, keep_mask=None) -> np.ndarray:
    """Component label of each hit: [N] int64 in 0..K-1, numbered by each component's smallest hit.

    senders, receivers: [E] hit indices; keep_mask: [E] bool, the edges to use (all if None). Edge
    direction is ignored; an isolated hit is a component of its own. SciPy's csgraph finds the
    components (a search started from each unvisited hit in order, so already numbered by smallest
    hit; `_by_smallest_member` makes sure, as scipy does not document it).
    """
    s, r = _edges(n_nodes, senders, receivers)
    if keep_mask is not None:
        keep = np.asarray(keep_mask, bool).ravel()
        if keep.shape != s.shape:
            raise ValueError(f"keep_mask {keep.shape} does not match the {len(s)} edges")
        s, r = s[keep], r[keep]
    adjacency = coo_array((np.ones(len(s), np.int8), (s, r)), shape=(n_nodes, n_nodes)).tocsr()
    _, labels = csgraph.connected_components(adjacency, directed=False)
    return _by_smallest_member(labels)


def _by_smallest_member(labels: np.ndarray) -> np.ndarray:
    """Labels [N] renumbered 0..K-1 in order of each one's smallest index: [N] int64."""
    labels = labels.astype(np.int64)
    # Numbered by first appearance iff the running maximum starts at 0 and never steps by more
    # than 1: an O(N) check instead of the sort below (~30 ms for 100 k hits).
    running = np.maximum.accumulate(labels)
    if not len(labels) or (running[0] == 0 and np.all(np.diff(running) <= 1)):
        return labels
    smallest = np.unique(labels, return_index=True)[1]  # [K], per label
    rank = np.empty(len(smallest), np.int64)
    rank[np.argsort(smallest)] = np.arange(len(smallest))
    return rank[np.unique(labels, return_inverse=True)[1].ravel()]


def _best_edge(node: np.ndarray, score: np.ndarray, edge: np.ndarray, n_nodes: int) -> np.ndarray:
    """Per node, the id of its best edge (highest score, then lowest id), -1 if none: [N] int64.

    node, score, edge: [e] the node each candidate edge belongs to, its score and its id.
    """
    best = np.full(n_nodes, -np.inf)
    np.maximum.at(best, node, score)
    tie = score == best[node]
    winner = np.full(n_nodes, np.iinfo(np.int64).max)
    np.minimum.at(winner, node[tie], edge[tie])
    return np.where(winner == np.iinfo(np.int64).max, -1, winner)


def walk_edges(
    n_nodes: int, senders, receivers, scores, threshold: float, max_rounds: int | None = None
) -> np.ndarray:
    """The edges a walk through the graph follows: [E] bool.

    Rule: among the edges with score >= threshold, each hit keeps at most one outgoing and one
    incoming edge. Rounds of mutual best: an edge is taken when it is both its sender's best
    remaining outgoing edge and its receiver's best remaining incoming edge (highest score, ties to
    the lower edge index); then edges whose sender already continues, or whose receiver is already
    reached, drop out. This is the greedy one-in/one-out matching by decreasing score (the same
    result as taking edges one by one from the best down), so a hit with two continuations above
    threshold follows the better one and the other track is not merged into it.

    The globally best remaining edge is always mutual best, so every round takes at least one edge
    and the loop ends; 3-9 rounds on random graphs of 100 k hits and 1 M edges. max_rounds: a cap
    (None: until done); edges still undecided at the cap are left out.
    """
    s, r = _edges(n_nodes, senders, receivers)
    score = np.asarray(scores, np.float64).ravel()
    if score.shape != s.shape:
        raise ValueError(f"scores {score.shape} does not match the {len(s)} edges")
    chosen = np.zeros(len(s), bool)
    has_out = np.zeros(n_nodes, bool)
    has_in = np.zeros(n_nodes, bool)
    cand = np.flatnonzero((score >= threshold) & (s != r))
    rounds = 0
    while max_rounds is None or rounds < max_rounds:
        rounds += 1
        cand = cand[~has_out[s[cand]] & ~has_in[r[cand]]]
        if not len(cand):
            break
        cs, cr, cscore = s[cand], r[cand], score[cand]
        win = (_best_edge(cs, cscore, cand, n_nodes)[cs] == cand) & (
            _best_edge(cr, cscore, cand, n_nodes)[cr] == cand
        )
        taken = cand[win]
        chosen[taken] = True
        has_out[s[taken]] = True
        has_in[r[taken]] = True
    return chosen


def walk_tracks(
    n_nodes: int, senders, receivers, scores, threshold: float, max_rounds: int | None = None
) -> np.ndarray:
    """Track label of each hit after a walk (`walk_edges`): [N] int64 in 0..K-1.

    Each track is a chain of hits (or a single hit), since each hit keeps one edge in and one out.
    """
    keep = walk_edges(n_nodes, senders, receivers, scores, threshold, max_rounds)
    return connected_components(n_nodes, senders, receivers, keep)


def build_tracks(
    n_nodes: int,
    senders,
    receivers,
    scores,
    threshold: float = 0.5,
    method: str = "components",
    positions=None,
) -> np.ndarray:
    """track_id of each hit: [N] int64 in 1..K, every hit in exactly one track (singletons included).

    method: "components" (connected components of the edges with score >= threshold) or "walk"
    (`walk_edges`, which keeps tracks apart at a branching). positions: the hits' [N, 3] x, y, z (mm);
    when given, the two legs of each looper are joined (`merge_loopers`). Track ids follow each
    track's smallest hit index.
    """
    if method == "components":
        scores = np.asarray(scores).ravel()
        labels = connected_components(n_nodes, senders, receivers, scores >= threshold)
    elif method == "walk":
        labels = walk_tracks(n_nodes, senders, receivers, scores, threshold)
    else:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if positions is not None:
        labels = merge_loopers(labels, positions)
    return labels + 1


# --------------------------------------------------------------------------- loopers
# A particle below ~0.3 GeV curls back through the layers it crossed within its first turn (the circle
# of radius R = pT / 0.3 B reaches r = 2 R, inside the strip barrels). Edges point inner -> outer, so
# nothing joins its way out and its way back at the top of the turn: tracks come out as two chains with
# about half of its hits each, and neither passes the score's double majority. Both legs lie on one
# helix from the beam line: one circle through the origin, and z linear in the turning angle around
# its centre. LOOPER_MAX_RADIUS_MM: circles up to R = 600 mm (pT 0.36 GeV at 2 T) are looked at; two
# chains are joined when their circles' centres lie within LOOPER_CENTRE_MM and all their hits fit one
# z line within LOOPER_Z_RMS_MM (rms), one leg before the top of the turn and one after.
LOOPER_MAX_RADIUS_MM = 600.0
LOOPER_CENTRE_MM = 25.0
LOOPER_Z_RMS_MM = 10.0
LOOPER_MIN_HITS = 3
_TOP_SLACK_RAD = 0.3  # how far past the top of the turn a leg may seem to reach (fit and scattering)
_Z0_MAX_MM = 300.0  # the joined helix must start near the beam spot (|z0| < 200 mm, with slack)


def _circle_through_origin(labels: np.ndarray, x: np.ndarray, y: np.ndarray, k: int):
    """Least-squares circle through the origin of each label's points: centres (cx, cy) [k] each.

    x^2 + y^2 = 2 cx x + 2 cy y is linear in (cx, cy): a 2 x 2 normal equation per label from sums
    (NaN where the points are collinear with the origin)."""
    rho2 = x * x + y * y
    sxx, sxy, syy = (np.bincount(labels, w, k) for w in (x * x, x * y, y * y))
    bx, by = np.bincount(labels, x * rho2, k), np.bincount(labels, y * rho2, k)
    det = sxx * syy - sxy * sxy
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = np.abs(det) > 1e-9 * np.maximum(sxx * syy, 1e-30)
        cx = np.where(ok, (syy * bx - sxy * by) / (2.0 * det), np.nan)
        cy = np.where(ok, (sxx * by - sxy * bx) / (2.0 * det), np.nan)
    return cx, cy


def merge_loopers(
    labels,
    positions,
    max_radius: float = LOOPER_MAX_RADIUS_MM,
    centre_mm: float = LOOPER_CENTRE_MM,
    z_rms_mm: float = LOOPER_Z_RMS_MM,
    min_hits: int = LOOPER_MIN_HITS,
) -> np.ndarray:
    """Track labels [N] (0..K-1) with the two legs of each looper joined into one track, renumbered
    by smallest hit as `connected_components` numbers them: [N] int64.

    positions: [N, 3] x, y, z (mm). Chains of >= min_hits hits whose circle through the origin has
    radius <= max_radius are paired when their centres lie within centre_mm, their turning angles
    alpha around the centre (from the origin) put one before the top of the turn (alpha = pi) and
    the other after it, and z is one line in alpha for both (rms <= z_rms_mm) that starts near the
    beam line. Each chain joins at most one other, the best fitting first.
    """
    labels = np.asarray(labels).astype(np.int64).ravel()
    xyz = np.asarray(positions, np.float64)
    if xyz.shape != (len(labels), 3):
        raise ValueError(f"positions must be [N, 3] = ({len(labels)}, 3), got {xyz.shape}")
    if not len(labels):
        return labels
    k = int(labels.max()) + 1
    x, y, z = xyz.T
    size = np.bincount(labels, minlength=k)
    cx, cy = _circle_through_origin(labels, x, y, k)
    radius = np.hypot(cx, cy)
    chain = np.flatnonzero((size >= min_hits) & (radius <= max_radius))
    if len(chain) < 2:
        return labels
    # Turning angle of each hit around its chain's centre, from the origin, in [0, 2 pi).
    hit = np.isin(labels, chain)
    lab, hx, hy, hz = labels[hit], x[hit], y[hit], z[hit]
    alpha = np.mod(np.arctan2(hy - cy[lab], hx - cx[lab]) - np.arctan2(-cy[lab], -cx[lab]), 2 * np.pi)
    stats = np.stack(
        [np.bincount(lab, w, k) for w in (np.ones_like(alpha), alpha, alpha**2, hz, hz**2, alpha * hz)]
    )
    a_lo = np.full(k, np.inf)
    a_hi = np.full(k, -np.inf)
    np.minimum.at(a_lo, lab, alpha)
    np.maximum.at(a_hi, lab, alpha)

    pairs = cKDTree(np.stack([cx[chain], cy[chain]], 1)).query_pairs(centre_mm, output_type="ndarray")
    if not len(pairs):
        return labels
    a, b = chain[pairs[:, 0]], chain[pairs[:, 1]]
    # One leg before the top of the turn, the other after it.
    before_after = (a_hi[a] <= np.pi + _TOP_SLACK_RAD) & (a_lo[b] >= np.pi - _TOP_SLACK_RAD)
    after_before = (a_hi[b] <= np.pi + _TOP_SLACK_RAD) & (a_lo[a] >= np.pi - _TOP_SLACK_RAD)
    # One line z = z0 + t alpha through both legs' hits, from the summed sums.
    n, sa, saa, sz, szz, saz = stats[:, a] + stats[:, b]
    var_a = saa - sa * sa / n
    cov = saz - sa * sz / n
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = cov / var_a
        rss = np.maximum(szz - sz * sz / n - slope * cov, 0.0)
        rms = np.sqrt(rss / n)
        z0 = (sz - slope * sa) / n
    # The helix starts at the origin: alpha = 0 for one sense of rotation, 2 pi for the other.
    near_beam = np.minimum(np.abs(z0), np.abs(z0 + 2 * np.pi * slope)) < _Z0_MAX_MM
    good = (before_after | after_before) & (rms <= z_rms_mm) & near_beam & np.isfinite(rms)
    a, b, rms = a[good], b[good], rms[good]
    merged = np.arange(k)
    used = np.zeros(k, bool)
    for i in np.argsort(rms, kind="stable"):  # few candidates: one per looper
        if not used[a[i]] and not used[b[i]]:
            used[[a[i], b[i]]] = True
            merged[b[i]] = a[i]
    return _by_smallest_member(merged[labels])


# --------------------------------------------------------------------------- submission files
def _check_event(event_id, hit_id, track_id, expected_hit_ids=None) -> tuple[np.ndarray, np.ndarray]:
    """Validated ([n] int64 hit ids, [n] int64 track ids) of one event's submission rows."""
    if int(event_id) < 0:
        raise ValueError(f"event_id must be >= 0, got {event_id}")
    hits, tracks = np.asarray(hit_id).ravel(), np.asarray(track_id).ravel()
    if hits.shape != tracks.shape:
        raise ValueError(f"event {event_id}: {len(hits)} hit ids but {len(tracks)} track ids")
    for name, a in (("hit_id", hits), ("track_id", tracks)):
        if not (np.issubdtype(a.dtype, np.integer) or len(a) == 0):
            raise ValueError(f"event {event_id}: {name} must be integers, got {a.dtype}")
    hits, tracks = hits.astype(np.int64), tracks.astype(np.int64)
    sorted_hits = np.sort(hits)
    if np.any(sorted_hits[1:] == sorted_hits[:-1]):
        raise ValueError(f"event {event_id}: a hit appears more than once (each hit is in one track)")
    if expected_hit_ids is not None:
        expected = np.sort(np.asarray(expected_hit_ids).astype(np.int64).ravel())
        if not np.array_equal(sorted_hits, expected):
            missing = np.setdiff1d(expected, sorted_hits)
            extra = np.setdiff1d(sorted_hits, expected)
            raise ValueError(
                f"event {event_id}: the submission must hold every hit of the event once: "
                f"{len(missing)} missing (e.g. {missing[:3].tolist()}), "
                f"{len(extra)} unknown (e.g. {extra[:3].tolist()})"
            )
    return hits, tracks


def _rows_csv(event_id: int, hits: np.ndarray, tracks: np.ndarray) -> bytes:
    table = pa.table(
        {"event_id": pa.array(np.full(len(hits), event_id, np.int64)), "hit_id": hits, "track_id": tracks}
    )
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False))
    return sink.getvalue().to_pybytes()


def _maybe_gzip(raw, compress: bool):
    # mtime=0: the same tracks give the same bytes.
    return gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) if compress else nullcontext(raw)


def write_submissions(path: str | os.PathLike, events: Iterable[tuple]) -> Path:
    """Write one Kaggle submission CSV `event_id,hit_id,track_id` for several events; returns the path.

    events: (event_id, hit_id [n], track_id [n]) or (event_id, hit_id, track_id, expected_hit_ids)
    tuples, one per event; expected_hit_ids, when given, are all the hits of the event, which the
    submission must hold exactly once each. Raises ValueError for a hit listed twice, a missing or
    unknown hit, or an event given twice. Events are streamed into a temporary file that is renamed
    at the end, so a failed or killed run leaves no partial submission; `.gz` paths are gzipped.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    seen: set[int] = set()
    try:
        with open(tmp, "wb") as raw, _maybe_gzip(raw, path.suffix == ".gz") as out:
            out.write((",".join(SUBMISSION_COLUMNS) + "\n").encode())
            for event in events:
                event_id = int(event[0])
                if event_id in seen:
                    raise ValueError(f"event {event_id} is given twice")
                seen.add(event_id)
                hits, tracks = _check_event(*event)
                out.write(_rows_csv(event_id, hits, tracks))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_submission(path: str | os.PathLike, event_id: int, hit_id, track_id, expected_hit_ids=None) -> Path:
    """Write the submission CSV of one event (see `write_submissions`); returns the path.

    hit_id, track_id: [n] integer arrays; expected_hit_ids: optional [N], all the event's hits.
    """
    return write_submissions(path, [(event_id, hit_id, track_id, expected_hit_ids)])


def read_submission(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A submission file as {"event_id", "hit_id", "track_id": [n_rows] int64}."""
    types = dict.fromkeys(SUBMISSION_COLUMNS, pa.int64())
    table = pacsv.read_csv(Path(path), convert_options=pacsv.ConvertOptions(column_types=types))
    return {name: table.column(name).to_numpy() for name in SUBMISSION_COLUMNS}


# --------------------------------------------------------------------------- tracking metrics
class BinnedEfficiency(NamedTuple):
    """Efficiency in bins: edges [K+1]; efficiency, error (binomial) [K] (NaN where empty); counts [K]."""

    edges: np.ndarray
    efficiency: np.ndarray
    error: np.ndarray
    n_particles: np.ndarray
    n_found: np.ndarray


class _Match(NamedTuple):
    particle_id: np.ndarray  # [P] the non-noise particles with hits in the event
    particle_hits: np.ndarray  # [P] their hit counts
    particle_row: np.ndarray  # [P] index of one hit of each particle
    found: np.ndarray  # [P] bool, double-majority matched by a track
    track_hits: np.ndarray  # [T] hits per track
    track_matched: np.ndarray  # [T] bool, the track matches a (non-noise) particle


def _match(particle_id, track_id) -> _Match:
    """Double-majority matching of tracks and particles; particle 0 is noise and is never matched."""
    pid = np.asarray(particle_id).astype(np.int64).ravel()
    trk = np.asarray(track_id).ravel()
    if pid.shape != trk.shape:
        raise ValueError(f"particle_id {pid.shape} and track_id {trk.shape} differ in length")
    particles, particle_row, par = np.unique(pid, return_index=True, return_inverse=True)
    tracks, t = np.unique(trk, return_inverse=True)
    par, t = par.ravel(), t.ravel()
    particle_hits = np.bincount(par, minlength=len(particles))
    track_hits = np.bincount(t, minlength=len(tracks))
    # (track, particle) pairs and their hit counts.
    pair, pair_n = np.unique(t * len(particles) + par, return_counts=True)
    pair_t, pair_p = pair // max(len(particles), 1), pair % max(len(particles), 1)
    # Both majorities are strict, so a particle has at most one matching track and vice versa.
    good = (2 * pair_n > track_hits[pair_t]) & (2 * pair_n > particle_hits[pair_p]) & (particles[pair_p] != 0)
    found = np.zeros(len(particles), bool)
    found[pair_p[good]] = True
    matched = np.zeros(len(tracks), bool)
    matched[pair_t[good]] = True
    real = particles != 0
    return _Match(particles[real], particle_hits[real], particle_row[real], found[real], track_hits, matched)


def _selected(m: _Match, hit_pt, pt_min: float, min_hits: int) -> tuple[np.ndarray, np.ndarray]:
    """([P] pT of each particle, [P] bool: it has pT >= pt_min and at least min_hits hits)."""
    pt = np.asarray(hit_pt, np.float64).ravel()[m.particle_row]
    return pt, (pt >= pt_min) & (m.particle_hits >= min_hits)


def tracking_efficiency(particle_id, track_id, hit_pt, pt_min: float = 1.0, min_hits: int = 5) -> float:
    """Fraction of the particles with pT >= pt_min (GeV) and >= min_hits hits that a track finds.

    particle_id, track_id, hit_pt: [N] per hit (truth particle, 0 = noise; the built track; the
    particle's pT, see `score.hit_particle_pt`). Found = the TrackML double majority. NaN if no
    particle qualifies. min_hits = 5 is our choice (TrackML weights need 4, Exa.TrkX studies use
    3 to 7); hits are counted in the given arrays.
    """
    m = _match(particle_id, track_id)
    _, sel = _selected(m, hit_pt, pt_min, min_hits)
    return float(m.found[sel].mean()) if sel.any() else float("nan")


def fake_rate(particle_id, track_id, min_track_hits: int = 3) -> float:
    """Fraction of the tracks with >= min_track_hits hits that match no particle (noise does not
    count as one); NaN if there is no such track. particle_id, track_id: [N] per hit."""
    m = _match(particle_id, track_id)
    long = m.track_hits >= min_track_hits
    return float(1.0 - m.track_matched[long].mean()) if long.any() else float("nan")


def tracking_metrics(
    particle_id, track_id, hit_pt, pt_min: float = 1.0, min_hits: int = 5, min_track_hits: int = 3
) -> dict[str, float]:
    """Efficiency, fake rate and the counts behind them, in one pass (arguments as above)."""
    m = _match(particle_id, track_id)
    _, sel = _selected(m, hit_pt, pt_min, min_hits)
    long = m.track_hits >= min_track_hits
    n_fake = int(np.sum(long & ~m.track_matched))
    return {
        "efficiency": float(m.found[sel].mean()) if sel.any() else float("nan"),
        "fake_rate": n_fake / int(long.sum()) if long.any() else float("nan"),
        "n_particles": int(sel.sum()),
        "n_found": int(np.sum(m.found & sel)),
        "n_tracks": len(m.track_hits),
        "n_tracks_long": int(long.sum()),
        "n_fake": n_fake,
    }


def _binned(values: np.ndarray, found: np.ndarray, edges) -> BinnedEfficiency:
    edges = np.asarray(edges, np.float64)
    n = np.histogram(values, edges)[0]
    k = np.histogram(values[found], edges)[0]
    eff = np.divide(k, n, out=np.full(len(n), np.nan), where=n > 0)
    err = np.sqrt(np.divide(eff * (1 - eff), n, out=np.full(len(n), np.nan), where=n > 0))
    return BinnedEfficiency(edges, eff, err, n, k)


def efficiency_vs_pt(
    particle_id, track_id, hit_pt, bins=None, min_hits: int = 5, pt_min: float = 0.0
) -> BinnedEfficiency:
    """Tracking efficiency in bins of particle pT (GeV); bins: edges [K+1], default 0.1-10 GeV in 12
    log bins. Particles outside the edges are left out. Per-hit arguments as `tracking_efficiency`."""
    m = _match(particle_id, track_id)
    pt, sel = _selected(m, hit_pt, pt_min, min_hits)
    edges = np.geomspace(0.1, 10.0, 13) if bins is None else bins
    return _binned(pt[sel], m.found[sel], edges)


def efficiency_vs_eta(
    particle_id, track_id, hit_pt, hit_eta, bins=None, pt_min: float = 1.0, min_hits: int = 5
) -> BinnedEfficiency:
    """Tracking efficiency in bins of particle eta for pT >= pt_min; hit_eta: [N] the eta of each
    hit's particle (`hit_particle_eta`); bins: edges [K+1], default 16 bins over -4..4."""
    m = _match(particle_id, track_id)
    _, sel = _selected(m, hit_pt, pt_min, min_hits)
    eta = np.asarray(hit_eta, np.float64).ravel()[m.particle_row]
    edges = np.linspace(-4.0, 4.0, 17) if bins is None else bins
    return _binned(eta[sel], m.found[sel], edges)


def hit_particle_eta(truth_particle_ids, particles) -> np.ndarray:
    """Pseudorapidity of the particle behind each truth hit, from its momentum; NaN for noise and
    unknown particles: [n_hits]. particles: the particles columns (particle_id, px, py, pz)."""
    pid = np.asarray(truth_particle_ids).astype(np.int64).ravel()
    ppid = np.asarray(particles["particle_id"]).astype(np.int64)
    if len(ppid) == 0:
        return np.full(len(pid), np.nan)
    order = np.argsort(ppid)
    pos = np.clip(np.searchsorted(ppid[order], pid), 0, len(ppid) - 1)
    row = order[pos]
    pt = np.hypot(np.asarray(particles["px"], np.float64), np.asarray(particles["py"], np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.arcsinh(np.asarray(particles["pz"], np.float64) / pt)
    return np.where(ppid[row] == pid, eta[row], np.nan)
