"""Batch-wise NumPy augmentations of ECAL crops [n, 32, 32, 2] (axis 1 = η, axis 2 = φ).

Each image of a batch draws its own random transform; every augmentation can be switched
on or off in `AugmentConfig`. Validation and test batches get `normalise` only.

Which ones respect the detector's symmetry, and hence which are on by default:

* flip in η (rows): on. The barrel is symmetric under z -> −z, and nothing that separates
  electrons from photons (the bend and brem are in φ) depends on the sign of η. (The 3°
  crystal tilt mirrors with η too, so even that is kept.)
* flip in φ (columns): on. It turns the image of an e− into that of an e+ (the magnetic
  bend and the brem tail change side); both are labelled electron, so the label is kept.
  For a sample of one charge only, it shows the model the other charge's images, which are
  physical but absent from such a sample. (It also mirrors the 3° φ tilt of the crystals, a
  sub-crystal effect.)
* 90° turns: off. A turn swaps η and φ, but the physics is not isotropic: the electron's
  bend and bremsstrahlung spread run along φ only, and the magnetic field is along z. A
  turned electron looks like nothing the detector makes.
* shifts: off (max_shift = 0). The crops are centred on the most energetic crystal, at
  [16, 16], in every real and simulated file; a shifted image is off that convention. Shifts
  keep the total energy only while the shifted-out border is empty (zero padding).
* random erasing: off. It removes energy (dead crystals), i.e. changes the shower; a
  regulariser, not a symmetry. The seed used it together with the rest; `AugmentConfig.seed_like()`
  switches everything on as the seed did.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable

import numpy as np

from jaxhep.egamma.config import AugmentConfig


@dataclasses.dataclass(frozen=True)
class ChannelStats:
    """Per-channel normalisation statistics: mean [2] and std [2] (energy, time)."""

    mean: np.ndarray
    std: np.ndarray

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    @classmethod
    def from_dict(cls, d: dict) -> ChannelStats:
        return cls(mean=np.asarray(d["mean"], np.float32), std=np.asarray(d["std"], np.float32))


def _where(mask: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.where(mask[:, None, None, None], a, b)


def flip_eta(images: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
    """Mirror each image in η (axis 1) with probability p. [n, H, W, C] -> same."""
    return _where(rng.random(len(images)) < p, images[:, ::-1], images)


def flip_phi(images: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
    """Mirror each image in φ (axis 2) with probability p. [n, H, W, C] -> same."""
    return _where(rng.random(len(images)) < p, images[:, :, ::-1], images)


def rot90(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Turn each (square) image by a random multiple of 90° in the (η, φ) plane."""
    turns = rng.integers(0, 4, len(images))
    out = images.copy()
    for k in (1, 2, 3):
        sel = turns == k
        if sel.any():
            out[sel] = np.rot90(images[sel], k, axes=(1, 2))
    return out


def shift(images: np.ndarray, rng: np.random.Generator, max_shift: int) -> np.ndarray:
    """Move each image by integer (dη, dφ) in [−max_shift, max_shift], zero padding. Same shape."""
    if max_shift <= 0:
        return images
    n, h, w, _ = images.shape
    s = max_shift
    padded = np.pad(images, ((0, 0), (s, s), (s, s), (0, 0)))
    d_eta, d_phi = rng.integers(-s, s + 1, (2, n))
    rows = (np.arange(h)[None, :] + s - d_eta[:, None])[:, :, None]  # out[i] = in[i - d]
    cols = (np.arange(w)[None, :] + s - d_phi[:, None])[:, None, :]
    return padded[np.arange(n)[:, None, None], rows, cols]


def random_erase(
    images: np.ndarray,
    rng: np.random.Generator,
    prob: float,
    area: tuple[float, float] = (0.02, 0.15),
    aspect: tuple[float, float] = (0.3, 3.3),
) -> np.ndarray:
    """Zero one random rectangle (both channels: dead crystals) in each image with probability prob."""
    n, h, w, _ = images.shape
    frac = rng.uniform(*area, n) * h * w
    ratio = np.exp(rng.uniform(np.log(aspect[0]), np.log(aspect[1]), n))
    eh = np.clip(np.round(np.sqrt(frac * ratio)), 1, h).astype(np.int64)
    ew = np.clip(np.round(np.sqrt(frac / ratio)), 1, w).astype(np.int64)
    top = (rng.random(n) * (h - eh + 1)).astype(np.int64)
    left = (rng.random(n) * (w - ew + 1)).astype(np.int64)
    r, c = np.arange(h)[None, :, None], np.arange(w)[None, None, :]
    mask = (
        (r >= top[:, None, None])
        & (r < (top + eh)[:, None, None])
        & (c >= left[:, None, None])
        & (c < (left + ew)[:, None, None])
    )
    mask &= (rng.random(n) < prob)[:, None, None]
    return np.where(mask[..., None], 0.0, images).astype(images.dtype)


def normalise(images: np.ndarray, stats: ChannelStats) -> np.ndarray:
    """(images − mean) / std per channel, [n, H, W, C] float32."""
    return ((images - stats.mean) / stats.std).astype(np.float32)


def augment(images: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """Apply the switched-on augmentations in a fixed order. [n, 32, 32, 2] -> same."""
    if cfg.flip_eta:
        images = flip_eta(images, rng)
    if cfg.flip_phi:
        images = flip_phi(images, rng)
    if cfg.rot90:
        images = rot90(images, rng)
    if cfg.max_shift > 0:
        images = shift(images, rng, cfg.max_shift)
    if cfg.erase_prob > 0:
        images = random_erase(images, rng, cfg.erase_prob, cfg.erase_area, cfg.erase_aspect)
    return images


class AugmentedReader:
    """Wraps a `read_rows(indices) -> {"image", "label"}`: augments (if cfg) and normalises (if stats).

    Picklable (for grain workers) when `read_rows` is. The random transform of a batch is a
    function of (seed, the batch's row indices), so a resumed run augments exactly as the
    interrupted one did. Use `cfg=None` for validation and test (normalisation only).
    """

    def __init__(
        self,
        read_rows: Callable[[np.ndarray], dict[str, np.ndarray]],
        cfg: AugmentConfig | None,
        stats: ChannelStats | None,
        seed: int = 0,
    ):
        self.read_rows, self.cfg, self.stats, self.seed = read_rows, cfg, stats, seed

    def __call__(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        batch = dict(self.read_rows(indices))
        images = batch["image"]
        if self.cfg is not None:
            key = zlib.crc32(np.ascontiguousarray(indices, np.int64).tobytes())
            images = augment(images, np.random.default_rng([self.seed, key]), self.cfg)
        if self.stats is not None:
            images = normalise(images, self.stats)
        batch["image"] = images
        return batch
