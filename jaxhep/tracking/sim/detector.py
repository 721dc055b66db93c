"""The ACTS "GenericDetector" of the TrackML challenge, as plain data.

Sources (all lengths in mm):
- layer positions, barrel half-lengths and the endcap |z| are those of the TrackML paper
  (arXiv:1904.06778) and the ACTS GenericDetector;
- module binning (phi x z modules per barrel layer, phi modules per endcap ring), readout pitches,
  sensor thicknesses and the support material per layer come from ACTS
  `Examples/Detectors/GenericDetector` (`BuildGenericDetector.hpp` / `GenericDetectorBuilder.cpp`);
- silicon radiation length X0 = 95.7 mm and beryllium X0 = 352.8 mm are the values used there too
  (PDG: 93.7 mm and 352.8 mm).

The model is simplified on purpose: a barrel layer is an exact cylinder and an endcap layer an exact
disk (ACTS staggers and tilts its planar modules by a few mm). Module ids are bins in (phi, z) for the
barrel and in (ring, phi) for the endcaps, with the ACTS bin counts.

Layer ids follow TrackML: even numbers 2, 4, ... increasing with the radius in a barrel and with the
signed z in an endcap, so layer 2 of the negative endcap (volume 7) is the one farthest from the
interaction point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Solenoid field along +z, tesla (TrackML paper, arXiv:1904.06778).
B_FIELD_T = 2.0

# Radiation lengths in mm, as in ACTS GenericDetectorBuilder (Material(X0, L0, A, Z, rho)).
X0_SILICON_MM = 95.7
X0_BERYLLIUM_MM = 352.8


@dataclass(frozen=True)
class Technology:
    """A sensor type: pixel, short strip or long strip.

    `pitch_u` is the cell size across (the r-phi direction), `pitch_v` along (z in the barrel, r in
    the endcaps); for strips `pitch_v` is the strip (or "strixel") length. A binary readout measures
    a uniform distribution over one cell, so the resolution is pitch / sqrt(12).
    """

    name: str
    pitch_u: float
    pitch_v: float
    thickness: float

    @property
    def resolution_u(self) -> float:
        return self.pitch_u / math.sqrt(12.0)

    @property
    def resolution_v(self) -> float:
        return self.pitch_v / math.sqrt(12.0)


# ACTS readout bins: pixel 336 x 1280 cells on 16.8 x 72 mm modules; short strips 600 x 90 on
# 48 x 108 mm ("80 um pitch", "1.2 mm strixels"); long strips 400 x 10 ("120 um pitch", 10.8 mm).
# Sensor thicknesses 0.15 / 0.25 / 0.35 mm (kPixelCentralModuleT etc.).
PIXEL = Technology("pixel", pitch_u=16.8 / 336, pitch_v=72.0 / 1280, thickness=0.15)
SHORT_STRIP = Technology("short_strip", pitch_u=48.0 / 600, pitch_v=108.0 / 90, thickness=0.25)
LONG_STRIP = Technology("long_strip", pitch_u=48.0 / 400, pitch_v=108.0 / 10, thickness=0.35)


@dataclass(frozen=True)
class BarrelLayer:
    """A sensitive cylinder of `radius`, |z| <= `half_length`, with `n_phi` x `n_z` modules."""

    volume_id: int
    layer_id: int
    radius: float
    half_length: float
    technology: Technology
    x_over_x0: float
    n_phi: int
    n_z: int


@dataclass(frozen=True)
class EndcapLayer:
    """A sensitive disk at signed `z`, r_min <= r <= r_max, with rings of `ring_phi_bins` modules.

    The rings split [r_min, r_max] into equal radial bands, innermost first.
    """

    volume_id: int
    layer_id: int
    z: float
    r_min: float
    r_max: float
    technology: Technology
    x_over_x0: float
    ring_phi_bins: tuple[int, ...]


@dataclass(frozen=True)
class PassiveCylinder:
    """Material without readout (beam pipe, pixel support tube): scatters, leaves no hit."""

    name: str
    radius: float
    half_length: float
    x_over_x0: float


@dataclass(frozen=True)
class Detector:
    """All surfaces, the field, and the outer envelope where particles leave the tracker."""

    barrel: tuple[BarrelLayer, ...]
    endcaps: tuple[EndcapLayer, ...]
    passive: tuple[PassiveCylinder, ...]
    b_field: float = B_FIELD_T
    envelope_r: float = 1100.0
    envelope_z: float = 3000.0

    @property
    def layers(self) -> tuple[BarrelLayer | EndcapLayer, ...]:
        """Sensitive layers, barrel first, in the order used for `layer_index` elsewhere."""
        return self.barrel + self.endcaps


def _material(technology: Technology, support_mm: float) -> float:
    """x/X0 of one layer: the sensor plus the layer's support structure, both silicon-equivalent."""
    return (technology.thickness + support_mm) / X0_SILICON_MM


