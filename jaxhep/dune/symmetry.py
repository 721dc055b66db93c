"""Exact symmetries of the three-plane images, as an augmentation of direction training batches.

Each plane's channel measures the pitch coordinate p = y * (-sin a) + z * cos a (`geometry`), with
a = +35.7 deg for U, -35.7 deg for V and 0 for X:
- y -> -y turns U's pitch coordinate into V's and leaves X's (z) alone: swap the U and V images,
  negate the direction's y.
- (y, z) -> (-y, -z), a half turn about the drift axis, negates every plane's pitch coordinate:
  reverse the channel axis of all three images, negate the direction's y and z.
Neither touches the drift axis (time): its reversal is not a symmetry of real data, whose induction
planes see bipolar pulses. The ES and CC electron directions are isotropic (the supernova can be
anywhere), so mirrored events are as likely as the originals: four events for each one simulated.

One approximation: images are centred on their cluster's box with integer division (`images.
centred_origin`), so a mirrored cluster whose box spans an even number of channels sits one channel
off the centre its own simulation would give it (a 4.7 mm shift of the whole crop).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np


def mirror(batch: dict[str, np.ndarray], swap_uv: np.ndarray, half_turn: np.ndarray) -> dict[str, np.ndarray]:
    """The batch seen through y -> -y (rows where swap_uv) and then (y, z) -> (-y, -z) (where half_turn).

    batch: images_u / images_v / images_x [B, T, C] (any of them; channel axis last) and
    direction [B, 3] (x, y, z); other keys pass through. swap_uv, half_turn: bool [B].
    """
    out = dict(batch)
    swap = swap_uv[:, None, None]
    if "images_u" in batch and "images_v" in batch:
        out["images_u"] = np.where(swap, batch["images_v"], batch["images_u"])
        out["images_v"] = np.where(swap, batch["images_u"], batch["images_v"])
    for key in ("images_u", "images_v", "images_x"):
        if key in out:
            out[key] = np.where(half_turn[:, None, None], out[key][..., ::-1], out[key])
    if "direction" in batch:
        sign = np.ones(batch["direction"].shape, batch["direction"].dtype)
        sign[:, 1] = np.where(swap_uv ^ half_turn, -1, 1)
        sign[:, 2] = np.where(half_turn, -1, 1)
        out["direction"] = batch["direction"] * sign
    return out


class SymmetryAugmented:
    """Wraps a direction `read_rows(positions)`: each event mirrored by one of the four symmetries.

    The choice is a function of (seed, the batch's positions), so a resumed run sees the same
    batches; the positions of a shuffled batch differ between epochs, so an event's mirror does
    too. Picklable (grain workers) when `read_rows` is.
    """

    def __init__(self, read_rows: Callable[[np.ndarray], dict], seed: int = 0):
        self.read_rows, self.seed = read_rows, seed

    def __call__(self, positions: np.ndarray) -> dict[str, np.ndarray]:
        batch = self.read_rows(positions)
        key = zlib.crc32(np.ascontiguousarray(positions, np.int64).tobytes())
        swap_uv, half_turn = np.random.default_rng([self.seed, key]).random((2, len(positions))) < 0.5
        return mirror(batch, swap_uv, half_turn)
