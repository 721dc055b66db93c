"""Reading DUNE NPZ files: round trip, memory maps, streaming, grain, balanced sampling, bad inputs."""

import functools
import pickle
import zipfile

import grain
import numpy as np
import pytest

from jaxhep.dune import io
from jaxhep.dune.sim.simulate import SimConfig, simulate_dataset, simulate_events
from jaxhep.errors import InputError
from jaxhep.pipeline import EpochPlan, training_batches

ARGS = dict(n=60, seed=2, kind="mixed", config=SimConfig(spectrum="flat", chunk=200))


@pytest.fixture(scope="module")
def columns():
    return simulate_events(ARGS["n"], ARGS["seed"], ARGS["kind"], ARGS["config"])


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    return simulate_dataset(tmp_path_factory.mktemp("dune") / "mixed.npz", **ARGS)


def test_round_trip_is_memory_mapped(path, columns):
    arrays = io.load_npz(path)
    assert set(arrays) == set(columns) | {"metadata"}
    for key, values in columns.items():
        assert isinstance(arrays[key], np.memmap), key  # uncompressed members are mapped in place
        np.testing.assert_array_equal(arrays[key], values, err_msg=key)
    assert io.read_metadata(path)["kind"] == "mixed"
    assert io.list_keys(path) == sorted(arrays)


def test_compressed_files_are_read_and_streamed(tmp_path, columns):
    path = tmp_path / "compressed.npz"
    np.savez_compressed(path, **columns)
    arrays = io.load_npz(path, ["images_x", "direction"])
    assert not isinstance(arrays["images_x"], np.memmap)  # a deflated member cannot be mapped
    np.testing.assert_array_equal(arrays["images_x"], columns["images_x"])
    chunks = list(io.iter_chunks(path, ("images_x", "volume_x", "energy"), chunk_rows=25))
    assert [len(c["energy"]) for c in chunks] == [25, 25, 10]
    np.testing.assert_array_equal(np.concatenate([c["images_x"] for c in chunks]), columns["images_x"])
    assert chunks[0]["volume_x"].dtype == np.float32


def test_streaming_an_uncompressed_file(path, columns):
    chunks = list(io.iter_chunks(path, ("mt_images", "mt_label"), chunk_rows=50))
    np.testing.assert_array_equal(np.concatenate([c["mt_label"] for c in chunks]), columns["mt_label"])


def test_source_reads_rows_for_grain_and_the_pipeline(path, columns):
    source = io.NpzSource(path, (*io.DIRECTION_KEYS, "volume_x"))
    assert len(source) == ARGS["n"]
    rows = source.read_rows(np.array([7, 3, 7, 50]))
    np.testing.assert_array_equal(rows["direction"], columns["direction"][[7, 3, 7, 50]])
    assert rows["volume_x"].dtype == np.float32 and rows["images_u"].shape == (4, 128, 16)
    copy = pickle.loads(pickle.dumps(source))  # grain worker processes get a re-opened copy
    np.testing.assert_array_equal(copy[5]["images_v"], columns["images_v"][5])
    first = next(iter(grain.MapDataset.source(source).batch(8)))
    assert first["images_x"].shape == (8, 128, 16)
    chunk = next(iter(training_batches(source.read_rows, EpochPlan(len(source), 8, 2), seed=0, max_epochs=1)))
    assert chunk["images_x"].shape == (2, 8, 128, 16) and chunk["energy"].shape == (2, 8)


def test_balanced_indices(columns):
    labels = columns["interaction"]
    idx = io.balanced_indices(labels, seed=1)
    counts = np.bincount(labels[idx])
    assert counts[0] == counts[1] == np.bincount(labels).min()
    assert len(np.unique(idx)) == len(idx)
    np.testing.assert_array_equal(idx, io.balanced_indices(labels, seed=1))
    more = io.balanced_indices(np.array([0] * 90 + [1] * 10), seed=0, n_per_class=50)
    assert np.bincount(np.array([0] * 90 + [1] * 10)[more]).tolist() == [50, 50]


