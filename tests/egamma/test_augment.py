"""Augmentations: shapes, energy conservation where it should hold, erasing, normalisation."""

import pickle

import numpy as np
import pytest

from jaxhep.egamma.augment import (
    AugmentConfig,
    AugmentedReader,
    ChannelStats,
    augment,
    flip_eta,
    flip_phi,
    normalise,
    random_erase,
    rot90,
    shift,
)


@pytest.fixture
def images():
    """[64, 32, 32, 2]: sparse positive energies in the central 24x24, times in the second channel."""
    rng = np.random.default_rng(0)
    x = np.zeros((64, 32, 32, 2), np.float32)
    x[:, 4:28, 4:28, 0] = rng.exponential(1.0, (64, 24, 24)) * (rng.random((64, 24, 24)) < 0.3)
    x[..., 1] = np.where(x[..., 0] > 0, rng.normal(0, 1, x.shape[:3]), 0)
    return x


def _sums(x):
    return x[..., 0].sum((1, 2))


@pytest.mark.parametrize("fn", [flip_eta, flip_phi, rot90, lambda x, r: shift(x, r, 3)])
def test_shape_and_energy_kept(images, fn):
    out = fn(images, np.random.default_rng(1))
    assert out.shape == images.shape and out.dtype == images.dtype
    np.testing.assert_allclose(_sums(out), _sums(images), rtol=1e-5)  # border is empty: shifts keep it
    # each image is moved as a whole: the multiset of its pixel values is unchanged
    np.testing.assert_array_equal(np.sort(out.reshape(64, -1), 1), np.sort(images.reshape(64, -1), 1))


def test_flips_and_turns_are_what_they_say(images):
    rng = np.random.default_rng(2)
    np.testing.assert_array_equal(flip_eta(images, rng, p=1.0), images[:, ::-1])
    np.testing.assert_array_equal(flip_phi(images, rng, p=1.0), images[:, :, ::-1])
    np.testing.assert_array_equal(flip_eta(images, rng, p=0.0), images)
    out = rot90(images, rng)
    for i in range(len(images)):
        assert any(np.array_equal(out[i], np.rot90(images[i], k, axes=(0, 1))) for k in range(4))


def test_shift_moves_and_zero_pads(images):
    full = np.ones((16, 32, 32, 2), np.float32)
    out = shift(full, np.random.default_rng(3), 2)
    lost = 32 * 32 - _sums(out)  # a shift by (a, b) empties 32(|a| + |b|) - |a b| pixels
    assert (lost >= 0).all() and lost.max() <= 32 * 4 and (lost > 0).any()
    rng = np.random.default_rng(4)
    moved = shift(images, rng, 3)
    d_eta, d_phi = np.random.default_rng(4).integers(-3, 4, (2, 64))
    np.testing.assert_array_equal(moved[0], np.roll(images[0], (d_eta[0], d_phi[0]), axis=(0, 1)))
    assert shift(images, rng, 0) is images


def test_random_erase_changes_one_rectangle():
    ones = np.ones((200, 32, 32, 2), np.float32)
    out = random_erase(ones, np.random.default_rng(5), prob=0.5)
    changed = out[..., 0] == 0
    assert (changed == (out[..., 1] == 0)).all()  # both channels: dead crystals
    n_erased = changed.any((1, 2)).sum()
    assert 70 < n_erased < 130
    for mask in changed[changed.any((1, 2))]:
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        assert mask.sum() == len(rows) * len(cols)  # the changed pixels fill their bounding box
        assert np.all(np.diff(rows) == 1) and np.all(np.diff(cols) == 1)
        assert 0.02 * 1024 * 0.5 <= mask.sum() <= 0.15 * 1024 * 1.5
    np.testing.assert_array_equal(random_erase(ones, np.random.default_rng(5), prob=0.0), ones)


def test_normalise_uses_the_given_statistics(images):
    stats = ChannelStats(mean=np.array([0.5, -1.0], np.float32), std=np.array([2.0, 4.0], np.float32))
    out = normalise(images, stats)
    np.testing.assert_allclose(out[..., 0], (images[..., 0] - 0.5) / 2.0, rtol=1e-6)
    np.testing.assert_allclose(out[..., 1], (images[..., 1] + 1.0) / 4.0, rtol=1e-6)
    assert out.dtype == np.float32
    assert ChannelStats.from_dict(stats.to_dict()).to_dict() == stats.to_dict()


def test_defaults_keep_the_detector_symmetries(images):
    cfg = AugmentConfig()
    assert cfg.flip_eta and cfg.flip_phi and not cfg.rot90 and cfg.max_shift == 0 and cfg.erase_prob == 0
    out = augment(images, np.random.default_rng(6), AugmentConfig.seed_like())
    assert out.shape == images.shape


class _Reader:
    def __init__(self, images):
        self.images = images

    def __call__(self, idx):
        return {"image": self.images[idx], "label": np.zeros(len(idx), np.int32)}


def test_augmented_reader(images):
    stats = ChannelStats(mean=np.zeros(2, np.float32), std=np.full(2, 2.0, np.float32))
    train = AugmentedReader(_Reader(images), AugmentConfig.seed_like(), stats, seed=1)
    idx = np.array([5, 3, 9, 1])
    a, b = train(idx), pickle.loads(pickle.dumps(train))(idx)
    np.testing.assert_array_equal(a["image"], b["image"])  # a function of (seed, indices)
    assert not np.array_equal(a["image"], train(idx[::-1])["image"][::-1])
    evaluation = AugmentedReader(_Reader(images), None, stats)
    np.testing.assert_array_equal(evaluation(idx)["image"], images[idx] / 2.0)
