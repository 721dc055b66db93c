"""Wire-plane projection: straight tracks light the wires and ticks that the geometry predicts."""

import numpy as np
import pytest

from jaxhep.dune.sim import geometry
from jaxhep.dune.sim.geometry import PLANES, TICK_MM, U, V, X, project
from jaxhep.dune.sim.readout import ReadoutConfig, trigger_primitives
from jaxhep.dune.sim.transport import PRIMARY, Segments

SIN, COS = np.sin(np.deg2rad(35.7)), np.cos(np.deg2rad(35.7))  # 0.5835, 0.8121


def _track(start, direction, length_mm, step_mm=0.05):
    """Points every 0.05 mm along a straight track, [k, 3]."""
    direction = np.asarray(direction, float) / np.linalg.norm(direction)
    s = np.arange(0.0, length_mm, step_mm)
    return np.asarray(start, float) + s[:, None] * direction


def _lit(points, plane):
    channel, tick = project(points, plane)
    return np.unique(channel), np.unique(tick)


START = (400.0, 13.0, 27.0)  # off any wire boundary


def test_wire_and_pitch_directions():
    for plane in PLANES:
        assert np.isclose(plane.wire_direction @ plane.pitch_direction, 0.0)
        assert np.isclose(np.linalg.norm(plane.pitch_direction), 1.0)
        assert plane.wire_direction[0] == 0.0  # wires lie in the y-z plane
    # U and V are mirror images about the collection wires, at +-35.7 degrees to them.
    assert np.isclose(U.wire_direction @ X.wire_direction, COS)
    assert np.isclose(V.wire_direction @ X.wire_direction, COS)
    assert np.allclose(U.pitch_direction * [1, -1, 1], V.pitch_direction)
    assert (U.pitch_mm, V.pitch_mm, X.pitch_mm, TICK_MM) == (4.669, 4.669, 4.79, 0.8)


def test_track_along_the_drift_lights_one_channel_per_plane_over_many_ticks():
    # 80 mm along x = 80 / 0.8 = 100 ticks; no motion in y-z, so one wire per plane.
    pts = _track(START, (1, 0, 0), 80.0)
    for plane in PLANES:
        channels, ticks = _lit(pts, plane)
        assert channels.size == 1
        assert ticks.size in (100, 101)


def test_track_along_the_collection_wires():
    # Along y at fixed x: one X wire and one tick; U and V wires are crossed at
    # |d . pitch| / pitch = sin(35.7) / 4.669 = 0.1250 per mm -> 12.5 channels over 100 mm.
    pts = _track(START, (0, 1, 0), 100.0)
    channels, ticks = _lit(pts, X)
    assert channels.size == 1 and ticks.size == 1
    for plane in (U, V):
        channels, _ = _lit(pts, plane)
        assert channels.size in (12, 13, 14)
        assert np.isclose(geometry.channel_rate(np.array([0.0, 1.0, 0.0]), plane), SIN / 4.669)
    # Add drift: (1, 1, 0)/sqrt(2) still lights one X wire, now over 100 * 0.7071 / 0.8 = 88.4 ticks.
    channels, ticks = _lit(_track(START, (1, 1, 0), 100.0), X)
    assert channels.size == 1 and ticks.size in (88, 89, 90)


def test_track_perpendicular_to_the_u_wires():
    # Along U's pitch direction: 1 / 4.669 = 0.2142 U channels per mm -> 21.4 over 100 mm;
    # X: cos(35.7) / 4.79 = 0.1695 per mm -> 17.0; V: cos(71.4) / 4.669 = 0.0683 per mm -> 6.8.
    pts = _track(START, U.pitch_direction, 100.0)
    expected = {"U": 100 / 4.669, "X": 100 * COS / 4.79, "V": 100 * np.cos(np.deg2rad(71.4)) / 4.669}
    for plane in PLANES:
        channels, ticks = _lit(pts, plane)
        span = channels.max() - channels.min()  # a span of 6.8 pitches touches 7 or 8 wires
        assert np.floor(expected[plane.name]) <= span <= np.ceil(expected[plane.name]), plane.name
        assert ticks.size == 1  # no drift component
        # The channel number grows at the expected rate along the track.
        c = geometry.wire_coordinate(pts, plane)
        assert np.isclose(abs(c[-1] - c[0]) / (len(pts) - 1) / 0.05, expected[plane.name] / 100, rtol=1e-6)


@pytest.mark.parametrize("direction", [(0, 1, 0), (1, 0, 0), tuple(U.pitch_direction)])
def test_straight_mip_track_through_the_readout(direction):
    """The full readout (charge, shaping, thresholds) finds TPs on the wires the geometry predicts."""
    # Start 20 mm from the anode (diffusion 0.17 mm) in the middle of a wire on each plane: U and V
    # coordinates (-+0.5835 y + 0.8121 z) / 4.669 = 4.5 at y = 0, z = 25.872; X: z / 4.79 = 5.40.
    pts = _track((20.0, 0.0, 25.872), direction, 100.0, step_mm=2.0)
    seg = Segments(
        start=pts[:-1],
        end=pts[1:],
        energy=np.full(len(pts) - 1, 2.0 * 0.21),  # 2.1 MeV/cm
        owner=np.zeros(len(pts) - 1, np.int64),
        source=np.full(len(pts) - 1, PRIMARY, np.int8),
        path=np.full(len(pts) - 1, np.nan),
    )
    tps = trigger_primitives(np.random.default_rng(0), seg, ReadoutConfig())
    for plane in PLANES:
        on = tps["plane"] == plane.index
        expected, _ = _lit(pts, plane)
        found = np.unique(tps["channel"][on])
        # Every wire the track crosses is above threshold but perhaps the two at its ends (a short
        # piece of track), and nothing lights beyond them (diffusion moves charge by 0.17 mm).
        assert expected.min() - 1 <= found.min() and found.max() <= expected.max() + 1, plane.name
        assert set(expected[1:-1]) <= set(found), plane.name
        assert np.all(tps["primary_fraction"][on] == 1.0)
    if direction == (1, 0, 0):
        # 100 mm of drift = 125 ticks: one TP per plane. Its plateau is 0.168 MeV per tick x 900 (U, V)
        # or 3600 (X) ADC per MeV = 151 / 605 ADC, so it stays over the 70 / 60 ADC threshold for
        # about 125 ticks, give or take the shaping's rise and fall.
        assert sorted(tps["plane"]) == [0, 1, 2]
        assert np.all(np.abs(tps["time_over_threshold"] - 125) <= 8)
