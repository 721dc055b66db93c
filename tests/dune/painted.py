"""Tracks painted on the three planes by the detector geometry alone (no simulation)."""

import numpy as np

from jaxhep.dune import images
from jaxhep.dune.sim import geometry


def track_images(points: np.ndarray, charge: np.ndarray) -> dict[str, np.ndarray]:
    """One image [1, 128, 16] per plane of charges [n] (log-normalised pixel values) at points
    [n, 3] (mm, the image centre at the origin); a pixel keeps its largest charge."""
    out = {}
    for plane in geometry.PLANES:
        tick = np.floor(geometry.tick_coordinate(points) + 64).astype(int)
        channel = np.floor(geometry.wire_coordinate(points, plane) + 8).astype(int)
        image = np.zeros((1, 128, 16), np.float32)
        inside = (tick >= 0) & (tick < 128) & (channel >= 0) & (channel < 16)
        np.maximum.at(image[0], (tick[inside], channel[inside]), charge[inside].astype(np.float32))
        out[f"images_{plane.name.lower()}"] = image
    return out


def volume_image(points: np.ndarray, charge: np.ndarray) -> np.ndarray:
    """The X-plane volume image [1, 128, 64] of charges [n] at points [n, 3] (mm): 4 ticks per row,
    centred on the origin as `track_images` (`images.centred_origin` gives both the same centre)."""
    row = np.floor(geometry.tick_coordinate(points) / images.VOLUME_TICKS_PER_ROW + 64).astype(int)
    channel = np.floor(geometry.wire_coordinate(points, geometry.X) + 32).astype(int)
    image = np.zeros((1, 128, 64), np.float32)
    inside = (row >= 0) & (row < 128) & (channel >= 0) & (channel < 64)
    np.maximum.at(image[0], (row[inside], channel[inside]), charge[inside].astype(np.float32))
    return image


def straight_track_images(
    direction: np.ndarray, length_mm: float = 60.0, rising: bool = False
) -> dict[str, np.ndarray]:
    """One image [1, 128, 16] per plane: a line of charge through the centre along `direction`.

    Uniform charge (0.6 per pixel), or with `rising` growing from 0.2 to 1 along `direction` (the
    Bragg rise of a stopping electron), which tells the track's head from its tail.
    """
    s = np.linspace(-0.5, 0.5, 400)
    points = s[:, None] * length_mm * np.asarray(direction)[None, :]
    charge = 0.6 + 0.8 * s if rising else np.full_like(s, 0.6)
    return track_images(points, charge)


def kinked_track_images(first: np.ndarray, then: np.ndarray, first_mm: float, then_mm: float):
    """A track that starts along unit `first` for first_mm, then scatters onto unit `then` for
    then_mm (uniform charge 0.6), placed so that its charge centroid is near the image centre."""
    a = np.linspace(0, first_mm, 200)[:, None] * first
    b = a[-1] + np.linspace(0, then_mm, 400)[1:, None] * then
    points = np.concatenate([a, b])
    return track_images(points - points.mean(0), np.full(len(points), 0.6))