def _raises(path, *fragments, keys=None, reader=io.load_npz):
    with pytest.raises(InputError) as info:
        result = reader(path, keys) if keys is not None else reader(path)
        if not isinstance(result, dict):
            list(result)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message


def test_missing_and_corrupt_files(tmp_path, path):
    _raises(tmp_path / "nope.npz", "file not found")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"this is not a zip archive" * 10)
    _raises(junk, "not a valid NPZ")
    cut = tmp_path / "cut.npz"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    _raises(cut, "not a valid NPZ")


def test_missing_key_lists_the_keys_present(tmp_path, columns):
    p = tmp_path / "few.npz"
    np.savez(p, images_u=columns["images_u"], direction=columns["direction"])
    _raises(p, "missing key(s) images_x", "the file holds direction, images_u", keys=["images_u", "images_x"])
    _raises(p, "missing key(s) images_v, images_x, energy", keys=io.DIRECTION_KEYS, reader=io.NpzSource)
    _raises(p, "missing key(s) images_x", keys=["images_x"], reader=io.iter_chunks)


def test_wrong_shapes(tmp_path, columns):
    p = tmp_path / "wide.npz"
    np.savez(p, images_u=np.zeros((4, 128, 17), np.float32), direction=np.zeros((4, 3), np.float32))
    _raises(p, "'images_u' has shape (4, 128, 17), expected (rows, 128, 16)")
    _raises(p, "expected (rows, 128, 16)", keys=["images_u"], reader=io.iter_chunks)
    q = tmp_path / "rows.npz"
    np.savez(q, images_u=columns["images_u"][:5], direction=columns["direction"][:4])
    _raises(q, "disagree on the number of rows")


def test_nan_values(tmp_path, columns):
    bad_direction = columns["direction"].copy()
    bad_direction[3, 1] = np.nan
    p = tmp_path / "nan_direction.npz"
    np.savez(p, direction=bad_direction)
    _raises(p, "'direction' holds NaN", "first row 3")
    bad_image = columns["images_x"].copy()
    bad_image[11, 5, 5] = np.nan
    q = tmp_path / "nan_image.npz"
    np.savez(q, images_x=bad_image, energy=columns["energy"])
    source = io.NpzSource(q, ["images_x", "energy"])  # opening stays cheap: images are checked as read
    source.read_rows(np.arange(10))
    with pytest.raises(InputError, match=r"'images_x' holds NaN.*first row 11") as info:
        source.read_rows(np.array([2, 11]))
    assert str(q) in str(info.value)
    _raises(q, "first row 11", keys=["images_x"], reader=io.iter_chunks)


def test_truncated_compressed_member(tmp_path, columns):
    p = tmp_path / "deflated.npz"
    np.savez_compressed(p, images_x=columns["images_x"])
    with zipfile.ZipFile(p) as zf:
        info = zf.getinfo("images_x.npy")
    data = bytearray(p.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + 200
    data[start : start + 400] = b"\0" * 400  # damage the deflate stream
    p.write_bytes(bytes(data))
    _raises(p, "images_x", keys=["images_x"])


def test_nan_counts_cover_the_whole_file(tmp_path, columns):
    images = columns["images_x"].copy()
    images[:20, 3, 4] = np.nan  # rows 0-19: more than one chunk or batch
    p, q = tmp_path / "nan20.npz", tmp_path / "nan20_deflated.npz"
    np.savez(p, images_x=images, energy=columns["energy"])
    np.savez_compressed(q, images_x=images, energy=columns["energy"])
    whole = "'images_x' holds NaN or infinite values in 20 of 60 row(s), first row 0"
    small_chunks = functools.partial(io.iter_chunks, chunk_rows=8)
    for path in (p, q):
        _raises(path, whole, keys=["images_x", "energy"], reader=small_chunks)
    with pytest.raises(InputError) as info:
        io.NpzSource(p, ["images_x", "energy"]).read_rows(np.array([30, 6, 2, 40, 17]))  # a shuffled batch
    assert str(p) in str(info.value) and whole in str(info.value), str(info.value)
