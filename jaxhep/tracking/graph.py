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
That straight-line cut is HEP.TrkX's and serves pT >~ 0.5 GeV. With `pt_floor` (GeV) it becomes the
helix from the beam line instead: the circle through the origin and both hits must have a curvature
|kappa| = 2 |x1 y2 - y1 x2| / (r1 r2 |p2 - p1|) of a particle above pt_floor (with KAPPA_MARGIN), and
z, linear in the transverse arc length s along that circle, must extrapolate to |z0| < z0_max at s = 0
(z0 = z1 - s1 (z2 - z1) / (s2 - s1)) for one of the two senses of rotation. Arc lengths along the
circle rather than r keep low-pT particles (a 0.2 GeV particle bends over 0.33 m at 2 T) and the way
back of a looper, whose hits pair with the same adjacent layers in the other order.
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

import jax
import jax.numpy as jnp
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
# The curvature cut of `pt_floor` edges admits this factor above the floor's (hit resolution and
# scattering bend a pair's circle), and the phi window gets PHI_WINDOW_MARGIN rad more on each side.
KAPPA_MARGIN = 1.1
PHI_WINDOW_MARGIN = 0.003
# The helix cut looks for targets slice by slice along the target layer (z on a barrel, r on a disk):
# SEARCH_SLICES slices, and each source's reachable interval widened by SEARCH_MARGIN_MM (resolution,
# scattering and the curvature grid of `_helix_windows`). Only the search: the cuts stay exact.
SEARCH_SLICES = 24
SEARCH_HITS_PER_SLICE = 200
HELIX_CHUNK = 1 << 21  # candidate pairs per call of the jitted helix cut (~40 M at mu = 200, floor 0.2)
SEARCH_MARGIN_MM = 25.0
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


def _resolve_pairs(layer_pairs, detector: Detector, z0_max: float, pt_floor: float | None) -> np.ndarray:
    if isinstance(layer_pairs, str):
        if layer_pairs == "geometry":
            pairs = geometry_layer_pairs(detector, z0_max=max(z0_max, Z0_MAX_MM))
            if pt_floor is None or pt_floor >= 0.5:
                return pairs
            # Lower-pT helices add pairs (a curled track reaches a disk from a pixel barrel layer);
            # the 0.5 GeV table's orientation stays for the pairs both have.
            low = geometry_layer_pairs(detector, pt_min=pt_floor, z0_max=max(z0_max, Z0_MAX_MM))
            n = len(detector.layers)
            known = set((pairs[:, 0] * n + pairs[:, 1]).tolist()) | set(
                (pairs[:, 1] * n + pairs[:, 0]).tolist()
            )
            extra = low[[a * n + b not in known for a, b in low.tolist()]]
            return np.concatenate([pairs, extra]).astype(np.int32)
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


def _phi_windows(r_src, r_lo, r_hi, phi_slope_max, kappa_max):
    """Half-width [n] of the phi window around each source hit at radius r_src [n] on target hits at
    radii r_lo..r_hi (scalars or [n]), in rad.

    Straight cut: phi_slope_max |dr| at the farthest target radius. Helix cut: the largest bend
    |asin(r_t kappa / 2) - asin(r_s kappa / 2)| over the target radii of a circle through the origin
    with |kappa| <= kappa_max that still reaches both radii (kappa <= 2 / r)."""
    if kappa_max is None:
        width = phi_slope_max * np.maximum(np.abs(r_hi - r_src), np.abs(r_lo - r_src))
    else:
        k = np.minimum(kappa_max, 2.0 / np.maximum(r_src, r_hi))
        bend = lambda rho: np.arcsin(np.clip(rho * k / 2.0, 0.0, 1.0))
        width = np.maximum(np.abs(bend(r_hi) - bend(r_src)), np.abs(bend(r_lo) - bend(r_src)))
        width = width + PHI_WINDOW_MARGIN
    return np.minimum(width + 1e-9, np.pi)


def _xp(a):
    """The array module of `a`: jax.numpy inside `_helix_keep`'s jit, NumPy otherwise."""
    return jnp if isinstance(a, jax.Array) else np


