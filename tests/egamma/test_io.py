"""The HDF5 source: lazy reads, multi-file indexing, labels, splits, normalisation, bad inputs."""

import pickle
import shutil

import grain
import h5py
import numpy as np
import pytest

from jaxhep.egamma.io import EcalImageSource, SplitReader, fit_normalisation, label_from_name, split_indices
from jaxhep.egamma.sim.simulate import write_hdf5
from jaxhep.errors import InputError
from jaxhep.pipeline import EpochPlan, training_batches
from tests.approx import approx


def _images(n, start=0):
    """[n, 32, 32, 2] float32 whose row i holds the value start + i everywhere (easy to check)."""
    values = np.arange(start, start + n, dtype=np.float32)
    return np.broadcast_to(values[:, None, None, None], (n, 32, 32, 2)).copy()


@pytest.fixture
def two_files(tmp_path):
    photon = write_hdf5(tmp_path / "SinglePhotonPt50_IMGCROPS_n30.hdf5", _images(30), np.zeros(30))
    electron = write_hdf5(tmp_path / "SingleElectronPt50_IMGCROPS_n50.hdf5", _images(50, 1000), np.ones(50))
    return photon, electron


def test_multi_file_indexing(two_files):
    source = EcalImageSource(two_files)
    assert len(source) == 80
    assert source.labels.tolist() == [0] * 30 + [1] * 50
    idx = np.array([79, 3, 30, 3, 29, 45, 0])  # unsorted, duplicated, across the file boundary
    batch = source.read_rows(idx)
    expected = np.where(idx < 30, idx, idx - 30 + 1000)
    assert batch["image"].shape == (7, 32, 32, 2) and batch["image"].dtype == np.float32
    np.testing.assert_array_equal(batch["image"][:, 5, 7, 1], expected)
    np.testing.assert_array_equal(batch["label"], (idx >= 30).astype(np.int32))
    record = source[31]
    assert record["image"].shape == (32, 32, 2) and record["label"] == 1 and record["image"][0, 0, 0] == 1001
    assert source[-1]["image"][0, 0, 0] == 1049
    with pytest.raises(IndexError):
        source.read_rows(np.array([80]))


def test_pickles_without_handles(two_files):
    source = EcalImageSource(two_files)
    source.read_rows(np.arange(5))  # opens handles
    clone = pickle.loads(pickle.dumps(source))
    rows = np.arange(40)
    np.testing.assert_array_equal(clone.read_rows(rows)["image"], source.read_rows(rows)["image"])


def test_reads_lazily(tmp_path, monkeypatch):
    # 8192 rows = 64 MiB as float32; reading 10 rows may touch at most 10 chunks of 16 rows.
    n = 8192
    path = write_hdf5(tmp_path / "SingleElectronPt50_big.hdf5", _images(n), np.ones(n), chunk_rows=16)
    read = []
    original = h5py.Dataset.__getitem__

    def counting(self, key):
        out = original(self, key)
        if self.name == "/X":
            read.append(np.asarray(out).nbytes)
        return out

    monkeypatch.setattr(h5py.Dataset, "__getitem__", counting)
    source = EcalImageSource([path])
    opened = sum(read)
    assert opened <= 2 * 16 * 32 * 32 * 2 * 4  # the NaN check reads two chunks, no more
    rows = np.random.default_rng(0).choice(n, 10, replace=False)
    batch = source.read_rows(rows)
    np.testing.assert_array_equal(batch["image"][:, 0, 0, 0], rows)
    file_bytes = n * 32 * 32 * 2 * 4
    assert sum(read) - opened <= 10 * 16 * 32 * 32 * 2 * 4 < file_bytes / 50
    assert len(read) - 2 <= 10  # one slice per touched chunk


