"""The direction augmentation's mirrors are symmetries of the wire-plane geometry."""

import numpy as np
import pytest

from jaxhep.dune.symmetry import SymmetryAugmented, mirror
from tests.dune.painted import straight_track_images

# (swap_uv, half_turn) -> what it does to a direction
MIRRORS = {(True, False): (1, -1, 1), (False, True): (1, -1, -1), (True, True): (1, 1, -1)}


def _event(d):
    return {**straight_track_images(d, rising=True), "direction": d[None].astype(np.float32)}


@pytest.mark.parametrize("direction", [(0.3, 0.5, 0.8), (-0.6, 0.2, 0.5), (0.5, -0.7, 0.3)])
@pytest.mark.parametrize("flags", list(MIRRORS))
def test_a_mirrored_event_is_the_event_of_the_mirrored_track(direction, flags):
    d = np.asarray(direction) / np.linalg.norm(direction)
    mirrored = mirror(_event(d), np.array([flags[0]]), np.array([flags[1]]))
    truth = _event(d * np.array(MIRRORS[flags]))  # the track painted along the mirrored direction
    for key in ("images_u", "images_v", "images_x", "direction"):
        np.testing.assert_allclose(mirrored[key], truth[key], atol=1e-6, err_msg=key)
    assert not np.array_equal(mirrored["images_u"], _event(d)["images_u"])  # it did change something


def test_the_augmented_reader_is_reproducible_and_draws_every_mirror():
    rng = np.random.default_rng(0)
    d = rng.normal(size=(64, 3)).astype(np.float32)
    table = {
        "images_u": rng.random((64, 8, 4), np.float32),
        "images_v": rng.random((64, 8, 4), np.float32),
        "images_x": rng.random((64, 8, 4), np.float32),
        "direction": d / np.linalg.norm(d, axis=1, keepdims=True),
        "energy": rng.random(64, np.float32),
    }
    reader = SymmetryAugmented(lambda rows: {k: v[rows] for k, v in table.items()}, seed=3)
    rows = np.arange(64)
    a, b = reader(rows), reader(rows)
    for key in table:
        np.testing.assert_array_equal(a[key], b[key])
        assert a[key].shape == table[key].shape and a[key].dtype == table[key].dtype
    np.testing.assert_array_equal(a["energy"], table["energy"])
    np.testing.assert_allclose(np.abs(a["direction"]), np.abs(table["direction"]))  # signs only
    signs = {tuple(s) for s in np.sign(a["direction"] * table["direction"]).astype(int)}
    assert signs == {(1, 1, 1), *MIRRORS.values()}  # all four mirrors among 64 events
    # another batch (another epoch's shuffle) mirrors the same event differently, sometimes
    other = reader(rows[::-1])
    assert not np.array_equal(other["direction"][::-1], a["direction"])
