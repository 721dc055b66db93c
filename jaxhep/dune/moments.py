"""A classical fit of the electron's axis: principal axes of the three cluster images.

No learning. In each plane the charge-weighted covariance of the pixels, in mm (drift: 0.8 mm per
tick; across the wires: the plane's pitch), gives the track's projected line; a 3-D axis d projects
onto plane p as (d_x, d . pitch_p), so that line says n_p . d = 0 with

    n_p = (w_p, -x_p pitch_p)          (x_p, w_p): the projected line's unit direction.

The axis is the vector most nearly orthogonal to the three n_p (weighted by how elongated each
projection is: a round blob says little): the eigenvector of A = sum_p e_p^2 n_p n_p^T with the
smallest eigenvalue. With the X plane alone, d_y is unseen: the axis is taken in the x-z plane.

No sense (head vs tail) either way: compare with `metrics.axis_error_deg`. The same functions run in
NumPy (the report's baseline) and in JAX inside a network (`DirectionConfig.prior = "moments"`:
the network starts from this fit), so the eigenvector comes from matrix products, which jit, autodiff
and ONNX all carry, not from an SVD (`smallest_eigenvector`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxhep.dune.images import ADC_SATURATION, VOLUME_TICKS_PER_ROW
from jaxhep.dune.sim import geometry

START_RAMP_MM = 2.0  # start_axes: the width over which a pixel's weight falls from 1 to 0 at length_mm
# volume_profiles: a pixel within TRACK_MM of the cluster's line (and of its span) is on the track;
# 2 wire pitches, so that the track's own diffusion and delta-ray stubs stay on it.
TRACK_MM = 10.0
VOLUME_ADC_SCALE = 100.0  # volume_profiles: log1p(ADC / 100), about one blip's pixels per unit
END_BIN_MM = 3.0  # end_profiles: bin width, 4 ticks, so that the last few mm of a stopping track stand apart
END_WIDTH_MM = 5.0  # end_profiles: the unit of the distance across the axis, about one wire pitch
SQUARINGS = 10  # B^(2^10): the eigenvalue ratio of B, <= 1, to the 1024th power (see smallest_eigenvector)


def _xp(a):
    """The array module of `a`: jax.numpy for JAX arrays and tracers, NumPy otherwise."""
    return jnp if isinstance(a, jax.Array) else np


def pixels(images, plane: geometry.WirePlane, ticks_per_row: int = 1):
    """(adc [N, T, C], t [T], c [C]) of cluster images [N, T, C] (log-normalised) on `plane`: the
    charge (`images.adc_of`) and the pixel centres in mm from the image centre (float32 moments of
    100 mm offsets would lose the variance). NumPy float64 for NumPy input, JAX float32 for JAX.
    ticks_per_row: 4 for volume images (`images.VOLUME_TICKS_PER_ROW`)."""
    xp = _xp(images)
    images = xp.asarray(images, xp.float32 if xp is jnp else xp.float64)
    adc = xp.where(images > 0, xp.expm1(images * np.log1p(ADC_SATURATION)), 0.0)
    t = (xp.arange(images.shape[1]) + 0.5 - images.shape[1] / 2) * geometry.TICK_MM * ticks_per_row
    c = (xp.arange(images.shape[2]) + 0.5 - images.shape[2] / 2) * plane.pitch_mm
    return adc, t, c


def lines(adc, t, c, plane: geometry.WirePlane):
    """The charge-weighted line of `adc` [N, T, C] at pixel centres t [T], c [C] (mm) on `plane`:
    (normals [N, 3], elongation [N] in [0, 1]: 0 a round blob or no charge, 1 a line)."""
    xp = _xp(adc)
    total = adc.sum((1, 2))
    safe = xp.where(total > 0, total, 1.0)
    rows, cols = adc.sum(2), adc.sum(1)  # [N, T], [N, C]
    mx, mw = rows @ t / safe, cols @ c / safe
    # Second moments about the centroid (not E[t^2] - E[t]^2, whose float32 cancellation would put
    # 1e-5 of noise into the angle; ONNX Runtime sums in another order than XLA).
    dt, dc = t[None, :] - mx[:, None], c[None, :] - mw[:, None]  # [N, T], [N, C]
    cxx = xp.sum(rows * dt**2, axis=1) / safe
    cww = xp.sum(cols * dc**2, axis=1) / safe
    cxw = xp.einsum("ntc,nt,nc->n", adc, dt, dc) / safe
    angle = 0.5 * xp.arctan2(2 * cxw, cxx - cww)  # major axis in the (x, w) plane
    spread = xp.sqrt((cxx - cww) ** 2 + (2 * cxw) ** 2)
    trace = cxx + cww
    elongation = xp.where((total > 0) & (trace > 0), spread / xp.where(trace > 0, trace, 1.0), 0.0)
    x_p, w_p = xp.cos(angle), xp.sin(angle)
    normals = w_p[:, None] * xp.asarray([1.0, 0.0, 0.0]) - x_p[:, None] * xp.asarray(plane.pitch_direction)
    return normals, elongation


def plane_lines(images, plane: geometry.WirePlane):
    """Projected lines of cluster images [N, T, C] (log-normalised) on `plane`: (normals [N, 3],
    elongation [N]) as `lines`."""
    return lines(*pixels(images, plane), plane)


def centroid(adc, t, c):
    """The charge centroid (mx [N], mw [N]) in mm of `adc` [N, T, C] at pixel centres t [T], c [C]."""
    xp = _xp(adc)
    total = adc.sum((1, 2))
    safe = xp.where(total > 0, total, 1.0)
    return adc.sum(2) @ t / safe, adc.sum(1) @ c / safe


def axis_frame(t, c, mx, mw, plane: geometry.WirePlane, axis):
    """(along, across) [N, T, C]: each pixel's signed distance (mm) from (mx, mw) [N] along the
    projection of the 3-D `axis` [N, 3] on `plane`, (a_x, a . pitch_p) normalised, and across it."""
    xp = _xp(axis)
    px, pw = axis[:, 0], axis @ xp.asarray(plane.pitch_direction, axis.dtype)
    norm = xp.sqrt(xp.maximum(px**2 + pw**2, 1e-12))
    px, pw = (px / norm)[:, None, None], (pw / norm)[:, None, None]
    dt, dc = (t[None, :] - mx[:, None])[:, :, None], (c[None, :] - mw[:, None])[:, None, :]
    return dt * px + dc * pw, dc * px - dt * pw


def along_axis(adc, t, c, plane: geometry.WirePlane, axis):
    """[N, T, C]: each pixel's distance (mm) from the charge centroid along the projection of the
    3-D `axis` [N, 3] on `plane`, (a_x, a . pitch_p) normalised."""
    return axis_frame(t, c, *centroid(adc, t, c), plane, axis)[0]


def line_axis(normals, elongations):
    """The 3-D axis [N, 3] most nearly orthogonal to the planes' normals (each [N, 3]), weighted by
    their elongations (each [N])."""
    xp = _xp(normals[0])
    weighted = xp.stack([n * e[:, None] for n, e in zip(normals, elongations)], axis=1)  # [N, planes, 3]
    return smallest_eigenvector(xp.einsum("npi,npj->nij", weighted, weighted))


def largest_eigenvector(scatter, squarings: int = SQUARINGS):
    """Unit eigenvector [..., 3] (sign arbitrary) of the largest eigenvalue of symmetric PSD [..., 3, 3].

    P <- P P / trace(P P), `squarings` times, is power iteration to the power 2^squarings: the other
    eigenvalues' share falls as (lambda_2 / lambda_1)^(2^k), so P tends to v v^T; v is the column
    with the largest diagonal entry, normalised. Matrix products only: the same in NumPy and JAX,
    differentiable, and exportable to ONNX (jax2onnx lowers `eigh` only for one unbatched 1x1 or 2x2
    matrix).
    """
    xp = _xp(scatter)

    def normalised(p):
        return p / xp.trace(p, axis1=-2, axis2=-1)[..., None, None]

    p = normalised(scatter)
    for _ in range(squarings):
        p = normalised(p @ p)
    best = xp.argmax(xp.diagonal(p, axis1=-2, axis2=-1), axis=-1)
    u = xp.take_along_axis(p, best[..., None, None], axis=-1)[..., 0]
    return u / xp.sqrt(xp.maximum(xp.sum(u * u, axis=-1, keepdims=True), 1e-30))


def smallest_eigenvector(a):
    """Unit eigenvector [N, 3] (sign arbitrary) of the smallest eigenvalue of symmetric PSD a [N, 3, 3]:
    the largest of tr(a) I - a, which has a's eigenvectors with eigenvalues tr - lambda. Where the two
    smallest eigenvalues are equal the axis is undetermined, as with an SVD."""
    xp = _xp(a)
    eye = xp.eye(3, dtype=a.dtype)
    return largest_eigenvector(xp.trace(a, axis1=1, axis2=2)[:, None, None] * eye - a + 1e-12 * eye)


def plane_fits(images: dict) -> dict:
    """{plane name ("U", "V", "X"): (normals [N, 3], elongation [N])} of the planes `principal_axes`
    uses: all three when {images_u, images_v, images_x} [N, 128, W] are given, else X alone."""
    planes = geometry.PLANES if set(images) >= {"images_u", "images_v", "images_x"} else (geometry.X,)
    return {p.name: plane_lines(images[f"images_{p.name.lower()}"], p) for p in planes}


def fits_axis(fits: dict):
    """The 3-D axis [N, 3] (unit, sign arbitrary) of `plane_fits`' lines."""
    if len(fits) > 1:
        return line_axis(*zip(*fits.values()))
    normal, _ = fits["X"]
    xp = _xp(normal)
    axis = xp.cross(normal, xp.asarray([0.0, 1.0, 0.0]))  # in the x-z plane, orthogonal to n_X
    return axis / xp.maximum(xp.linalg.norm(axis, axis=1, keepdims=True), 1e-12)


