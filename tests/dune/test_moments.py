"""The classical principal-axis baseline recovers the axis of straight tracks painted on the planes."""

import numpy as np
import pytest

from jaxhep import metrics
from jaxhep.dune import moments
from jaxhep.dune.sim import geometry
from tests.dune.painted import straight_track_images


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