def helix_curvature(x1, y1, x2, y2):
    """Signed curvature (1/mm) of the circle through the origin and two points (mm): [n] each -> [n]
    (NumPy or jax arrays).

    The circumscribed circle of the triangle (0, p1, p2): kappa = 2 (p1 x p2) / (|p1| |p2| |p2 - p1|)."""
    xp = _xp(x1)
    chord = xp.maximum(xp.hypot(x2 - x1, y2 - y1), _MIN_DR_MM)
    return 2.0 * (x1 * y2 - y1 * x2) / (xp.hypot(x1, y1) * xp.hypot(x2, y2) * chord)


def helix_z0(x1, y1, z1, x2, y2, z2, kappa):
    """The smaller |z0| (mm) of the two helices from the beam line through both hits: [n] -> [n]
    float32 (NumPy or jax arrays).

    Along the circle of curvature kappa through the origin, a hit at radius r lies at the turning angle
    psi = 2 asin(r |kappa| / 2) on the first half turn, or 2 pi - psi on the second. Which one, for a
    sense of rotation, is told by the side of the hit relative to the direction at the origin (ahead on
    the first half turn). z is linear in the arc s = psi / |kappa|; the two senses of rotation (the two
    charges) give two z0 = z1 - s1 (z2 - z1) / (s2 - s1), and the smaller is kept."""
    xp = _xp(x1)
    # float32: the hits' own precision (1e-3 mm of a 200 mm cut).
    x1, y1, z1, x2, y2, z2 = (xp.asarray(v, xp.float32) for v in (x1, y1, z1, x2, y2, z2))
    k = xp.maximum(xp.abs(xp.asarray(kappa, xp.float32)), 1e-12)
    r1sq, r2sq = x1 * x1 + y1 * y1, x2 * x2 + y2 * y2
    psi1 = 2.0 * xp.arcsin(xp.minimum(xp.sqrt(r1sq) * k / 2.0, 1.0))
    psi2 = 2.0 * xp.arcsin(xp.minimum(xp.sqrt(r2sq) * k / 2.0, 1.0))
    # The circumcentre c of (0, p1, p2) is (cx, cy) / (2 p1 x p2); a counter-clockwise turn about c
    # leaves the origin along (c_y, -c_x), a clockwise one along the opposite, and a hit ahead of
    # that direction lies on the first half turn. Only the signs matter, so c is not divided out.
    cx, cy = y2 * r1sq - y1 * r2sq, x1 * r2sq - x2 * r1sq
    flip = xp.where(x1 * y2 - y1 * x2 < 0, -1.0, 1.0).astype(xp.float32)
    ahead1, ahead2 = (x1 * cy - y1 * cx) * flip, (x2 * cy - y2 * cx) * flip
    best = None
    for sense in (1.0, -1.0):
        s1 = xp.where(sense * ahead1 >= 0, psi1, 2.0 * np.pi - psi1) / k
        s2 = xp.where(sense * ahead2 >= 0, psi2, 2.0 * np.pi - psi2) / k
        ds = s2 - s1
        ds = xp.where(xp.abs(ds) < _MIN_DR_MM, _MIN_DR_MM, ds)
        z0 = xp.abs(z1 - s1 * (z2 - z1) / ds).astype(xp.float32)
        best = z0 if best is None else xp.minimum(best, z0)
    return best


@jax.jit
def _helix_keep(xyz, s, t, kappa_max, z0_max):
    """[n] bool: the candidate pairs s -> t [n] (indices into xyz [N, 3] float32) on a helix from the
    beam line with |kappa| <= kappa_max and |z0| < z0_max. One fused XLA loop: the NumPy version of
    the same formulas makes a dozen temporaries of tens of millions of pairs per mu = 200 event."""
    p1, p2 = xyz.at[s].get(mode="clip"), xyz.at[t].get(mode="clip")
    kappa = helix_curvature(p1[:, 0], p1[:, 1], p2[:, 0], p2[:, 1])
    z0 = helix_z0(p1[:, 0], p1[:, 1], p1[:, 2], p2[:, 0], p2[:, 1], p2[:, 2], kappa)
    return (jnp.abs(kappa) <= kappa_max) & (z0 < z0_max)


