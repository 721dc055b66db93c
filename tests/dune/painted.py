"""Straight tracks painted on the three planes by the detector geometry alone (no simulation)."""

import numpy as np

from jaxhep.dune.sim import geometry


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
    out = {}
    for plane in geometry.PLANES:
        tick = np.floor(geometry.tick_coordinate(points) + 64).astype(int)
        channel = np.floor(geometry.wire_coordinate(points, plane) + 8).astype(int)
        image = np.zeros((1, 128, 16), np.float32)
        inside = (tick >= 0) & (tick < 128) & (channel >= 0) & (channel < 16)
        np.maximum.at(image[0], (tick[inside], channel[inside]), charge[inside].astype(np.float32))
        out[f"images_{plane.name.lower()}"] = image
    return out
