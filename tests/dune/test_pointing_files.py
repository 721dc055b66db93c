"""Folders of ml_for_pointing cluster files (per-plane `images` + `metadata`) converted to our layout:
the arrays, the U/V/X pairing by (event, match_id), the cache, bad inputs, and a run on such a folder."""

import json
import os

import numpy as np
import pytest

from experiments import dune as dune_experiment
from jaxhep import cli
from jaxhep.dune import dataset, io, pointing_files
from jaxhep.dune.config import DataConfig
from jaxhep.dune.images import log_normalise
from jaxhep.errors import InputError
from tests.smoke import smoke_args

PLANE_ID = {"U": 0, "V": 1, "X": 2}


def _images(rng, n: int, width: int) -> np.ndarray:
    """Raw ADC images [n, 128, width] as their writer makes them: a few pulses near the centre."""
    images = np.zeros((n, 128, width), np.float32)
    rows = np.repeat(np.arange(n), 6)
    ticks = rng.integers(40, 90, rows.size)
    channels = rng.integers(width // 2 - 7, width // 2 + 7, rows.size)
    images[rows, ticks, channels] = rng.uniform(60.0, 3000.0, rows.size)
    return images


def _metadata(width: int, plane: str, rows: list[dict]) -> np.ndarray:
    """Metadata [n, width] in the writer's column order for that width (pointing_files docstring)."""
    m = np.zeros((len(rows), width), np.float32)
    for i, r in enumerate(rows):
        if width in (11, 12):
            m[i, :3] = r["marley"], r["main"], r["es"]
            m[i, 3:6], m[i, 6:9], m[i, 9], m[i, 10] = r["pos"], r["mom"], r["nu_e"], 7.0
            if width == 12:
                m[i, 11] = PLANE_ID[plane]
            continue
        m[i, :4] = r["event"], r["marley"], r["main"], r["es"]
        m[i, 4:7], m[i, 7:10], m[i, 10:12], m[i, 12] = r["pos"], r["mom"], (3.0, 7.0), PLANE_ID[plane]
        if width >= 14:
            m[i, 13] = r["match"]
        if width == 18:
            m[i, 14], m[i, 15:18] = r["nu_e"], r["nu_mom"]
    return m


def _save(path, images, metadata):
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, images=images, metadata=metadata)  # what generate_cluster_arrays.py does


def write_folder(folder, n_files=2, events=4, width=32, columns=14, flat=False, seed=0) -> dict:
    """Files {name}_plane{U,V,X}.npz (in U/ V/ X/, or flat) of `events` events each: per event a
    main-track ES cluster on every plane (the same match_id) and a background cluster; the U and V
    rows in another order than X's; in the first file a CC event's main track on every plane and
    one more X main track without a U/V partner.

    Returns the expected direction sample: images_u/v/x (raw), momentum, position, nu_energy,
    nu_momentum, in X-file and X-row order.
    """
    rng = np.random.default_rng(seed)
    expected = {k: [] for k in ("images_u", "images_v", "images_x", "mom", "pos", "nu_e", "nu_mom")}
    for f in range(n_files):
        rows = {p: [] for p in "UVX"}
        images = {p: [] for p in "UVX"}
        for e in range(events):
            event = 10 * f + e  # event numbers as in their files, match_id repeating across events
            mom = rng.normal(size=3) * 0.01  # GeV/c
            track = dict(event=event, marley=1, main=1, es=1, match=e % 2, pos=rng.uniform(-300, 300, 3))
            track.update(mom=mom, nu_e=rng.uniform(5, 40), nu_mom=rng.normal(size=3) * 0.02)
            # A background cluster, from MARLEY (a gamma's blob) every other event: not the main track.
            background = dict(track, marley=e % 2, main=0, match=-1, mom=rng.normal(size=3))
            for p in "UVX":
                pair = _images(rng, 2, width)
                rows[p] += [track, background]
                images[p].append(pair)
                expected[f"images_{p.lower()}"].append(pair[0])
            expected["mom"].append(mom)
            expected["pos"].append(track["pos"])
            expected["nu_e"].append(track["nu_e"])
            expected["nu_mom"].append(track["nu_mom"])
        if f == 0:
            cc = dict(rows["X"][0], event=99, es=0)  # a CC event's main track: not in the sample
            for p in "UVX":
                rows[p].append(cc)
                images[p].append(_images(rng, 1, width))
            rows["X"].append(dict(rows["X"][0], match=5))  # no U, V cluster has match_id 5
            images["X"].append(_images(rng, 1, width))
        for p in "UVX":
            order = np.arange(len(rows[p]))
            if p != "X":
                order = rng.permutation(order)  # pairs must come from match_id, not the row order
            meta = _metadata(columns, p, [rows[p][i] for i in order])
            _save(
                (folder if flat else folder / p) / f"es_{f:03d}_plane{p}.npz",
                np.concatenate(images[p])[order],
                meta,
            )
    return {k: np.array(v) for k, v in expected.items()}