def helix_cut(x, y, z, s, t, kappa_max: float, z0_max: float) -> np.ndarray:
    """`_helix_keep` of the pairs s -> t [n] of hits at x, y, z [N] (mm): [n] bool. The pairs go through
    in chunks padded to powers of two, so a handful of shapes is compiled once per process."""
    xyz = jnp.asarray(np.stack([x, y, z], 1).astype(np.float32))
    out = []
    for start in range(0, len(s), HELIX_CHUNK):
        a, b = s[start : start + HELIX_CHUNK], t[start : start + HELIX_CHUNK]
        n = len(a)
        pad = (0, max(1 << int(np.ceil(np.log2(max(n, 1)))), 1 << 12) - n)
        a, b = np.pad(a.astype(np.int32), pad), np.pad(b.astype(np.int32), pad)
        out.append(np.asarray(_helix_keep(xyz, a, b, np.float32(kappa_max), np.float32(z0_max)))[:n])
    return np.concatenate(out) if out else np.zeros(0, bool)


def _phi_candidates(src, tgt, phi, width):
    """Every (source, target) pair with the target's phi within `width` [len(src)] of the source's:
    (s, t, phi of t unwrapped to the source's side) [n] each. Targets are sorted by phi and repeated
    at phi -+ 2 pi, so no window needs wrapping; never an N x N matrix."""
    tgt = tgt[np.argsort(phi[tgt], kind="stable")]
    phi_ext = np.concatenate([phi[tgt] - 2 * np.pi, phi[tgt], phi[tgt] + 2 * np.pi])
    lo = np.searchsorted(phi_ext, phi[src] - width, "left")
    count = np.searchsorted(phi_ext, phi[src] + width, "left") - lo
    total = int(count.sum())
    s = np.repeat(src, count)
    at = np.repeat(lo, count) + np.arange(total) - np.repeat(np.cumsum(count) - count, count)
    return s, np.tile(tgt, 3)[at], phi_ext[at]


def _arcs(r, kappa):
    """Transverse arc lengths (mm) from the origin to radius r [n] along circles of curvature kappa
    [k] through the origin: the first half turn and the way back, [k, n] each (NaN where the circle
    does not reach r; kappa 0: the straight line, no way back)."""
    k = kappa[:, None]
    x = r[None] * k / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        psi = 2.0 * np.arcsin(np.where(x <= 1.0, x, np.nan))
        out = np.where(k > 0, psi / k, r[None] + 0.0 * k)
        back = np.where(k > 0, (2.0 * np.pi - psi) / k, np.nan)
    return out, back