def test_labels(tmp_path):
    # no y: from the name
    p = tmp_path / "SinglePhotonPt50_noy.hdf5"
    with h5py.File(p, "w") as f:
        f["X"] = _images(4)
    assert EcalImageSource(p).labels.tolist() == [0] * 4
    # both classes in y: per row
    p = write_hdf5(tmp_path / "mixed_photon.hdf5", _images(4), np.array([0, 1, 1, 0]))
    assert EcalImageSource(p).labels.tolist() == [0, 1, 1, 0]
    # one-class y that contradicts the name: the name wins, with a warning
    p = write_hdf5(tmp_path / "SingleElectronPt50_y0.hdf5", _images(4), np.zeros(4))
    with pytest.warns(UserWarning, match="file name"):
        assert EcalImageSource(p).labels.tolist() == [1] * 4
    # a name that says nothing: y decides
    p = write_hdf5(tmp_path / "crops.hdf5", _images(4), np.ones(4))
    assert EcalImageSource(p).labels.tolist() == [1] * 4
    assert label_from_name("a/SingleElectronPt50.h5") == 1
    assert label_from_name("photon_and_electron.h5") is None
    # neither y nor a telling name: an error for training, label -1 for prediction
    p = _write(tmp_path / "crops_noy.hdf5", X=_images(3))
    with pytest.raises(InputError, match="neither"):
        EcalImageSource(p)
    source = EcalImageSource(p, require_labels=False)
    assert source.labels.tolist() == [-1] * 3 and source.read_rows(np.array([2]))["image"][0, 0, 0, 0] == 2


def _write(path, **datasets):
    with h5py.File(path, "w") as f:
        for key, value in datasets.items():
            f[key] = value
    return path


