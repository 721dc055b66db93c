"""From energy deposits to trigger primitives: ionisation, drift, wires, shaping and hit finding.

Each deposit segment becomes charge packets 0.5 mm apart (closer than the 0.8 mm tick), each with
energy x R / W electrons (R from the modified box model at the segment's dE/dx, W = 23.6 eV),
attenuated by the electron lifetime and displaced by diffusion over its drift time. Packets are
binned per (event, plane, channel, tick), the charge of each channel is convolved with the
shaping response and scaled to ADC counts, and every run of samples above the plane's threshold
is one trigger primitive (TP), as the DUNE DAQ hit finder makes them:

    channel, time_start, time_over_threshold, time_peak, adc_integral, adc_peak

All of it is vectorised over every event of a batch: the sparse samples of all channels are laid
out back to back in one buffer, so the convolution is `kernel_length` vector additions.

Simplifications: every plane sees a unipolar pulse (the induction planes' bipolar signal is
represented by its lower gain and higher threshold), noise is added only where there is signal
(noise-only TPs are not made), no dead channels and no space charge.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxhep.dune.sim import argon, geometry
from jaxhep.dune.sim.transport import PRIMARY, Segments


@dataclasses.dataclass(frozen=True)
class ReadoutConfig:
    """Drift, electronics and hit-finding constants."""

    packet_spacing_mm: float = 0.5
    max_packets: int = 8  # per segment (segments are at most 3 mm)
    drift_length_mm: float = 3500.0  # DUNE FD horizontal drift, APA to cathode (TDR Vol. IV)
    lifetime_us: float = 10_000.0  # electron lifetime, assumed (DUNE requires > 3 ms)
    diffusion_long_cm2_s: float = 7.2  # DUNE FD TDR Vol. IV
    diffusion_trans_cm2_s: float = 12.0  # DUNE FD TDR Vol. IV
    # ADC x tick per MeV deposited by a MIP (R = 0.7); the defaults of online-pointing-utils'
    # parameters/conversion.dat: collection 3600, induction 900.
    adc_per_mev: tuple[float, float, float] = (900.0, 900.0, 3600.0)  # U, V, X
    # TP thresholds in ADC counts (online-pointing-utils parameters/display.dat defaults).
    threshold: tuple[float, float, float] = (70.0, 70.0, 60.0)
    noise_adc: tuple[float, float, float] = (4.0, 4.0, 3.0)  # assumed RMS after noise filtering
    shaping_tau_ticks: float = 2.0  # (t/tau)^2 exp(-t/tau): peaks at 4 ticks = 2 us (FE peaking time)
    kernel_length: int = 16


def shaping_kernel(config: ReadoutConfig) -> np.ndarray:
    """Unit-area shaped response to a charge arriving in one tick, [kernel_length]."""
    t = np.arange(config.kernel_length) + 0.5
    k = (t / config.shaping_tau_ticks) ** 2 * np.exp(-t / config.shaping_tau_ticks)
    return k / k.sum()


def charge_packets(rng: np.random.Generator, seg: Segments, config: ReadoutConfig) -> dict[str, np.ndarray]:
    """Ionisation charge along the segments after recombination, lifetime and diffusion.

    Returns dict of position [p, 3] (mm, at the anode time-equivalent), charge [p] (electrons),
    owner [p], primary [p] (bool: from the PRIMARY source).
    """
    delta = seg.end - seg.start
    length = np.linalg.norm(delta, axis=1)
    n = np.clip(np.ceil(length / config.packet_spacing_mm).astype(np.int64), 1, config.max_packets)
    electrons = seg.energy * argon.recombination(seg.energy / np.maximum(length, 0.1)) / argon.W_ION_MEV
    row = np.repeat(np.arange(len(seg)), n)
    k = np.arange(len(row)) - np.repeat(np.cumsum(n) - n, n)
    frac = (k + 0.5) / n[row]
    pos = seg.start[row] + frac[:, None] * delta[row]
    drift_us = np.maximum(pos[:, 0], 0.0) / geometry.DRIFT_SPEED_MM_PER_US
    charge = electrons[row] / n[row] * np.exp(-drift_us / config.lifetime_us)
    # sigma = sqrt(2 D t); D in cm^2/s = 1e-4 mm^2/us.
    sigma_l = np.sqrt(2.0 * config.diffusion_long_cm2_s * 1e-4 * drift_us)
    sigma_t = np.sqrt(2.0 * config.diffusion_trans_cm2_s * 1e-4 * drift_us)
    pos = pos + rng.normal(0.0, 1.0, pos.shape) * np.stack([sigma_l, sigma_t, sigma_t], axis=1)
    inside = (pos[:, 0] >= 0.0) & (pos[:, 0] < config.drift_length_mm)
    return dict(
        position=pos[inside],
        charge=charge[inside],
        owner=seg.owner[row][inside],
        primary=(seg.source[row] == PRIMARY)[inside],
    )


_TICK_BITS, _CHANNEL_BITS = 18, 18
_OFFSET = 1 << 17


def _keys(owner: np.ndarray, plane: int, channel: np.ndarray, tick: np.ndarray) -> np.ndarray:
    group = owner.astype(np.int64) * 4 + plane
    return (group << (_TICK_BITS + _CHANNEL_BITS)) | ((channel + _OFFSET) << _TICK_BITS) | (tick + _OFFSET)


def find_tps(
    rng: np.random.Generator, packets: dict[str, np.ndarray], config: ReadoutConfig
) -> dict[str, np.ndarray]:
    """Trigger primitives of all planes from charge packets.

    Returns dict of int64 [t]: event, plane (0 U, 1 V, 2 X), channel, time_start,
    time_over_threshold, time_peak, adc_integral, adc_peak; and float64 [t] primary_fraction
    (the share of the TP's shaped charge that came from the PRIMARY electron). Sorted by event,
    plane, channel, time.
    """
    keys, q_all, q_primary = [], [], []
    for plane in geometry.PLANES:
        channel, tick = geometry.project(packets["position"], plane)
        keys.append(_keys(packets["owner"], plane.index, channel, tick))
        scale = config.adc_per_mev[plane.index] * argon.W_ION_MEV / argon.recombination(0.21)
        q_all.append(packets["charge"] * scale)  # ADC x tick
        q_primary.append(np.where(packets["primary"], q_all[-1], 0.0))
    unique, inverse = np.unique(np.concatenate(keys), return_inverse=True)
    adc_area = np.bincount(inverse, np.concatenate(q_all), minlength=unique.size)
    adc_primary = np.bincount(inverse, np.concatenate(q_primary), minlength=unique.size)
    return _hits(rng, unique, adc_area, adc_primary, config)


def _hits(rng, keys, area, area_primary, config: ReadoutConfig) -> dict[str, np.ndarray]:
    kernel = shaping_kernel(config)
    klen = len(kernel)
    group_channel = keys >> _TICK_BITS
    tick = (keys & ((1 << _TICK_BITS) - 1)) - _OFFSET
    # Waveform pieces: runs of samples of one channel less than a kernel length apart.
    new = np.ones(keys.size, bool)
    new[1:] = (group_channel[1:] != group_channel[:-1]) | (tick[1:] - tick[:-1] > klen)
    piece = np.cumsum(new) - 1
    first_tick = tick[new]
    last_tick = np.maximum.reduceat(tick, np.flatnonzero(new)) if keys.size else tick
    size = last_tick - first_tick + klen + 1  # +1: a guard sample that is never over threshold
    offset = np.cumsum(size) - size
    where = offset[piece] + tick - first_tick[piece]
    # Pieces are separated by at least a kernel length of zeros, so one causal convolution of the
    # whole buffer shapes every channel without mixing them.
    total = int(size.sum())
    buf, buf_primary = _shape(where, area, kernel, total), _shape(where, area_primary, kernel, total)

    piece_of_sample = np.repeat(np.arange(size.size), size)
    plane = (group_channel[new] >> _CHANNEL_BITS) & 3
    plane_s = plane[piece_of_sample]
    adc = buf + rng.standard_normal(buf.size, dtype=np.float32) * np.asarray(config.noise_adc)[plane_s]
    over = adc > np.asarray(config.threshold)[plane_s]
    over[offset + size - 1] = False
    edge = np.diff(np.concatenate([[0], over.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edge == 1), np.flatnonzero(edge == -1)
    if starts.size == 0:
        return {name: np.zeros(0, np.int64) for name in _TP_FIELDS} | {"primary_fraction": np.zeros(0)}
    p = piece_of_sample[starts]
    integral = np.add.reduceat(np.where(over, adc, 0.0), starts)
    # Mask first: a reduceat interval runs on to the next run and may cross into another plane's
    # samples, which can exceed this plane's threshold without being over their own.
    peak = np.maximum.reduceat(np.where(over, adc, -np.inf), starts)
    run_of = np.cumsum(edge[:-1] == 1) - 1
    is_peak = over & (adc == peak[np.maximum(run_of, 0)])
    runs_with_peak, first_peak = np.unique(run_of[is_peak], return_index=True)
    peak_pos = np.zeros(starts.size, np.int64)
    peak_pos[runs_with_peak] = np.flatnonzero(is_peak)[first_peak]
    shaped_primary = np.add.reduceat(np.where(over, buf_primary, 0.0), starts)
    shaped_all = np.add.reduceat(np.where(over, buf, 0.0), starts)
    gc = group_channel[new][p]
    return dict(
        event=gc >> (_CHANNEL_BITS + 2),
        plane=(gc >> _CHANNEL_BITS) & 3,
        channel=(gc & ((1 << _CHANNEL_BITS) - 1)) - _OFFSET,
        time_start=first_tick[p] + starts - offset[p],
        time_over_threshold=ends - starts,
        time_peak=first_tick[p] + peak_pos - offset[p],
        adc_integral=np.rint(integral).astype(np.int64),
        adc_peak=np.rint(peak).astype(np.int64),
        primary_fraction=np.clip(shaped_primary / np.maximum(shaped_all, 1e-9), 0.0, 1.0),
    )


def _shape(where: np.ndarray, area: np.ndarray, kernel: np.ndarray, total: int) -> np.ndarray:
    """Causal convolution of the samples `area` at buffer positions `where` with `kernel`, [total]."""
    raw = np.zeros(total, np.float32)
    raw[where] = area
    return np.convolve(raw, kernel.astype(np.float32))[:total]


_TP_FIELDS = (
    "event",
    "plane",
    "channel",
    "time_start",
    "time_over_threshold",
    "time_peak",
    "adc_integral",
    "adc_peak",
)


def trigger_primitives(
    rng: np.random.Generator, seg: Segments, config: ReadoutConfig = ReadoutConfig()
) -> dict[str, np.ndarray]:
    """Segments -> charge packets -> TPs of all planes (see find_tps for the fields)."""
    return find_tps(rng, charge_packets(rng, seg, config), config)