def _convert(task, folder, data_dir) -> dict[str, np.ndarray]:
    path = pointing_files.convert(task, folder, data_dir)
    return {k: np.asarray(v) for k, v in io.load_npz(path).items()}


def _ours(raw: np.ndarray) -> np.ndarray:
    """Their raw images [n, 128, 16 or 32] in our layout: the central 16 channels, log-normalised."""
    if raw.shape[2] == 32:
        raw = raw[:, :, 8:24]
    return log_normalise(raw)


def test_direction_pairs_the_planes_by_match_id(tmp_path, capsys):
    folder = tmp_path / "clusters"
    want = write_folder(folder)
    got = _convert("direction", folder, tmp_path / "data")
    assert "1 of 9 X main-track clusters" in capsys.readouterr().out  # the X cluster without a partner
    assert len(got["direction"]) == 8
    for key in ("images_u", "images_v", "images_x"):
        assert got[key].shape == (8, 128, 16) and got[key].dtype == np.float32
        np.testing.assert_allclose(got[key], _ours(want[key]), rtol=1e-6, err_msg=key)
    unit = want["mom"] / np.linalg.norm(want["mom"], axis=1, keepdims=True)
    np.testing.assert_allclose(got["direction"], unit, rtol=1e-5, atol=1e-6)
    p_mev = np.linalg.norm(want["mom"].astype(np.float32), axis=1) * 1000.0
    np.testing.assert_allclose(got["energy"], np.sqrt(p_mev**2 + 0.51099895**2) - 0.51099895, rtol=1e-5)
    np.testing.assert_allclose(got["vertex"], want["pos"].astype(np.float32) * 10.0, rtol=1e-6)  # cm -> mm
    assert got["interaction"].tolist() == [0] * 8  # ES
    assert "nu_energy" not in got  # 14 columns: no neutrino energy
    meta = json.loads(str(got["metadata"]))
    assert meta["source"] == "ml_for_pointing" and meta["metadata_columns"] == [14]


def test_flat_folder_with_18_columns_and_16_channels(tmp_path):
    folder = tmp_path / "flat"
    want = write_folder(folder, n_files=1, events=3, width=16, columns=18, flat=True, seed=1)
    got = _convert("direction", folder, tmp_path / "data")
    np.testing.assert_allclose(got["images_v"], log_normalise(want["images_v"]), rtol=1e-6)
    np.testing.assert_allclose(got["nu_energy"], want["nu_e"], rtol=1e-6)
    unit = want["nu_mom"] / np.linalg.norm(want["nu_mom"], axis=1, keepdims=True)
    np.testing.assert_allclose(got["nu_direction"], unit, rtol=1e-5, atol=1e-6)