def principal_axes(images: dict):
    """Axes [N, 3] (unit, sign arbitrary) from {images_u, images_v, images_x} [N, 128, W] (all three
    planes) or {images_x} alone; NumPy or JAX as the images."""
    return fits_axis(plane_fits(images))


def _ramp(margin):
    """1 for margin >> 0, 0 for margin << 0, linear over START_RAMP_MM between: a ramp, not a step, so
    a pixel on an edge cannot jump in or out on a rounding difference (ONNX Runtime against XLA)."""
    return _xp(margin).clip(margin / START_RAMP_MM + 0.5, 0.0, 1.0)


def _charged_span(adc, s):
    """(back [N], front [N]): the least and greatest s [N, T, C] of the charged pixels of adc; 0 for an
    empty image."""
    xp = _xp(adc)
    back = xp.min(xp.where(adc > 0, s, xp.inf), axis=(1, 2))
    front = xp.max(xp.where(adc > 0, s, -xp.inf), axis=(1, 2))
    return xp.where(xp.isfinite(back), back, 0.0), xp.where(xp.isfinite(front), front, 0.0)


def start_axes(images: dict, axis, length_mm: float = 25.0):
    """The axis [N, 3] of the track's first `length_mm` if it starts at its back end along `axis`
    [N, 3] (the end it leaves from when it goes along `axis`; pass -axis for the other end).

    Why: multiple scattering bends a 10 MeV electron by tens of degrees over its range, so the
    whole track's principal axis is ~36 deg off its initial direction; the first 1.5-3 cm keep
    20-25 deg (`jaxhep.dune.sim.floor`). In each plane, the pixels within length_mm (along the
    projected axis) of the furthest-back charged pixel get a line of their own; the planes' lines
    give the 3-D axis as in `principal_axes`. Three planes ({images_u, images_v, images_x}).
    """
    normals, elongations = [], []
    for plane in geometry.PLANES:
        adc, t, c = pixels(images[f"images_{plane.name.lower()}"], plane)
        s = along_axis(adc, t, c, plane, axis)
        back, _ = _charged_span(adc, s)
        near = _ramp(back[:, None, None] + length_mm - s)
        n, e = lines(adc * near, t, c, plane)
        normals.append(n)
        elongations.append(e)
    return line_axis(normals, elongations)


