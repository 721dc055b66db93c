"""The classical principal-axis baseline recovers the axis of straight tracks painted on the planes."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxhep import metrics
from jaxhep.dune import moments
from jaxhep.dune.sim import geometry
from tests.dune.painted import kinked_track_images, straight_track_images, track_images, volume_image


@pytest.mark.parametrize("direction", [(0.3, 0.5, 0.8), (-0.6, 0.2, 0.5), (0.5, -0.7, 0.3)])
def test_principal_axes_of_straight_tracks(direction):
    d = np.asarray(direction) / np.linalg.norm(direction)
    images = straight_track_images(d)
    axis = moments.principal_axes(images)
    assert axis.shape == (1, 3)
    assert metrics.axis_error_deg(axis, d[None])[0] < 4.0  # pixels of 0.8 x 4.7 mm on a 6 cm track
    # The X plane alone sees (d_x, d_z) only: its axis is that projection, in the x-z plane.
    x_only = moments.principal_axes({"images_x": images["images_x"]})
    projected = np.array([d[0], 0.0, d[2]]) / np.hypot(d[0], d[2])
    assert abs(x_only[0, 1]) < 1e-9
    assert metrics.axis_error_deg(x_only, projected[None])[0] < 4.0


def test_empty_and_round_images_say_nothing():
    empty = np.zeros((2, 128, 16), np.float32)
    normals, elongation = moments.plane_lines(empty, geometry.X)
    np.testing.assert_array_equal(elongation, 0.0)
    assert np.isfinite(normals).all()
    blob = np.zeros((1, 128, 16), np.float32)
    blob[0, 60:66, 7:9] = 0.5  # 6 ticks x 2 channels = 4.8 x 9.6 mm: roughly round
    assert moments.plane_lines(blob, geometry.X)[1][0] < 0.7


def test_smallest_eigenvector_matches_eigh_in_numpy_and_jax():
    m = np.random.default_rng(1).normal(size=(500, 3, 3))
    a = np.einsum("npi,npj->nij", m, m)  # symmetric PSD
    want = np.linalg.eigh(a)[1][:, :, 0]
    for got in (moments.smallest_eigenvector(a), moments.smallest_eigenvector(jnp.asarray(a, jnp.float32))):
        chex.assert_shape(got, (500, 3))
        assert np.percentile(metrics.axis_error_deg(np.asarray(got), want), 99) < 0.05


@pytest.mark.parametrize("direction", [(0.3, 0.5, 0.8), (-0.6, 0.2, 0.5)])
def test_the_fit_is_the_same_in_jax_under_jit(direction):
    images = straight_track_images(np.asarray(direction) / np.linalg.norm(direction))
    want = moments.principal_axes(images)
    got = jax.jit(moments.principal_axes)({k: jnp.asarray(v) for k, v in images.items()})
    assert got.dtype == jnp.float32
    assert metrics.axis_error_deg(np.asarray(got), want)[0] < 0.01


def test_charge_profiles_are_oriented_by_the_axis():
    d = np.array([0.3, 0.5, 0.8]) / np.linalg.norm([0.3, 0.5, 0.8])
    flat, rising = straight_track_images(d), straight_track_images(d, rising=True)
    for plane in geometry.PLANES:
        key = f"images_{plane.name.lower()}"
        forward = moments.charge_profiles(rising[key], plane, d[None], bins=16)
        backward = moments.charge_profiles(rising[key], plane, -d[None], bins=16)
        chex.assert_shape(forward, (1, 16))
        np.testing.assert_allclose(forward.sum(), 1.0, atol=0.01)  # the track lies within +-40 mm
        np.testing.assert_allclose(backward, forward[:, ::-1], atol=1e-9)  # the axis turned: mirrored
        # A uniform track: symmetric about its centroid. A rising one (Bragg-like end ahead):
        # the charge-weighted centroid sits near the bright end, the faint start trails far behind it.
        even = moments.charge_profiles(flat[key], plane, d[None], bins=16)
        np.testing.assert_allclose(even, even[:, ::-1], atol=0.02)
        assert (forward[0, :8] > 0.005).sum() >= (forward[0, 8:] > 0.005).sum() + 2
        got = moments.charge_profiles(jnp.asarray(rising[key]), plane, jnp.asarray(d[None], jnp.float32))
        np.testing.assert_allclose(np.asarray(got), forward, atol=1e-5)


def test_the_start_segment_keeps_the_initial_direction_of_a_scattered_track():
    first = np.array([0.6, 0.0, 0.8])
    then = np.array([0.0, 0.6, 0.8])  # 53 degrees off `first` after 25 mm
    images = kinked_track_images(first, then, first_mm=25.0, then_mm=50.0)
    whole = moments.principal_axes(images)
    assert metrics.axis_error_deg(whole, first[None])[0] > 25.0  # the whole track follows its longer leg
    going = whole * np.sign(np.sum(whole * first))  # the fit turned the way the electron goes
    start = moments.start_axes(images, going, length_mm=20.0)
    assert metrics.axis_error_deg(start, first[None])[0] < 6.0
    end = moments.start_axes(images, -going, length_mm=20.0)  # the other end: on the second leg
    assert metrics.axis_error_deg(end, then[None])[0] < 20.0 < metrics.axis_error_deg(end, first[None])[0]
    got = jax.jit(moments.start_axes, static_argnums=2)(
        {k: jnp.asarray(v) for k, v in images.items()}, jnp.asarray(going, jnp.float32), 20.0
    )
    assert metrics.axis_error_deg(np.asarray(got), start)[0] < 0.05


def test_end_profiles_tell_a_stopping_end_from_a_start():
    d = np.array([0.6, 0.0, 0.8])  # in the x-z plane, which X sees whole
    track = np.linspace(-20.0, 20.0, 200)[:, None] * d  # 40 mm through the centre, faint
    side = np.array([-0.8, 0.0, 0.6])  # across the track in X's (x, z) view
    # The end at +20 mm: bright and scattered up to 8 mm to the side, as a stopping electron's last mm
    end = 20.0 * d + np.linspace(-3.0, 0.0, 30)[:, None] * d + np.linspace(-8.0, 8.0, 30)[:, None] * side
    points = np.concatenate([track, end])
    image = track_images(points, np.r_[np.full(len(track), 0.3), np.full(len(end), 0.9)])["images_x"]
    forward = moments.end_profiles(image, geometry.X, d[None], bins=8)
    chex.assert_shape(forward, (1, 32))
    back_q, back_w, front_q, front_w = forward[0].reshape(4, 8)
    assert front_q[:2].sum() > 3 * back_q[:2].sum()  # the charge at the stopping end
    assert front_w[:2].sum() > 5 * back_w[:2].sum()  # and its spread
    flat = track_images(track, np.full(len(track), 0.3))["images_x"]
    even = moments.end_profiles(flat, geometry.X, d[None], bins=8)[0].reshape(4, 8)
    np.testing.assert_allclose(even[0], even[2], atol=0.02)  # a uniform track: both ends alike
    backward = moments.end_profiles(image, geometry.X, -d[None], bins=8)
    np.testing.assert_allclose(backward[0], np.r_[forward[0, 16:], forward[0, :16]], atol=1e-9)  # swapped
    got = jax.jit(moments.end_profiles, static_argnums=(1, 3))(
        jnp.asarray(image), geometry.X, jnp.asarray(d[None], jnp.float32), 8
    )
    np.testing.assert_allclose(np.asarray(got), forward, atol=1e-5)


def test_volume_profiles_put_a_conversion_ahead_of_the_track_off_it():
    d = np.array([0.6, 0.0, 0.8])  # in the x-z plane, which X sees whole
    track = np.linspace(-30.0, 30.0, 300)[:, None] * d  # 60 mm through the centre
    side = np.array([-0.8, 0.0, 0.6])  # across the track in X's (x, z) view
    conversion = np.random.default_rng(0).normal(0.0, 1.5, (40, 3))  # a brems photon's, ahead, off the track
    blob = 60.0 * d + 30.0 * side + conversion
    cluster = track_images(track, np.full(len(track), 0.6))["images_x"]
    points = np.concatenate([track, blob])
    volume = volume_image(points, np.full(len(points), 0.6))
    forward = moments.volume_profiles(volume, cluster, d[None], bins=16)
    chex.assert_shape(forward, (1, 32))
    off, on = forward[0, :16], forward[0, 16:]
    centres = np.linspace(-200.0, 200.0, 16)  # bins 26.7 mm apart: the blob at +60 mm is in bins 9-10
    assert off[[9, 10]].min() > 0.5 and off[[9, 10]].sum() > 0.99 * off.sum()
    assert on[np.abs(centres) > 60].max() == 0.0 and on[np.abs(centres) < 30].min() > 1.0
    np.testing.assert_allclose(on, on[::-1], atol=0.2)  # a uniform track: symmetric about its centroid
    backward = moments.volume_profiles(volume, cluster, -d[None], bins=16)
    np.testing.assert_allclose(backward[0, :16], off[::-1], atol=1e-9)  # the axis turned: mirrored
    np.testing.assert_allclose(backward[0, 16:], on[::-1], atol=1e-9)
    got = jax.jit(moments.volume_profiles, static_argnums=3)(
        jnp.asarray(volume), jnp.asarray(cluster), jnp.asarray(d[None], jnp.float32), 16
    )
    np.testing.assert_allclose(np.asarray(got), forward, atol=1e-4)