def test_maintrack_reads_every_x_cluster(tmp_path):
    # The older batched files: 12 columns, no event column (a running id per cluster), 16 channels.
    rng = np.random.default_rng(2)
    old = tmp_path / "old"
    labels = [[1, 0, 0], [0, 1]]
    for b, lab in enumerate(labels):
        rows = [dict(marley=1, main=v, es=1, pos=(1, 2, 3), mom=(0, 0, 1), nu_e=9.0) for v in lab]
        _save(old / f"clusters_planeX_batch{b:04d}.npz", _images(rng, len(lab), 16), _metadata(12, "X", rows))
        _save(old / f"clusters_planeU_batch{b:04d}.npz", _images(rng, 1, 16), _metadata(12, "U", rows[:1]))
    got = _convert("maintrack", old, tmp_path / "data")
    assert got["mt_label"].tolist() == [1, 0, 0, 0, 1]
    assert got["mt_event"].tolist() == [0, 1, 2, 3, 4]
    assert got["mt_images"].shape == (5, 128, 16)

    # The 14-column files: one event id per (file, event); event numbers are not shared across files.
    new = tmp_path / "new"
    write_folder(new, n_files=2, events=2, seed=3)
    got = _convert("maintrack", new, tmp_path / "data")
    x0 = np.load(new / "X" / "es_000_planeX.npz")
    np.testing.assert_allclose(got["mt_images"][:6], _ours(x0["images"]), rtol=1e-6)
    assert got["mt_label"].tolist() == [1, 0, 1, 0, 1, 1] + [1, 0, 1, 0]  # column 2, not is_marley's 1
    assert got["mt_event"].tolist() == [0, 0, 1, 1, 2, 0] + [3, 3, 4, 4]  # events 0, 1, 99; 10, 11


def test_the_conversion_is_made_once_and_again_when_a_file_changes(tmp_path, monkeypatch):
    folder, data = tmp_path / "clusters", tmp_path / "data"
    write_folder(folder, n_files=1, events=3)
    first = pointing_files.convert("direction", folder, data)
    assert first.parent == data / "dune" and first.suffix == ".npz"
    assert isinstance(io.load_npz(first, ["images_x"])["images_x"], np.memmap)  # uncompressed

    def fail(*_):
        raise AssertionError("converted again")

    with monkeypatch.context() as m:
        m.setattr(pointing_files, "_direction", fail)
        assert pointing_files.convert("direction", folder, data) == first
    write_folder(folder, n_files=1, events=4)  # the same names, other contents
    second = pointing_files.convert("direction", folder, data)
    assert second != first and len(io.load_npz(second, ["energy"])["energy"]) == 4
    assert not [p for p in (data / "dune").iterdir() if "tmp" in p.name]


def _break(folder, how):
    """Spoil the folder of write_folder(n_files=1) in one way; returns the file the error must name."""
    x, u = folder / "X" / "es_000_planeX.npz", folder / "U" / "es_000_planeU.npz"
    arrays = dict(np.load(x))
    if how == "no V file":
        (folder / "V" / "es_000_planeV.npz").unlink()
        return x
    if how == "no metadata":
        np.savez(x, images=arrays["images"])
    elif how == "image shape":
        np.savez(x, images=arrays["images"][:, :100], metadata=arrays["metadata"])
    elif how == "15 columns":
        np.savez(x, images=arrays["images"], metadata=np.zeros((len(arrays["images"]), 15), np.float32))
    elif how == "NaN metadata":
        arrays["metadata"][1, 8] = np.nan
        np.savez(x, **arrays)
    elif how == "NaN images":  # found while the NPZ is being written
        u_arrays = dict(np.load(u))
        u_arrays["images"][:] = np.nan
        np.savez(u, **u_arrays)
        return u
    elif how == "normalised":
        u_arrays = dict(np.load(u))
        np.savez(u, images=u_arrays["images"] / 4095.0, metadata=u_arrays["metadata"])
        return u
    elif how == "plane column":
        arrays["metadata"][:, 12] = 0
        np.savez(x, **arrays)
    elif how == "12 columns":
        rows = [dict(marley=1, main=1, es=1, pos=(0, 0, 0), mom=(0, 0, 1), nu_e=1.0)] * len(arrays["images"])
        np.savez(x, images=arrays["images"], metadata=_metadata(12, "X", rows))
    elif how == "not a zip":
        x.write_bytes(b"")
    return x