def charge_profiles(images, plane: geometry.WirePlane, axis, bins: int = 16, half_length_mm: float = 40.0):
    """Charge along the axis in one plane: [N, bins], each row summing to <= 1.

    images [N, T, C] (log-normalised); axis [N, 3], the 3-D line whose projection on `plane`,
    (a_x, a . pitch_p), orients the profile: bin 0 lies at -half_length_mm from the charge centroid
    along it, the last at +half_length_mm. Triangular bins (each pixel shared between its two
    nearest), so the profile is smooth in the axis and the same in NumPy and JAX. Why: a stopping
    electron deposits more at its end and scatters more there, and its brems photons convert ahead of
    it; a profile oriented by the fit says on which side, which global pooling of a CNN loses.
    """
    adc, t, c = pixels(images, plane)
    xp = _xp(adc)
    total = adc.sum((1, 2))
    safe = xp.where(total > 0, total, 1.0)
    s = along_axis(adc, t, c, plane, axis)  # [N, T, C]: mm along the projected axis
    return _binned(adc, s, bins, half_length_mm) / safe[:, None]


def _binned(adc, s, bins: int, half_length_mm: float):
    """[N, bins]: the sums of `adc` [N, T, C] in triangular bins of s [N, T, C] (mm) over
    +-half_length_mm (each pixel shared between its two nearest bins, so smooth in s)."""
    xp = _xp(adc)
    width = 2 * half_length_mm / (bins - 1)
    centres = -half_length_mm + width * xp.arange(bins)
    share = xp.maximum(0.0, 1.0 - xp.abs(s[..., None] - centres) / width)  # [N, T, C, bins]
    return xp.einsum("ntc,ntcb->nb", adc, share)