def _helix_windows(r1, z1, target, kappa_max, z0_max, n_kappa: int = 17):
    """Conservative interval [lo, hi] [n] each of the target coordinate (z on a barrel, r on a disk)
    that a helix from the beam line (|z0| < z0_max, |kappa| <= kappa_max, either leg of a looper;
    on a barrel both hits on the same leg) through the source hits (r1, z1) [n] can reach; `target` =
    (is_barrel, r_lo, r_hi, z_lo, z_hi) of
    the target hits. z is linear in the arc s, so z2 = z0 + rho (z1 - z0) with rho = s2 / s1; rho's
    range comes from a grid of curvatures (SEARCH_MARGIN_MM widens the result for what lies between)."""
    barrel, r_lo, r_hi, z_lo, z_hi = target
    kappa = np.linspace(0.0, kappa_max, n_kappa)
    s1_out, s1_back = _arcs(r1, kappa)
    if barrel:
        rhos = []
        for r2 in (r_lo, r_hi):
            s2_out, s2_back = _arcs(np.full_like(r1, r2), kappa)
            # Both hits on the way out or both on the way back: a track that turned between them
            # would have crossed the target barrel on its way out, and that crossing is the pair.
            rhos += [s2_out / s1_out, s2_back / s1_back]
        rho = np.stack(rhos)  # [2 legs x 2 radii, k, n]
        lo, hi = np.nanmin(rho, axis=(0, 1)), np.nanmax(rho, axis=(0, 1))
        corners = [z0 + q * (z1 - z0) for z0 in (-z0_max, z0_max) for q in (lo, hi)]
        return np.min(corners, 0) - SEARCH_MARGIN_MM, np.max(corners, 0) + SEARCH_MARGIN_MM
    # Disk: rho = (z2 - z0) / (z1 - z0) is bounded only when z1 - z0 keeps its sign over z0.
    bounded = np.abs(z1) > z0_max
    with np.errstate(divide="ignore", invalid="ignore"):
        q = [(z2 - z0) / (z1 - z0) for z0 in (-z0_max, z0_max) for z2 in (z_lo, z_hi)]
    q_lo, q_hi = np.maximum(np.min(q, 0), 0.0), np.max(q, 0)
    lo, hi = np.full(len(r1), np.inf), np.full(len(r1), -np.inf)
    k = kappa[:, None]

    def chord(s):
        # The radius after an arc s is (2 / kappa) |sin(kappa s / 2)|: its extremes on [s_lo, s_hi]
        # are at the ends, at the top of the circle (2 / kappa) or back at the axis (0).
        return np.where(k > 0, 2.0 / np.where(k > 0, k, 1.0) * np.abs(np.sin(k * s / 2.0)), s)

    for s1 in (s1_out, s1_back):
        s_lo, s_hi = q_lo * s1, q_hi * s1  # [k, n]: the arc to the disk
        with np.errstate(divide="ignore", invalid="ignore"):
            ends = np.stack([chord(s_lo), chord(s_hi)])
            turn_lo, turn_hi = np.floor(k * s_lo / np.pi), np.floor(k * s_hi / np.pi)
            top = (k > 0) & (turn_hi > turn_lo)  # passes a multiple of pi: the top or the axis
            r_min = np.where(top, 0.0, np.fmin(ends[0], ends[1]))
            r_max = np.where(top, 2.0 / np.where(k > 0, k, 1.0), np.fmax(ends[0], ends[1]))
        lo = np.fmin(lo, np.nanmin(r_min, 0))
        hi = np.fmax(hi, np.nanmax(r_max, 0))
    lo = np.where(bounded, lo - SEARCH_MARGIN_MM, -np.inf)
    hi = np.where(bounded, hi + SEARCH_MARGIN_MM, np.inf)
    return lo, hi


