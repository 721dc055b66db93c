"""Wire planes and drift of a DUNE far-detector anode plane assembly (APA): 3-D points to (channel, tick).

Coordinates, in mm: x = drift distance from the anode (the wire planes), y = vertical, z = along
the beam. The collection wires (plane X) run along y, so an X channel measures z. The induction
wires U and V are at +-35.7 degrees to the collection wires, in the y-z plane; a channel of a plane
measures the distance along that plane's *pitch direction* (in the y-z plane, perpendicular to its
wires). The drift time measures x.

Numbers: the DUNE FD technical design report, Vol. IV: U, V pitch 4.669 mm, X pitch 4.79 mm,
drift speed 1.6 mm/µs at 500 V/cm, one readout tick = 0.5 µs, hence 0.8 mm of drift per tick.

Simplifications: one drift volume (x >= 0 drifts towards the planes at x = 0; real APAs read two,
mirrored), no wrapping of induction wires around the APA frame, all three planes at x = 0 (their
few-mm spacing is a constant time offset that centred images do not see).
"""

from __future__ import annotations

import dataclasses

import numpy as np

DRIFT_SPEED_MM_PER_US = 1.6  # at 500 V/cm (DUNE FD TDR Vol. IV)
TICK_US = 0.5  # readout sampling period (DUNE FD TDR Vol. IV)
TICK_MM = DRIFT_SPEED_MM_PER_US * TICK_US  # 0.8 mm of drift per tick


@dataclasses.dataclass(frozen=True)
class WirePlane:
    """One wire plane: wires at `angle_deg` to the collection wires (the y axis), `pitch_mm` apart."""

    name: str
    index: int  # 0, 1, 2 for U, V, X: the order of planes in every array of this package
    angle_deg: float
    pitch_mm: float

    @property
    def wire_direction(self) -> np.ndarray:
        """Unit vector along the wires, [3] in (x, y, z)."""
        a = np.deg2rad(self.angle_deg)
        return np.array([0.0, np.cos(a), np.sin(a)])

    @property
    def pitch_direction(self) -> np.ndarray:
        """Unit vector across the wires in the wire plane (channel number grows along it), [3]."""
        a = np.deg2rad(self.angle_deg)
        return np.array([0.0, -np.sin(a), np.cos(a)])


U = WirePlane("U", 0, +35.7, 4.669)  # induction (DUNE FD TDR Vol. IV)
V = WirePlane("V", 1, -35.7, 4.669)  # induction
X = WirePlane("X", 2, 0.0, 4.79)  # collection
PLANES: tuple[WirePlane, ...] = (U, V, X)


def wire_coordinate(points: np.ndarray, plane: WirePlane) -> np.ndarray:
    """Continuous channel coordinate of points [..., 3] (mm) on `plane`, [...] in units of the pitch.

    Channel c collects the charge with c <= coordinate < c + 1.
    """
    return np.asarray(points)[..., 1:] @ plane.pitch_direction[1:] / plane.pitch_mm


def tick_coordinate(points: np.ndarray) -> np.ndarray:
    """Continuous drift time of points [..., 3] (mm), [...] in ticks (0.8 mm each), t = 0 at the anode."""
    return np.asarray(points)[..., 0] / TICK_MM


def project(points: np.ndarray, plane: WirePlane) -> tuple[np.ndarray, np.ndarray]:
    """Integer (channel, tick) of points [..., 3] (mm) on `plane`, each [...] int64."""
    channel = np.floor(wire_coordinate(points, plane)).astype(np.int64)
    tick = np.floor(tick_coordinate(points)).astype(np.int64)
    return channel, tick


def channel_rate(direction: np.ndarray, plane: WirePlane) -> np.ndarray:
    """Channels crossed per mm of path along unit `direction` [..., 3]: |d . pitch_direction| / pitch."""
    return np.abs(np.asarray(direction) @ plane.pitch_direction) / plane.pitch_mm


def tick_rate(direction: np.ndarray) -> np.ndarray:
    """Ticks crossed per mm of path along unit `direction` [..., 3]: |d_x| / 0.8 mm."""
    return np.abs(np.asarray(direction)[..., 0]) / TICK_MM
