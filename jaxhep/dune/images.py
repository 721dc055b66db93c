"""Painting trigger primitives into images: cluster images (128 ticks x 16 channels) and volume images.

A TP keeps only (time_start, time_over_threshold, time_peak, adc_peak, adc_integral) of its
waveform, so it is painted back as a triangular pulse: from the threshold at time_start up to
adc_peak at time_peak and down to the threshold at the last tick over threshold (as in the
online-pointing-utils images). Pixels are log-normalised with a fixed scale,
log(1 + ADC) / log(1 + 4095) clipped to [0, 1] (12-bit ADC), so brightness keeps the charge
scale across images; pixels without a TP are 0.

Cluster images put the centre of the cluster's (channel, tick) bounding box at pixel (64, 8);
what falls outside 128 x 16 is cropped. Volume images show the whole neighbourhood of the main
collection-plane cluster, every TP of the event, 4 ticks per row (3.2 mm, close to the 4.79 mm
pitch, so blips look round): 128 rows x 64 channels = 41 cm of drift x 31 cm along z.
"""

from __future__ import annotations

import numpy as np

CLUSTER_SHAPE = (128, 16)  # (ticks, channels): the seed's matched-cluster images
VOLUME_SHAPE = (128, 64)  # (time rows, channels)
VOLUME_TICKS_PER_ROW = 4
ADC_SATURATION = 4095.0  # 12-bit ADC


def log_normalise(adc: np.ndarray) -> np.ndarray:
    """log(1 + ADC) / log(1 + 4095), clipped to [0, 1], float32 of the same shape."""
    return np.clip(np.log1p(np.maximum(adc, 0.0)) / np.log1p(ADC_SATURATION), 0.0, 1.0).astype(np.float32)


def adc_of(normalised: np.ndarray) -> np.ndarray:
    """The inverse of `log_normalise` (below saturation): ADC [...] float64 of log-normalised pixels."""
    return np.expm1(np.asarray(normalised, np.float64) * np.log1p(ADC_SATURATION))


def pulse_samples(
    tps: dict[str, np.ndarray], rows: np.ndarray, threshold: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Triangular pulses of the TPs `rows` [r]: (row of each sample [s], tick [s], ADC value [s]).

    `threshold` [3] is the per-plane TP threshold the pulse starts and ends at.
    """
    tot = tps["time_over_threshold"][rows]
    row = np.repeat(rows, tot)
    k = np.arange(row.size) - np.repeat(np.cumsum(tot) - tot, tot)
    start, peak_t = tps["time_start"][row], tps["time_peak"][row]
    end = start + tps["time_over_threshold"][row] - 1
    tick = start + k
    thr = np.asarray(threshold, np.float64)[tps["plane"][row]]
    peak = np.maximum(tps["adc_peak"][row].astype(np.float64), thr)
    rise = thr + (peak - thr) * (tick - start + 1) / (peak_t - start + 1)
    fall = peak - (peak - thr) * (tick - peak_t) / np.maximum(end - peak_t + 1, 1)
    return row, tick, np.where(tick <= peak_t, rise, fall)


def paint(
    tps: dict[str, np.ndarray],
    rows: np.ndarray,
    image_of: np.ndarray,
    origin_tick: np.ndarray,
    origin_channel: np.ndarray,
    n_images: int,
    shape: tuple[int, int],
    threshold: np.ndarray,
    ticks_per_row: int = 1,
) -> np.ndarray:
    """Log-normalised images [n_images, *shape] of the TPs `rows` [r], TP rows[i] into image image_of[i].

    Image j's pixel (0, 0) is (origin_tick[j], origin_channel[j]); several ticks per row keep the
    largest value.
    """
    adc = np.zeros((n_images, *shape), np.float64)
    if rows.size == 0:
        return adc.astype(np.float32)
    sample_tp, tick, value = pulse_samples(tps, rows, threshold)
    img = np.repeat(image_of, tps["time_over_threshold"][rows])
    r = np.floor_divide(tick - origin_tick[img], ticks_per_row)
    c = tps["channel"][sample_tp] - origin_channel[img]
    inside = (r >= 0) & (r < shape[0]) & (c >= 0) & (c < shape[1])
    flat = (img[inside] * shape[0] + r[inside]) * shape[1] + c[inside]
    np.maximum.at(adc.reshape(-1), flat, value[inside])
    return log_normalise(adc)


def centred_origin(
    summary: dict[str, np.ndarray], clusters: np.ndarray, shape: tuple[int, int], ticks_per_row: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """(origin_tick, origin_channel) [k] that put the centre of each cluster's box at the image centre."""
    mid_tick = (summary["tick_min"][clusters] + summary["tick_max"][clusters] + 1) // 2
    mid_channel = (summary["channel_min"][clusters] + summary["channel_max"][clusters] + 1) // 2
    return mid_tick - (shape[0] // 2) * ticks_per_row, mid_channel - shape[1] // 2