def end_profiles(images, plane: geometry.WirePlane, axis, bins: int = 8):
    """The charge and the spread at the track's two ends in one plane: [N, 4 bins].

    images [N, T, C] (log-normalised); axis [N, 3] orients the track as in `charge_profiles`. Bin i
    lies i * END_BIN_MM from an end (triangular bins, as `charge_profiles`): [back end's charge,
    back end's spread, front end's charge, front end's spread], back = the least charged pixel along
    the projected axis. Charge as a fraction of the plane's; spread the charge times |distance across
    the axis| in END_WIDTH_MM, over the plane's charge. Along -axis the back and front halves swap.

    Why: profiles from the centroid put the ends of a 2 cm and of a 10 cm track in different bins;
    counted from each end, a stopping electron's last mm (its dE/dx rising, its scattering widening
    the track) and its start (thin, straight) line up for every length.
    """
    adc, t, c = pixels(images, plane)
    xp = _xp(adc)
    total = adc.sum((1, 2))
    safe = xp.where(total > 0, total, 1.0)[:, None]
    s, across = axis_frame(t, c, *centroid(adc, t, c), plane, axis)
    back, front = _charged_span(adc, s)
    half = END_BIN_MM * (bins - 1) / 2  # bins centred at 0, END_BIN_MM, ... from the end
    spread = adc * xp.abs(across) / END_WIDTH_MM
    parts = []
    for from_end in (s - back[:, None, None], front[:, None, None] - s):
        parts += [_binned(q, from_end - half, bins, half) / safe for q in (adc, spread)]
    return xp.concatenate(parts, axis=-1)


def volume_profiles(volume, cluster, axis, bins: int = 16, half_length_mm: float = 200.0):
    """The X-plane volume's charge along the fit's axis, off the track and on it: [N, 2 bins].

    volume [N, 128, 64] (log-normalised, `images.VOLUME_TICKS_PER_ROW` ticks per row) and the X
    cluster image [N, 128, 16] share their centre (the main cluster's box, `images.centred_origin`);
    axis [N, 3], the 3-D line whose projection on X orients the profiles as in `charge_profiles`,
    from the cluster's charge centroid. A volume pixel is on the track when it lies within TRACK_MM
    of the cluster's projected line and of its span along it (ramps START_RAMP_MM wide, so the
    split is continuous), else off it. Each bin is log1p(ADC / VOLUME_ADC_SCALE).

    Why: bremsstrahlung photons (X0 = 14 cm in argon) convert ahead of the electron, mostly outside
    the 16 channels of its cluster image, so the side of the cluster where off-track charge lies says
    which way the electron went: the "brems flipping" of DUNE's pointing analysis (arXiv 2407.10339).
    On the 24 k-event test split the sign of the off-track charge's asymmetry alone gives the sense of
    77 % of the 56 % of events that have any, 96 % at 30-50 MeV (`scripts/dune_brems_side.py`).
    """
    adc, t, c = pixels(cluster, geometry.X)
    xp = _xp(adc)
    mx, mw = centroid(adc, t, c)
    back, front = _charged_span(adc, axis_frame(t, c, mx, mw, geometry.X, axis)[0])
    vol, tv, cv = pixels(volume, geometry.X, VOLUME_TICKS_PER_ROW)
    along, across = axis_frame(tv, cv, mx, mw, geometry.X, axis)
    on = _ramp(TRACK_MM - xp.abs(across))
    on = on * _ramp(along - back[:, None, None] + TRACK_MM) * _ramp(front[:, None, None] + TRACK_MM - along)
    profiles = [_binned(vol * part, along, bins, half_length_mm) for part in (1.0 - on, on)]
    return xp.log1p(xp.concatenate(profiles, axis=-1) / VOLUME_ADC_SCALE)