def _helix_candidates(x, y, z, r, phi, src, tgt, kappa_max, z0_max, barrel_t):
    """(s, t) pairs of source and target hits whose target lies in the source's phi window and in its
    helix window along the target layer (`_helix_windows`), found per slice of that coordinate."""
    u = z if barrel_t else r
    target = (barrel_t, r[tgt].min(), r[tgt].max(), z[tgt].min(), z[tgt].max())
    lo, hi = _helix_windows(r[src], z[src], target, kappa_max, z0_max)
    # Slices pay off on crowded layers; a sparse one is searched whole (no Python loop to pay for).
    n_slices = int(np.clip(len(tgt) // SEARCH_HITS_PER_SLICE, 1, SEARCH_SLICES))
    edges = np.linspace(u[tgt].min(), u[tgt].max() + 1e-6, n_slices + 1)
    slice_of = np.clip(np.searchsorted(edges, u[tgt], "right") - 1, 0, n_slices - 1)
    out_s, out_t = [], []
    for k in range(n_slices):
        sel = (lo <= edges[k + 1]) & (hi >= edges[k])
        in_slice = tgt[slice_of == k]
        if not sel.any() or not len(in_slice):
            continue
        # The phi window from the radii the source can reach in this slice (on a disk, the slice's
        # radii within its helix window; on a barrel, the layer's radii).
        r_lo, r_hi = r[in_slice].min(), r[in_slice].max()
        if not barrel_t:
            r_lo, r_hi = np.maximum(r_lo, lo[sel]), np.minimum(r_hi, hi[sel])
        width = _phi_windows(r[src[sel]], r_lo, r_hi, None, kappa_max)
        s, t, _ = _phi_candidates(src[sel], in_slice, phi, width)
        out_s.append(s)
        out_t.append(t)
    if not out_s:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(out_s), np.concatenate(out_t)


def _geometric_edges(x, y, z, r, phi, layer, pairs, phi_slope_max, kappa_max, z0_max, detector, skip_check):
    """Edges (senders, receivers) over the layer pairs passing the phi-slope (kappa_max None) or
    helix (curvature <= kappa_max, 1/mm) cuts and the z0 cut."""
    between = _between(detector, pairs) if skip_check else [()] * len(pairs)
    barrel = _layer_arrays(detector)[0]
    order = np.argsort(layer, kind="stable")
    bounds = np.searchsorted(layer[order], np.arange(layer.max(initial=-1) + 2))
    found = []  # (s, t, the layers the pair's edges may not skip)
    for (a, b), others in zip(pairs, between):
        if max(a, b) + 1 >= len(bounds):
            continue
        src, tgt = order[bounds[a] : bounds[a + 1]], order[bounds[b] : bounds[b + 1]]
        if len(src) == 0 or len(tgt) == 0:
            continue
        if kappa_max is None:
            width = _phi_windows(r[src], r[tgt].min(), r[tgt].max(), phi_slope_max, None)
            s, t, phi_t = _phi_candidates(src, tgt, phi, width)
            # The cuts multiplied through by |dr| (no division): |dphi| < max |dr|,
            # |z1 dr - r1 dz| < max |dr|.
            rs, zs = r[s], z[s]
            dr = r[t] - rs
            abs_dr = np.abs(dr)
            keep = (np.abs(phi_t - phi[s]) < phi_slope_max * abs_dr) & (
                np.abs(zs * dr - rs * (z[t] - zs)) < z0_max * abs_dr
            )
            s, t = s[keep], t[keep]
        else:
            s, t = _helix_candidates(x, y, z, r, phi, src, tgt, kappa_max, z0_max, barrel[b])
        found.append((s, t, others))
    if kappa_max is not None and found:
        # Every pair's candidates through the jitted helix cut at once.
        keep = helix_cut(x, y, z, *(np.concatenate([f[i] for f in found]) for i in (0, 1)), kappa_max, z0_max)
        cuts = np.cumsum([len(f[0]) for f in found])[:-1]
        found = [(s[k], t[k], o) for (s, t, o), k in zip(found, np.split(keep, cuts))]
    senders, receivers = [], []
    for s, t, others in found:
        if len(others):
            keep = ~_skips_a_layer(r, z, s, t, others, detector)
            s, t = s[keep], t[keep]
        senders.append(s)
        receivers.append(t)
    if not senders:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(senders), np.concatenate(receivers)


def hit_positions(graph: EventGraph) -> np.ndarray:
    """The hits' x, y, z (mm) [N, 3] float64, from the graph's (scaled) r, phi, z node features."""
    r, phi, z = (graph.nodes[:, i].astype(np.float64) * NODE_SCALES[i] for i in range(3))
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], 1)


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
    pt_floor: float | None = None,
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

    method: "geometric" (phi_slope_max rad/mm, or the helix cut down to pt_floor GeV when that is given;
    z0_max mm) or "knn" (k, knn_space "eta_phi" | "xyz").
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
    if pt_floor is not None and pt_floor <= 0:
        raise ValueError(f"pt_floor must be positive (GeV), got {pt_floor}")
    pairs = _resolve_pairs(layer_pairs, detector, z0_max, pt_floor if method == "geometric" else None)

    if method == "geometric":
        kappa_max = None
        if pt_floor is not None:
            kappa_max = KAPPA_MARGIN * detector.b_field / (PT_TO_RADIUS_MM * pt_floor)
        s, t = _geometric_edges(
            x, y, z, r, phi, layer, pairs, phi_slope_max, kappa_max, z0_max, detector, skip_check
        )
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
            pt_floor=pt_floor,
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