def _barrel(volume_id, radii, half_length, technology, support_mm, binning) -> list[BarrelLayer]:
    return [
        BarrelLayer(
            volume_id, 2 * (i + 1), r, half_length, technology, _material(technology, support_mm), n_phi, n_z
        )
        for i, (r, (n_phi, n_z)) in enumerate(zip(radii, binning, strict=True))
    ]


def _endcap_pair(volumes, abs_z, r_min, r_max, technology, support_mm, rings) -> list[EndcapLayer]:
    """Both endcaps of one technology; layer ids increase with the signed z in each volume."""
    neg_volume, pos_volume = volumes
    x0 = _material(technology, support_mm)
    neg = sorted(-z for z in abs_z)
    pos = sorted(abs_z)
    layers = [
        EndcapLayer(neg_volume, 2 * (i + 1), z, r_min, r_max, technology, x0, rings)
        for i, z in enumerate(neg)
    ]
    layers += [
        EndcapLayer(pos_volume, 2 * (i + 1), z, r_min, r_max, technology, x0, rings)
        for i, z in enumerate(pos)
    ]
    return layers


def generic_detector() -> Detector:
    """The TrackML detector (the TrackML paper's layer table; material and binning from ACTS)."""
    # Support material per layer (ACTS layer MaterialProperties, silicon): pixel 1.5 mm, short-strip
    # barrel 2 mm / endcap 2.5 mm, long-strip barrel 2.5 mm / endcap 3.5 mm.
    barrel = (
        _barrel(8, (32.0, 72.0, 116.0, 172.0), 492.0, PIXEL, 1.5, ((16, 14), (32, 14), (52, 14), (78, 14)))
        + _barrel(
            13,
            (260.0, 360.0, 500.0, 660.0),
            1085.0,
            SHORT_STRIP,
            2.0,
            ((40, 21), (56, 21), (78, 21), (102, 21)),
        )
        + _barrel(17, (820.0, 1020.0), 1080.0, LONG_STRIP, 2.5, ((120, 21), (152, 21)))
    )
    strip_z = (1220.0, 1500.0, 1800.0, 2150.0, 2550.0, 2950.0)
    endcaps = (
        _endcap_pair(
            (7, 9), (600.0, 700.0, 820.0, 960.0, 1100.0, 1300.0, 1500.0), 32.0, 172.0, PIXEL, 1.5, (40, 68)
        )
        + _endcap_pair((12, 14), strip_z, 260.0, 660.0, SHORT_STRIP, 2.5, (54, 56, 60))
        + _endcap_pair((16, 18), strip_z, 820.0, 1020.0, LONG_STRIP, 3.5, (48, 50))
    )
    passive = (
        # ACTS: beryllium beam pipe r = 19 mm, 0.8 mm thick; pixel support tube r = 200 mm, 1.8 mm.
        PassiveCylinder("beam_pipe", 19.0, 3000.0, 0.8 / X0_BERYLLIUM_MM),
        PassiveCylinder("pixel_support_tube", 200.0, 2800.0, 1.8 / X0_BERYLLIUM_MM),
    )
    return Detector(tuple(barrel), tuple(endcaps), passive)


GENERIC_DETECTOR = generic_detector()