@pytest.mark.parametrize(
    "how, fragment",
    [
        ("no V file", "V-plane file"),
        ("no metadata", "missing key(s) metadata; the file holds images"),
        ("image shape", "expected (n, 128, 16) or (n, 128, 32)"),
        ("15 columns", "metadata has 15 columns"),
        ("NaN metadata", "'metadata' holds NaN"),
        ("NaN images", "'images' holds NaN"),
        ("normalised", "look normalised already"),
        ("plane column", "plane column holds [0]"),
        ("12 columns", "no match_id"),
        ("not a zip", "not a valid NPZ"),
    ],
)
def test_bad_inputs_are_one_error_naming_the_file(tmp_path, how, fragment):
    folder, data = tmp_path / "clusters", tmp_path / "data"
    write_folder(folder, n_files=1, events=3)
    bad = _break(folder, how)
    with pytest.raises(InputError) as info:
        pointing_files.convert("direction", folder, data)
    assert info.value.path == str(bad) and fragment in info.value.problem, info.value
    assert not (data / "dune").exists() or not list((data / "dune").iterdir())  # nothing half written


def test_folders_without_cluster_files_or_for_channel_tagging(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"looked for clusters_planeX_batch\*.npz and \*_planeX.npz"):
        pointing_files.convert("maintrack", tmp_path / "empty", tmp_path / "data")
    with pytest.raises(InputError, match="no layout to convert to volume_x"):
        pointing_files.convert("channel", tmp_path / "empty", tmp_path / "data")


def test_a_run_on_a_folder_and_the_one_line_error_for_channel(tmp_path, capsys):
    folder = tmp_path / "clusters"
    write_folder(folder, n_files=4, events=10)
    dirs = ["--workdir", str(tmp_path / "runs"), "--data-dir", str(tmp_path / "data")]
    tiny = smoke_args("net.direction.depths=[1,1,1]", "net.direction.base_filters=4")
    tiny += ["--epochs", "1", "--batch-size", "8"]
    run = dune_experiment.main(
        ["direction", *tiny, "--members", "1", "--network", "single_plane", "--data", str(folder), *dirs]
    )  # one branch compiles in half the time; the planes' pairing has its own tests above
    metrics_json = json.loads((run.path / "metrics.json").read_text())
    assert 0 <= metrics_json["networks"]["single_plane"]["mean_angle_deg"] <= 180
    assert str(tmp_path / "data" / "dune" / "pointing_direction_") in (run.path / "report.md").read_text()
    assert os.listdir(tmp_path / "data" / "dune")[0].startswith("pointing_direction_")
    # maintrack's sample from the same folder (a run would only add a classifier's compile time):
    # split by event, so that no event's clusters are on both sides.
    data = dataset.load("maintrack", DataConfig(path=str(folder)), tmp_path / "data")
    assert data.source.path.name.startswith("pointing_maintrack_") and len(data.source) == 4 * 20 + 2
    event = io.load_npz(data.source.path, ["mt_event"])["mt_event"]
    parts = [set(event[data.rows[part]]) for part in ("train", "val", "test")]
    assert sum(map(len, parts)) == len(set().union(*parts)) == 4 * 10 + 1  # + the CC event

    with pytest.raises(SystemExit) as exit_info:
        cli.run_main(dune_experiment.main, ["channel", *tiny, "--data", str(folder), *dirs])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and str(folder) in err and len(err.strip().splitlines()) == 1, err
