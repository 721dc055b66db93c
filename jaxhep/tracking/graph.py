"""Hits -> graph for edge classification: layer adjacency, geometric or kNN edges, features, truth labels.

Follows HEP.TrkX / Exa.TrkX (Farrell et al. arXiv:1810.06111, Ju et al. arXiv:2007.00149):
nodes are hits, an edge joins a hit to a hit on an adjacent layer farther out, and an edge is true when
both hits belong to the same particle and are consecutive along its track.

Layers. The global layer index of a hit is the rank of its (volume_id, layer_id) among the detector's
layers sorted by (volume_id, layer_id): 0-6 = volume 7 (pixel -z disks, z = -1500 ... -600), 7-10 = the
pixel barrel, ..., 47 = volume 18 layer 12. This is Exa.TrkX's `vlids` numbering.

Adjacency (`layer_pairs`, each pair oriented (inner, outer) = the order an outgoing particle crosses them):
- "geometry" (default): physical adjacency. Helices from the beam line (z0 in +-z0_max, |eta| <= 4.5,
  pT = infinity, 2 pt_min and pt_min) are intersected with every sensitive surface; each two surfaces crossed
  one after the other form a pair. This gives barrel -> next barrel, any barrel layer -> the first disk it
  can reach, disk -> next disk, the cross-system steps (pixel disk -> strip barrel or strip disk, short-
  strip disk -> long-strip disk) and the rare skip through a crack (pixel barrel 3 -> strip barrel 1).
  74 of the 90 pairs of Exa.TrkX's table (heptrkx `layer_pairs`, found from real events) are among
  these 112; the rest follow from the real detector's slightly different ring radii.
- "simple": the textbook convention of the brief and of HEP.TrkX's barrel graphs: barrel -> next barrel,
  every barrel layer -> the first disk of its own subsystem's endcaps (both sides), disk -> next disk of
  the same endcap volume. No cross-system forward steps, so it loses forward tracks (7 % of the pT > 1
  GeV pairs at mu = 200).
- an explicit [P, 2] array of global layer indices.

Edges: "geometric" keeps every adjacent-layer pair with |dphi/dr| < phi_slope_max and |z0| < z0_max
(z0 = z1 - r1 dz/dr, the line through both hits extrapolated to r = 0). The candidates come from a phi
window per source hit on the target layer sorted by phi (np.searchsorted), never an N x N matrix.
With `skip_check`, an edge whose r-z line crosses another layer well inside its active area is dropped:
a particle would have left a hit there (this removes 40 % of the edges and no true one at mu = 200).
"knn": each hit's k nearest hits among the hits of its outward-adjacent layers (same adjacency), in a
space chosen by `knn_space` (scipy cKDTree; scipy is a dependency of jax).

Truth. A particle's hits are ordered along its helix by the transverse arc length from its production
vertex (chord c to the vertex, s = 2R asin(c / 2R) on the way out, 2 pi R - that on the way back, told
apart by the sign of the radial truth momentum), so a looper returning through the layers is ordered as
it flew, not by distance. Consecutive hits on one layer less than SAME_CROSSING_ARC_MM apart (module
overlaps in real data) form one group, and every hit of a group is paired with every hit of the next
group (Exa.TrkX's layerwise truth). Two crossings of one layer farther apart (a looper turning back
between two layers) are not a true pair: no edge between adjacent layers can hold them.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from jaxhep.tracking.io import Event
from jaxhep.tracking.sim.detector import GENERIC_DETECTOR, BarrelLayer, Detector
from jaxhep.tracking.sim.propagate import PT_TO_RADIUS_MM

# Node features and the scale each is divided by. r, z in mm; phi in rad; n_cells = cells of the hit;
# cell_value = summed `value` of its cells (charge in TrackML, deposited MeV in our simulator).
NODE_FEATURES = ("r", "phi", "z", "n_cells", "cell_value")
NODE_SCALES = (1000.0, np.pi, 1000.0, 10.0, 1.0)
# Edge features (receiver - sender): dr, dz in mm, dphi in (-pi, pi], deta, phi_slope = dphi / dr in
# rad/mm, z0 in mm. Scales put geometric-graph edges in about [-1, 1] (phi slope 0.0006 = the HEP.TrkX cut,
# z0 200 mm = 3.6 sigma of the 55 mm beam spot); scaled values are clipped to +-EDGE_CLIP, because a kNN
# edge between hits at almost the same r has an unbounded slope and z0.
EDGE_FEATURES = ("dr", "dphi", "dz", "deta", "phi_slope", "z0")
EDGE_SCALES = (100.0, 0.1, 100.0, 1.0, 0.0006, 200.0)
EDGE_CLIP = 10.0

# HEP.TrkX's |dphi/dr| < 0.0006 rad/mm admits pT >~ 0.5 GeV (dphi/dr ~ 1 / 2R = 0.0003 / pT[GeV] at 2 T).
PHI_SLOPE_MAX = 0.0006
# Beam spot sigma_z = 55 mm (sim/simulate.py): 200 mm keeps 99.97 % of vertices plus the strips' z smearing.
Z0_MAX_MM = 200.0
# Consecutive hits of a particle on one layer closer than this along the arc (mm) are one crossing:
# overlapping modules in real TrackML data, or a grazing turn at the apex of a looper.
SAME_CROSSING_ARC_MM = 30.0
# A geometric edge whose r-z line crosses another layer this far (mm) inside its active area skips a
# layer and is dropped (2-3 sigma of the strips' z resolution plus the helix's bend at pT ~ 0.5 GeV).
SKIP_MARGIN_MM = 20.0
# |dr| below this (mm) is treated as this, with its sign, in the slope and z0 (no division by zero).
_MIN_DR_MM = 1e-3


@dataclass
class EventGraph:
    """One event's graph, unpadded NumPy. N nodes (all hits), E edges, T true consecutive pairs.

    nodes [N, F_n] float32 (NODE_FEATURES[:F_n], scaled); edges [E, F_e] float32 (EDGE_FEATURES);
    senders / receivers [E] int32 (inner / outer hit); labels [E] float32 (1 = consecutive hits of one
    particle, with pT > pt_min when a cut was given); train_mask [E] bool (False on true edges of particles
    below pt_min: neither positive nor negative in the loss); edge_pt / edge_eta [E] float32 (the
    particle's pT in GeV and eta for every truly consecutive edge whatever the cut, 0 elsewhere);
    hit_id [N] int64; layer [N] int32 (global layer index); particle_id [N] int64 (0 = noise);
    true_pairs [T, 2] int32 (all consecutive pairs in the truth, inner first) and true_pt [T] float32.
    """

    nodes: np.ndarray
    edges: np.ndarray
    senders: np.ndarray
    receivers: np.ndarray
    labels: np.ndarray
    train_mask: np.ndarray
    edge_pt: np.ndarray
    edge_eta: np.ndarray
    hit_id: np.ndarray
    layer: np.ndarray
    particle_id: np.ndarray
    true_pairs: np.ndarray
    true_pt: np.ndarray
    info: dict = field(default_factory=dict)

    @property
    def n_node(self) -> int:
        return len(self.nodes)

    @property
    def n_edge(self) -> int:
        return len(self.senders)

    @property
    def n_true_total(self) -> int:
        """All consecutive hit pairs of all particles in the truth (the denominator of graph efficiency)."""
        return len(self.true_pairs)

    def n_true(self, pt_min: float | None = None) -> int:
        """Consecutive pairs in the truth of particles with pT > pt_min (all if None)."""
        return self.n_true_total if pt_min is None else int(np.sum(self.true_pt > pt_min))

    def select(self, keep_node: np.ndarray, keep_edge: np.ndarray, info: dict | None = None) -> EventGraph:
        """The sub-graph of the kept hits [N] bool and edges [E] bool (both endpoints of every kept edge
        must be kept), nodes renumbered in their order; true_pairs keeps the pairs of two kept hits."""
        if not keep_node[self.senders[keep_edge]].all() or not keep_node[self.receivers[keep_edge]].all():
            raise ValueError("a kept edge has an endpoint that is not kept")
        new_index = np.cumsum(keep_node) - 1
        pairs_kept = keep_node[self.true_pairs].all(axis=1)
        return dataclasses.replace(
            self,
            nodes=self.nodes[keep_node],
            edges=self.edges[keep_edge],
            senders=new_index[self.senders[keep_edge]].astype(np.int32),
            receivers=new_index[self.receivers[keep_edge]].astype(np.int32),
            labels=self.labels[keep_edge],
            train_mask=self.train_mask[keep_edge],
            edge_pt=self.edge_pt[keep_edge],
            edge_eta=self.edge_eta[keep_edge],
            hit_id=self.hit_id[keep_node],
            layer=self.layer[keep_node],
            particle_id=self.particle_id[keep_node],
            true_pairs=new_index[self.true_pairs[pairs_kept]].astype(np.int32),
            true_pt=self.true_pt[pairs_kept],
            info=self.info if info is None else info,
        )


def _parts(event) -> tuple[dict, dict | None, dict | None, dict | None]:
    """(hits, cells, particles, truth) of an `io.Event` or of `simulate_event`'s dict."""
    if isinstance(event, Event):
        return event.hits, event.cells, event.particles, event.truth
    return event["hits"], event.get("cells"), event.get("particles"), event.get("truth")


def _find(keys: np.ndarray, table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row of each key in `table` (unique keys) and whether it is there: [n] -> ([n] int64, [n] bool)."""
    if len(table) == 0:
        return np.zeros(len(keys), np.int64), np.zeros(len(keys), bool)
    order = np.argsort(table, kind="stable")
    pos = np.clip(np.searchsorted(table[order], keys), 0, len(table) - 1)
    return order[pos], table[order[pos]] == keys


def layer_keys(detector: Detector = GENERIC_DETECTOR) -> np.ndarray:
    """[L, 2] int64 (volume_id, layer_id) sorted; row i is global layer i."""
    return np.array(sorted((layer.volume_id, layer.layer_id) for layer in detector.layers), np.int64)


def global_layer(volume_id, layer_id, detector: Detector = GENERIC_DETECTOR) -> np.ndarray:
    """Global layer index [n] int32 of hits; raises ValueError for a (volume, layer) not in the detector."""
    keys = layer_keys(detector)
    index, found = _find(np.asarray(volume_id, np.int64) * 1000 + layer_id, keys[:, 0] * 1000 + keys[:, 1])
    if not found.all():
        bad = sorted(set(zip(np.asarray(volume_id)[~found].tolist(), np.asarray(layer_id)[~found].tolist())))
        raise ValueError(f"hits on (volume_id, layer_id) {bad[:5]} that the detector does not have")
    return index.astype(np.int32)


@functools.lru_cache(maxsize=8)
def _layer_arrays(detector: Detector):
    """Per global layer: is_barrel, radius or z, half_length, r_min, r_max, technology name."""
    keys = [tuple(k) for k in layer_keys(detector)]
    by_key = {(layer.volume_id, layer.layer_id): layer for layer in detector.layers}
    layers = [by_key[k] for k in keys]
    barrel = np.array([isinstance(la, BarrelLayer) for la in layers])
    pos = np.array([la.radius if b else la.z for la, b in zip(layers, barrel)])
    half = np.array([getattr(la, "half_length", 0.0) for la in layers])
    r_min = np.array([getattr(la, "r_min", 0.0) for la in layers])
    r_max = np.array([getattr(la, "r_max", 0.0) for la in layers])
    return barrel, pos, half, r_min, r_max, [la.technology.name for la in layers]


def geometry_layer_pairs(
    detector: Detector = GENERIC_DETECTOR,
    pt_min: float = 0.5,
    z0_max: float = Z0_MAX_MM,
    eta_max: float = 4.5,
) -> np.ndarray:
    """Physically adjacent layers [P, 2] int32 (inner, outer): surfaces crossed one after the other.

    Helices from (0, 0, z0) for a grid of z0 in +-z0_max, |eta| <= eta_max and pT in {inf, 2 pt_min,
    pt_min} (GeV), out to half a turn. Read-only and cached.
    """
    return _geometry_layer_pairs(detector, float(pt_min), float(z0_max), float(eta_max))


@functools.lru_cache(maxsize=8)
def _geometry_layer_pairs(detector: Detector, pt_min: float, z0_max: float, eta_max: float) -> np.ndarray:
    barrel, pos, half, r_min, r_max, _ = _layer_arrays(detector)
    z0, eta, inv_r = np.meshgrid(
        np.linspace(-z0_max, z0_max, 9),
        np.linspace(-eta_max, eta_max, 1801),
        [0.0, 0.5, 1.0],
        indexing="ij",
    )
    z0, cot = z0.reshape(-1, 1), np.sinh(eta).reshape(-1, 1)
    # Curvature 1/R in 1/mm; R = PT_TO_RADIUS_MM pT / B.
    kappa = (inv_r * detector.b_field / (PT_TO_RADIUS_MM * pt_min)).reshape(-1, 1)
    curved = kappa > 0
    k_safe = np.where(curved, kappa, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        # Transverse arc to radius rho: 2 R asin(rho / 2R) (rho when straight); radius after an arc s:
        # 2 R sin(s / 2R). z is linear in the arc.
        x = pos * kappa / 2.0
        s_cyl = np.where(curved, 2.0 * np.arcsin(np.clip(x, 0.0, 1.0)) / k_safe, pos)
        ok_cyl = (x <= 1.0) & (np.abs(z0 + s_cyl * cot) <= half)
        s_disk = np.where(cot != 0, (pos - z0) / np.where(cot != 0, cot, 1.0), -1.0)
        r_disk = np.where(curved, 2.0 * np.sin(s_disk * kappa / 2.0) / k_safe, s_disk)
        half_turn = np.where(curved, np.pi / k_safe, np.inf)
        ok_disk = (s_disk > 0) & (s_disk <= half_turn) & (r_disk >= r_min) & (r_disk <= r_max)
    s = np.where(barrel, np.where(ok_cyl, s_cyl, np.inf), np.where(ok_disk, s_disk, np.inf))
    order = np.argsort(s, axis=1)
    s_sorted = np.take_along_axis(s, order, axis=1)
    valid = np.isfinite(s_sorted[:, 1:])
    n = len(pos)
    counts = np.bincount(order[:, :-1][valid] * n + order[:, 1:][valid], minlength=n * n).reshape(n, n)
    # One orientation per unordered pair: the one seen more often.
    inner_first = (counts > counts.T) | ((counts == counts.T) & np.triu(np.ones((n, n), bool), 1))
    pairs = np.argwhere((counts > 0) & inner_first).astype(np.int32)
    pairs.setflags(write=False)
    return pairs


@functools.lru_cache(maxsize=8)
def simple_layer_pairs(detector: Detector = GENERIC_DETECTOR) -> np.ndarray:
    """[P, 2] int32: barrel -> next barrel; barrel -> first disk of its subsystem; disk -> next disk.

    Read-only and cached."""
    barrel, pos, _, _, _, tech = _layer_arrays(detector)
    volume = layer_keys(detector)[:, 0]
    pairs = []
    b = np.flatnonzero(barrel)[np.argsort(pos[barrel])]
    pairs += list(zip(b[:-1], b[1:]))
    for v in np.unique(volume[~barrel]):
        disks = np.flatnonzero((volume == v) & ~barrel)
        disks = disks[np.argsort(np.abs(pos[disks]))]
        pairs += list(zip(disks[:-1], disks[1:]))
        pairs += [(i, disks[0]) for i in b if tech[i] == tech[disks[0]]]
    pairs = np.array(sorted(pairs), np.int32)
    pairs.setflags(write=False)
    return pairs


def _resolve_pairs(layer_pairs, detector: Detector, z0_max: float) -> np.ndarray:
    if isinstance(layer_pairs, str):
        if layer_pairs == "geometry":
            return geometry_layer_pairs(detector, z0_max=max(z0_max, Z0_MAX_MM))
        if layer_pairs == "simple":
            return simple_layer_pairs(detector)
        raise ValueError(f"layer_pairs must be 'geometry', 'simple' or an array, got {layer_pairs!r}")
    pairs = np.asarray(layer_pairs, np.int32)
    if pairs.ndim != 2 or pairs.shape[1] != 2:
        raise ValueError(f"layer_pairs must have shape [P, 2], got {pairs.shape}")
    return pairs


def _pair_geometry(r, phi, z, eta, s, t):
    """Raw edge quantities from sender s to receiver t: dr, dphi in (-pi, pi], dz, deta, slope, z0."""
    dr, dz, deta = r[t] - r[s], z[t] - z[s], eta[t] - eta[s]
    dphi = phi[t] - phi[s]
    dphi = dphi - 2.0 * np.pi * np.ceil((dphi - np.pi) / (2.0 * np.pi))
    dr_safe = np.where(np.abs(dr) < _MIN_DR_MM, np.where(dr < 0, -_MIN_DR_MM, _MIN_DR_MM), dr)
    return dr, dphi, dz, deta, dphi / dr_safe, z[s] - r[s] * dz / dr_safe


def _between(detector: Detector, pairs: np.ndarray) -> list[np.ndarray]:
    """For each layer pair, the other layers whose (r, z) extent overlaps the box spanned by the pair."""
    barrel, pos, half, r_min, r_max, _ = _layer_arrays(detector)
    r_lo, r_hi = np.where(barrel, pos, r_min), np.where(barrel, pos, r_max)
    z_lo, z_hi = np.where(barrel, -half, pos), np.where(barrel, half, pos)
    out = []
    for a, b in pairs:
        lo_r, hi_r = min(r_lo[a], r_lo[b]), max(r_hi[a], r_hi[b])
        lo_z, hi_z = min(z_lo[a], z_lo[b]), max(z_hi[a], z_hi[b])
        c = (r_hi >= lo_r) & (r_lo <= hi_r) & (z_hi >= lo_z) & (z_lo <= hi_z)
        c[[a, b]] = False
        out.append(np.flatnonzero(c))
    return out


def _skips_a_layer(r, z, s, t, layers, detector: Detector) -> np.ndarray:
    """[E] bool: the r-z line from hit s to hit t crosses one of `layers` well inside its active area.

    A particle that crossed that surface between the two hits would have left a hit there, so the edge
    would skip a layer. SKIP_MARGIN_MM absorbs resolution and the helix's bend in r-z.
    """
    barrel, pos, half, r_min, r_max, _ = _layer_arrays(detector)
    dr, dz = r[t] - r[s], z[t] - z[s]
    skip = np.zeros(len(s), bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        for c in layers:
            if barrel[c]:
                u = (pos[c] - r[s]) / dr
                inside = np.abs(z[s] + u * dz) < half[c] - SKIP_MARGIN_MM
            else:
                u = (pos[c] - z[s]) / dz
                rc = r[s] + u * dr
                inside = (rc > r_min[c] + SKIP_MARGIN_MM) & (rc < r_max[c] - SKIP_MARGIN_MM)
            skip |= inside & (u > 1e-6) & (u < 1.0 - 1e-6)
    return skip


def _geometric_edges(r, phi, z, layer, pairs, phi_slope_max, z0_max, detector, skip_check):
    """Edges (senders, receivers) over the layer pairs passing the phi-slope and z0 cuts."""
    between = _between(detector, pairs) if skip_check else [()] * len(pairs)
    order = np.lexsort((phi, layer))
    bounds = np.searchsorted(layer[order], np.arange(layer.max(initial=-1) + 2))
    senders, receivers = [], []
    for (a, b), others in zip(pairs, between):
        if max(a, b) + 1 >= len(bounds):
            continue
        src, tgt = order[bounds[a] : bounds[a + 1]], order[bounds[b] : bounds[b + 1]]
        if len(src) == 0 or len(tgt) == 0:
            continue
        # |dphi| <= slope_max |dr| and |dr| <= the farthest target radius: a phi window per source hit.
        r_lo, r_hi = r[tgt].min(), r[tgt].max()
        width = phi_slope_max * np.maximum(np.abs(r_hi - r[src]), np.abs(r_lo - r[src])) + 1e-9
        width = np.minimum(width, np.pi)
        # Targets sorted by phi and repeated at phi -+ 2 pi, so that no window needs wrapping.
        phi_ext = np.concatenate([phi[tgt] - 2 * np.pi, phi[tgt], phi[tgt] + 2 * np.pi])
        lo = np.searchsorted(phi_ext, phi[src] - width, "left")
        count = np.searchsorted(phi_ext, phi[src] + width, "left") - lo
        total = int(count.sum())
        if total == 0:
            continue
        s = np.repeat(src, count)
        at = np.repeat(lo, count) + np.arange(total) - np.repeat(np.cumsum(count) - count, count)
        t = np.tile(tgt, 3)[at]
        # The cuts multiplied through by |dr| (no division): |dphi| < max |dr|, |z1 dr - r1 dz| < max |dr|.
        rs, zs = r[s], z[s]
        dr = r[t] - rs
        abs_dr = np.abs(dr)
        keep = (np.abs(phi_ext[at] - phi[s]) < phi_slope_max * abs_dr) & (
            np.abs(zs * dr - rs * (z[t] - zs)) < z0_max * abs_dr
        )
        s, t = s[keep], t[keep]
        if len(others):
            keep = ~_skips_a_layer(r, z, s, t, others, detector)
            s, t = s[keep], t[keep]
        senders.append(s)
        receivers.append(t)
    if not senders:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(senders), np.concatenate(receivers)


def _knn_space(x, y, z, r, eta, phi, space: str) -> np.ndarray:
    """Points [N, d] in which kNN distances are taken."""
    if space == "xyz":  # plain Euclidean distance in mm, like the seed's knn_graph on positions
        return np.stack([x, y, z], axis=1)
    if space == "eta_phi":  # direction from the origin: (eta, phi) on a cylinder (cos, sin keep the wrap)
        return np.stack([eta, np.cos(phi), np.sin(phi)], axis=1)
    raise ValueError(f"knn_space must be 'eta_phi' or 'xyz', got {space!r}")


def _knn_edges(points, layer, pairs, k):
    """Each hit to its k nearest hits on the layers adjacent to its own, farther out."""
    senders, receivers = [], []
    for a in np.unique(pairs[:, 0]):
        src = np.flatnonzero(layer == a)
        tgt = np.flatnonzero(np.isin(layer, pairs[pairs[:, 0] == a, 1]))
        if len(src) == 0 or len(tgt) == 0:
            continue
        kk = min(k, len(tgt))
        _, j = cKDTree(points[tgt]).query(points[src], k=kk)
        senders.append(np.repeat(src, kk))
        receivers.append(tgt[j.reshape(-1)])
    if not senders:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(senders), np.concatenate(receivers)


def _truth_pairs(hits, truth, particles, layer, b_field):
    """Consecutive hit pairs of every particle: node pid [N], pairs [T, 2] (inner first), pT [T], eta [T]."""
    n = len(hits["hit_id"])
    row, found = _find(np.asarray(hits["hit_id"], np.int64), np.asarray(truth["hit_id"], np.int64))
    pid = np.where(found, np.asarray(truth["particle_id"], np.int64)[row], 0)
    t = {c: np.asarray(truth[c], np.float64)[row] for c in ("tx", "ty", "tz", "tpx", "tpy", "tpz")}
    # Production vertex and momentum of each hit's particle; the hit's own truth if it is not listed.
    vx, vy, vz = np.zeros(n), np.zeros(n), np.zeros(n)
    px, py, pz = t["tpx"], t["tpy"], t["tpz"]
    if particles is not None:
        prow, pfound = _find(pid, np.asarray(particles["particle_id"], np.int64))
        pfound &= pid != 0
        get = lambda c, fallback: np.where(pfound, np.asarray(particles[c], np.float64)[prow], fallback)
        vx, vy, vz = get("vx", vx), get("vy", vy), get("vz", vz)
        px, py, pz = get("px", px), get("py", py), get("pz", pz)
    pt = np.hypot(px, py)
    # Transverse arc length from the vertex along the helix (module docstring).
    radius = PT_TO_RADIUS_MM * np.maximum(pt, 1e-9) / b_field
    dx, dy = t["tx"] - vx, t["ty"] - vy
    half_arc = 2.0 * radius * np.arcsin(np.clip(np.hypot(dx, dy) / (2.0 * radius), 0.0, 1.0))
    outgoing = dx * t["tpx"] + dy * t["tpy"] >= 0
    arc = np.where(outgoing, half_arc, 2.0 * np.pi * radius - half_arc)

    real = np.flatnonzero(pid != 0)
    real = real[np.lexsort((np.abs(t["tz"][real] - vz[real]), arc[real], pid[real]))]
    p, lay = pid[real], layer[real]
    m = len(real)
    if m == 0:
        return pid, np.zeros((0, 2), np.int64), np.zeros(0, np.float32), np.zeros(0, np.float32)
    a = arc[real]
    new_particle = np.r_[True, p[1:] != p[:-1]]
    same_layer = np.r_[False, lay[1:] == lay[:-1]]
    overlap = same_layer & np.r_[False, np.abs(np.diff(a)) < SAME_CROSSING_ARC_MM]
    new_group = new_particle | ~overlap
    group = np.cumsum(new_group) - 1
    start = np.flatnonzero(new_group)
    size = np.diff(np.r_[start, m])
    # A group pairs with the next one when that one belongs to the same particle and lies on another
    # layer (a looper turning between two layers crosses one layer twice: no edge can join those hits).
    has_next = np.r_[~new_particle[start[1:]] & ~same_layer[start[1:]], False]
    rows = np.flatnonzero(has_next[group])
    nxt = group[rows] + 1
    s = np.repeat(rows, size[nxt])
    offset = np.arange(len(s)) - np.repeat(np.cumsum(size[nxt]) - size[nxt], size[nxt])
    tgt = np.repeat(start[nxt], size[nxt]) + offset
    pairs = np.stack([real[s], real[tgt]], axis=1)
    eta = np.arcsinh(pz / np.maximum(pt, 1e-9))
    return pid, pairs, pt[pairs[:, 0]].astype(np.float32), eta[pairs[:, 0]].astype(np.float32)


def build_graph(
    event,
    method: str = "geometric",
    *,
    phi_slope_max: float = PHI_SLOPE_MAX,
    z0_max: float = Z0_MAX_MM,
    k: int = 8,
    knn_space: str = "eta_phi",
    layer_pairs="geometry",
    skip_check: bool = True,
    pt_min: float | None = None,
    cell_features: bool | None = None,
    detector: Detector = GENERIC_DETECTOR,
) -> EventGraph:
    """The graph of one event (`io.Event` or `simulate_event`'s dict); see the module docstring.

    method: "geometric" (phi_slope_max rad/mm, z0_max mm) or "knn" (k, knn_space "eta_phi" | "xyz").
    layer_pairs: "geometry" | "simple" | [P, 2] global layer indices; skip_check: drop geometric edges that
    skip a layer. pt_min (GeV): true edges of particles with pT <= pt_min get label 0 and train_mask False:
    the signal is the true edges above the cut, and the ones below are neither positive nor negative in
    the loss (Exa.TrkX's pT-cut training). Their hits and edges stay in the graph, since inference cannot
    tell them apart. cell_features: add n_cells and cell_value (default: when the event has cells).
    Events without truth get all-zero labels.
    """
    start_time = time.perf_counter()
    hits, cells, particles, truth = _parts(event)
    x, y, z = (np.asarray(hits[c], np.float64) for c in ("x", "y", "z"))
    r, phi = np.hypot(x, y), np.arctan2(y, x)
    eta = np.arcsinh(z / np.maximum(r, 1e-9))
    layer = global_layer(hits["volume_id"], hits["layer_id"], detector)
    pairs = _resolve_pairs(layer_pairs, detector, z0_max)

    if method == "geometric":
        s, t = _geometric_edges(r, phi, z, layer, pairs, phi_slope_max, z0_max, detector, skip_check)
    elif method == "knn":
        s, t = _knn_edges(_knn_space(x, y, z, r, eta, phi, knn_space), layer, pairs, k)
    else:
        raise ValueError(f"method must be 'geometric' or 'knn', got {method!r}")

    n = len(r)
    columns = [r, phi, z]
    if cell_features is None:
        cell_features = cells is not None
    if cell_features:
        n_cells, value = np.zeros(n), np.zeros(n)
        if cells is not None:
            node, ok = _find(np.asarray(cells["hit_id"], np.int64), np.asarray(hits["hit_id"], np.int64))
            n_cells = np.bincount(node[ok], minlength=n).astype(np.float64)
            value = np.bincount(node[ok], weights=np.asarray(cells["value"], np.float64)[ok], minlength=n)
        columns += [n_cells, value]
    nodes = np.stack(columns, axis=1) / np.array(NODE_SCALES[: len(columns)])
    edges = np.stack(_pair_geometry(r, phi, z, eta, s, t), axis=1) / np.array(EDGE_SCALES)
    edges = np.clip(edges, -EDGE_CLIP, EDGE_CLIP)

    e = len(s)
    labels, train_mask = np.zeros(e, np.float32), np.ones(e, bool)
    edge_pt, edge_eta = np.zeros(e, np.float32), np.zeros(e, np.float32)
    pid, true_pairs, true_pt = np.zeros(n, np.int64), np.zeros((0, 2), np.int64), np.zeros(0, np.float32)
    if truth is not None:
        pid, true_pairs, true_pt, true_eta = _truth_pairs(hits, truth, particles, layer, detector.b_field)
        true_key = np.sort(true_pairs, axis=1) @ np.array([n, 1], np.int64)
        edge_key = np.minimum(s, t).astype(np.int64) * n + np.maximum(s, t)
        index, is_true = _find(edge_key, true_key)
        edge_pt = np.where(is_true, true_pt[index], 0.0).astype(np.float32)
        edge_eta = np.where(is_true, true_eta[index], 0.0).astype(np.float32)
        above = is_true if pt_min is None else is_true & (edge_pt > pt_min)
        labels = above.astype(np.float32)
        train_mask = ~is_true | above
    return EventGraph(
        nodes=nodes.astype(np.float32),
        edges=edges.astype(np.float32),
        senders=s.astype(np.int32),
        receivers=t.astype(np.int32),
        labels=labels,
        train_mask=train_mask,
        edge_pt=edge_pt,
        edge_eta=edge_eta,
        hit_id=np.asarray(hits["hit_id"], np.int64),
        layer=layer,
        particle_id=pid,
        true_pairs=true_pairs.astype(np.int32),
        true_pt=true_pt,
        info=dict(
            method=method,
            phi_slope_max=phi_slope_max,
            z0_max=z0_max,
            k=k,
            knn_space=knn_space,
            layer_pairs=layer_pairs if isinstance(layer_pairs, str) else "custom",
            skip_check=skip_check,
            pt_min=pt_min,
            seconds=time.perf_counter() - start_time,
        ),
    )


def graph_efficiency_purity(graph: EventGraph, pt_min: float | None = None) -> dict[str, float]:
    """Graph construction quality, counting the particles with pT > pt_min (all if None).

    efficiency = true pairs kept / true consecutive pairs in the truth; purity = those true edges / all
    edges; purity_any = edges true for any pT / all edges.
    """
    true_any = graph.edge_pt > 0
    true_cut = true_any if pt_min is None else graph.edge_pt > pt_min
    key = np.minimum(graph.senders, graph.receivers).astype(np.int64) * graph.n_node + np.maximum(
        graph.senders, graph.receivers
    )
    kept = len(np.unique(key[true_cut]))
    total = graph.n_true(pt_min)
    n_edge = graph.n_edge
    return dict(
        n_edges=n_edge,
        n_true_kept=kept,
        n_true_total=total,
        efficiency=kept / total if total else float("nan"),
        purity=float(true_cut.sum()) / n_edge if n_edge else float("nan"),
        purity_any=float(true_any.sum()) / n_edge if n_edge else float("nan"),
    )
