"""Event graphs small enough to work out by hand."""

import numpy as np

from jaxhep.tracking.graph import EventGraph
from jaxhep.tracking.sim.propagate import PT_TO_RADIUS_MM


def hand_graph(phi, senders, receivers, train_mask=None, labels=None) -> EventGraph:
    """A graph of hits at these phi (r = index / 10), edge feature = the edge's own index (so a sliced
    graph tells which edges it kept), labels 1 unless given, every edge a true pair."""
    n, e = len(phi), len(senders)
    nodes = np.zeros((n, 3), np.float32)
    nodes[:, 0] = np.arange(n) / 10  # r: tells the nodes apart after slicing
    nodes[:, 1] = np.asarray(phi) / np.pi
    return EventGraph(
        nodes=nodes,
        edges=np.arange(e, dtype=np.float32)[:, None],  # edge feature = original edge index
        senders=np.asarray(senders, np.int32),
        receivers=np.asarray(receivers, np.int32),
        labels=np.ones(e, np.float32) if labels is None else np.asarray(labels, np.float32),
        train_mask=np.ones(e, bool) if train_mask is None else np.asarray(train_mask),
        edge_pt=np.ones(e, np.float32),
        edge_eta=np.zeros(e, np.float32),
        hit_id=np.arange(1, n + 1, dtype=np.int64),
        layer=np.zeros(n, np.int32),
        particle_id=np.arange(n, dtype=np.int64),
        true_pairs=np.stack([np.asarray(senders), np.asarray(receivers)], 1).astype(np.int32),
        true_pt=np.ones(e, np.float32),
    )


# -- helices through the barrel layers of the generic detector, out and (for loopers) back ---------------
B_TESLA = 2.0
BARREL = (  # (volume_id, layer_id, radius mm): pixel and short-strip barrels (sim/detector.py)
    (8, 2, 32.0),
    (8, 4, 72.0),
    (8, 6, 116.0),
    (8, 8, 172.0),
    (13, 2, 260.0),
    (13, 4, 360.0),
    (13, 6, 500.0),
    (13, 8, 660.0),
)
PIXEL_BARREL = BARREL[:4]


def helix_point(pt, phi0, cot, z0, sense, psi):
    """Position and momentum after turning by psi (rad) on the helix from (0, 0, z0) with direction phi0:
    the circle of radius R = pT / (0.3 B) whose centre lies to the left (sense +1, counter-clockwise) or
    right (-1) of the start direction."""
    radius = PT_TO_RADIUS_MM * pt / B_TESLA
    cx, cy = -sense * radius * np.sin(phi0), sense * radius * np.cos(phi0)
    a = np.arctan2(-cy, -cx) + sense * psi
    x, y = cx + radius * np.cos(a), cy + radius * np.sin(a)
    px, py = -sense * pt * np.sin(a), sense * pt * np.cos(a)
    return x, y, z0 + radius * psi * cot, px, py


def track(pid, pt, phi0, cot, z0=0.0, sense=1.0, layers=PIXEL_BARREL):
    """Hits of one particle on the barrel `layers` (a prefix of BARREL) it crosses, out and (for a
    looper that turns before the next layer of BARREL) back: [(volume_id, layer_id, x, y, z, px, py,
    pz)] in flight order."""
    radius = PT_TO_RADIUS_MM * pt / B_TESLA
    out, back = [], []
    for volume_id, layer_id, rho in layers:
        if rho >= 2 * radius:
            break
        psi = 2 * np.arcsin(rho / (2 * radius))
        for psi_, leg in ((psi, out), (2 * np.pi - psi, back)):
            x, y, z, px, py = helix_point(pt, phi0, cot, z0, sense, psi_)
            leg.append((volume_id, layer_id, x, y, z, px, py, pt * cot))
    beyond = [rho for _, _, rho in BARREL if rho > layers[len(out) - 1][2]] if out else []
    turns_inside = bool(beyond) and 2 * radius < beyond[0]
    return out + (back[::-1] if turns_inside else [])


def particle(pid, pt, phi0, cot, z0=0.0, sense=1.0, layers=PIXEL_BARREL):
    """(pid, pt, phi0, cot, z0, hits) of one particle for `event`."""
    return (pid, pt, phi0, cot, z0, track(pid, pt, phi0, cot, z0, sense, layers))


def event(tracks):
    """An event dict (hits, truth, particles) of particles given as `particle` makes them."""
    rows = [(pid, *h) for pid, _, _, _, _, hits in tracks for h in hits]
    n = len(rows)
    col = lambda i, dtype=np.float32: np.array([r[i] for r in rows], dtype)
    hit_id = np.arange(1, n + 1)
    hits = dict(
        hit_id=hit_id,
        x=col(3),
        y=col(4),
        z=col(5),
        volume_id=col(1, np.int32),
        layer_id=col(2, np.int32),
        module_id=np.zeros(n, np.int32),
    )
    truth = dict(
        hit_id=hit_id,
        particle_id=col(0, np.int64),
        tx=col(3),
        ty=col(4),
        tz=col(5),
        tpx=col(6),
        tpy=col(7),
        tpz=col(8),
        weight=np.full(n, 1.0 / max(n, 1)),
    )
    k = len(tracks)
    pt, phi0, cot = (np.array([t[i] for t in tracks]) for i in (1, 2, 3))
    particles = dict(
        particle_id=np.array([t[0] for t in tracks], np.int64),
        particle_type=np.full(k, 211),
        vx=np.zeros(k),
        vy=np.zeros(k),
        vz=np.array([t[4] for t in tracks]),
        px=pt * np.cos(phi0),
        py=pt * np.sin(phi0),
        pz=pt * cot,
        q=np.ones(k, np.int32),
        nhits=np.array([len(t[5]) for t in tracks]),
    )
    return dict(hits=hits, truth=truth, particles=particles)