def _bad_files(d, good):
    garbage = d / "SinglePhoton_garbage.hdf5"
    garbage.write_bytes(b"this is not an HDF5 file" * 100)
    truncated = d / "SinglePhoton_truncated.hdf5"
    shutil.copy(good, truncated)
    with open(truncated, "r+b") as f:
        f.truncate(truncated.stat().st_size // 2)
    nan = _images(40)
    nan[3, 4, 5, 0] = np.nan
    f32 = np.float32
    return {
        "missing": (d / "Photon_missing.hdf5", "no such file"),
        "garbage": (garbage, "not an HDF5 file"),
        "truncated": (truncated, ""),
        "no X": (_write(d / "Photon_noX.hdf5", images=_images(4)), "keys in the file: images"),
        "channels first": (_write(d / "Photon_chw.hdf5", X=np.zeros((4, 2, 32, 32), f32)), "(4, 2, 32, 32)"),
        "integer": (_write(d / "Photon_int.hdf5", X=np.zeros((4, 32, 32, 2), np.int16)), "dtype int16"),
        "y length": (_write(d / "Photon_ylen.hdf5", X=_images(4), y=np.zeros(3)), "'y' has 3 values"),
        "y values": (_write(d / "Photon_yval.hdf5", X=_images(4), y=np.full(4, 2.0)), "other than 0"),
        "nan": (write_hdf5(d / "Photon_nan.hdf5", nan, np.zeros(40)), "NaN"),
        "empty": (_write(d / "Photon_empty.hdf5", X=np.zeros((0, 32, 32, 2), f32)), "no rows"),
    }


def test_bad_inputs_name_the_file(tmp_path, two_files):
    for what, (path, message) in _bad_files(tmp_path, two_files[1]).items():
        with pytest.raises(InputError) as err:
            source = EcalImageSource([two_files[0], path])
            source.read_rows(np.arange(len(source)))  # a truncated file may fail only on reading
        assert err.value.path == str(path), what
        assert message in err.value.problem, (what, err.value.problem)


def test_nan_beyond_the_first_chunk_fails_on_reading(tmp_path):
    X = _images(64)
    X[50, 0, 0, 1] = np.inf
    path = write_hdf5(tmp_path / "SingleElectron_late_nan.hdf5", X, np.ones(64), chunk_rows=16)
    source = EcalImageSource(path)  # the checks at opening read rows 0-15 and 32-47 only
    source.read_rows(np.arange(48))
    with pytest.raises(InputError, match="late_nan.*NaN or infinite"):
        source.read_rows(np.array([50]))


def test_split_indices_stratified():
    labels = np.r_[np.zeros(300, int), np.ones(700, int)]
    train, val, test = split_indices(labels, seed=3)
    assert (len(train), len(val), len(test)) == (700, 150, 150)
    assert np.array_equal(np.sort(np.concatenate([train, val, test])), np.arange(1000))
    for part in (train, val, test):
        assert labels[part].mean() == approx(0.7, abs=0.005)
        assert np.all(np.diff(part) > 0)
    again = split_indices(labels, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(again, (train, val, test)))
    assert not np.array_equal(split_indices(labels, seed=4)[0], train)
    assert len(split_indices(100, (0.8, 0.1, 0.1))[0]) == 80
    with pytest.raises(ValueError):
        split_indices(labels, (0.5, 0.2, 0.2))


def test_fit_normalisation_uses_training_rows_only(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(0.0, 1.0, (200, 32, 32, 2)).astype(np.float32)
    X[..., 0] = X[..., 0] * 2 + 5
    X[150:] = 1000.0  # the held-out rows: must not leak in
    source = EcalImageSource(write_hdf5(tmp_path / "SinglePhoton.hdf5", X, np.zeros(200)))
    train = np.arange(150)
    stats = fit_normalisation(source, train, chunk=32)
    np.testing.assert_allclose(stats.mean, X[:150].mean((0, 1, 2)), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stats.std, X[:150].std((0, 1, 2)), rtol=1e-4)
    sub = fit_normalisation(source, train, max_rows=50)
    assert sub.mean[0] == approx(5.0, abs=0.05) and sub.std[1] == approx(1.0, abs=0.05)


def test_corrupt_chunk_fails_on_reading(tmp_path):
    X = np.random.default_rng(0).exponential(1.0, (64, 32, 32, 2)).astype(np.float32)
    good = write_hdf5(tmp_path / "SingleElectron_good.hdf5", X, np.ones(64))
    data = bytearray(good.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = b"\xff" * 64  # inside the compressed chunks, past the metadata
    bad = tmp_path / "SingleElectron_bad.hdf5"
    bad.write_bytes(bytes(data))
    source = EcalImageSource(bad)
    with pytest.raises(InputError, match="SingleElectron_bad.*corrupt"):
        source.read_rows(np.arange(64))


def test_contiguous_file_and_grain_pipeline(tmp_path, two_files):
    contiguous = _write(tmp_path / "SingleElectron_contiguous.hdf5", X=_images(20, 500), y=np.ones(20))
    source = EcalImageSource([*two_files, contiguous])
    idx = np.array([85, 81, 82, 99, 80, 5])
    np.testing.assert_array_equal(source.read_rows(idx)["image"][:, 0, 0, 0], [505, 501, 502, 519, 500, 5])

    assert grain.MapDataset.source(source)[81]["image"][0, 0, 0] == 501
    plan = EpochPlan(n_rows=len(source), batch_size=8, steps_per_call=2)
    chunk = next(iter(training_batches(source.read_rows, plan, seed=0, max_epochs=1)))
    assert chunk["image"].shape == (2, 8, 32, 32, 2) and chunk["label"].shape == (2, 8)
    np.testing.assert_array_equal(chunk["label"], source.labels[_rows_of(chunk["image"])])


def _rows_of(images):
    """Source row of each image of the three files above (values 0-29, 1000-1049, 500-519)."""
    v = images[..., 0, 0, 0].astype(np.int64)
    return np.where(v >= 1000, v - 1000 + 30, np.where(v >= 500, v - 500 + 80, v))


def test_split_reader(two_files):
    source = EcalImageSource(two_files)
    train, val, _ = split_indices(source.labels, seed=0)
    reader = pickle.loads(pickle.dumps(SplitReader(source, val)))
    assert len(reader) == len(val) == 12
    batch = reader(np.array([3, 0, 11]))
    np.testing.assert_array_equal(batch["label"], source.labels[val[[3, 0, 11]]])
    np.testing.assert_array_equal(batch["image"], source.read_rows(val[[3, 0, 11]])["image"])
