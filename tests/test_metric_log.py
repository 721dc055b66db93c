"""TensorBoard events and the console line of `fit`: the event files read back (record framing
and CRCs checked here, not by tensorboardX) hold exactly the scalars of metrics.jsonl, each epoch
once, also after a resume that redoes an epoch; one console line per epoch with --no-progress."""

import contextlib
import dataclasses
import io
import shutil
import struct

import jax
import numpy as np
import pytest
from tensorboardX.crc32c import crc32c
from tensorboardX.proto.event_pb2 import Event

from jaxhep import metric_log
from jaxhep.mesh import make_mesh
from jaxhep.runs import Run
from jaxhep.train import TrainConfig, Trainer, fit
from tests.toy import ToyMLP, toy_data, toy_fns

# 512 rows, batch 64, 4 steps a call: 8 steps an epoch.
CFG = TrainConfig(epochs=3, batch_size=64, steps_per_call=4, progress=False, patience=5, learning_rate=3e-3)
N = 512
PREFIX = {"model": "toy", "range": "1-3"}


def _masked_crc(data: bytes) -> int:
    # TFRecord's masked CRC-32C (tensorflow/core/lib/hash/crc32c.h: Mask).
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_events(directory) -> list[Event]:
    """Every Event of the event files directly in `directory`, oldest file first. A TFRecord is
    uint64 length, uint32 masked CRC of the length, the data, uint32 masked CRC of the data."""
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value (RFC 3720, B.4)
    events = []
    for path in sorted(directory.glob("events.out.tfevents.*")):
        data, pos = path.read_bytes(), 0
        while pos < len(data):
            header = data[pos : pos + 8]
            (length,) = struct.unpack("<Q", header)
            (header_crc,) = struct.unpack("<I", data[pos + 8 : pos + 12])
            body = data[pos + 12 : pos + 12 + length]
            (body_crc,) = struct.unpack("<I", data[pos + 12 + length : pos + 16 + length])
            assert header_crc == _masked_crc(header) and body_crc == _masked_crc(body), path
            events.append(Event.FromString(body))
            pos += 16 + length
    return events


def scalar_points(directory) -> list[tuple[str, int, float]]:
    """(tag, step, value) of every scalar in the folder's event files."""
    return [(v.tag, e.step, v.simple_value) for e in read_events(directory) for v in e.summary.value]


def expected_points(records, prefix) -> list[tuple[str, int, float]]:
    """What the event files must hold for these metrics.jsonl records: every numeric field but
    `step` and the prefix labels, at that step, as float32 (TensorBoard's simple_value)."""
    skip = {"step", "time", *prefix}
    return [
        (k, r["step"], float(np.float32(v)))
        for r in records
        for k, v in r.items()
        if k not in skip and isinstance(v, (int, float)) and not isinstance(v, bool)
    ]


def _fit(run, cfg=CFG):
    x, y = toy_data(N)
    read, loss_fn, predict_fn, validate = toy_fns(x, y)
    # One device: the fastest compile; the writers do not care about the mesh.
    mesh = make_mesh(jax.devices()[:1])
    trainer = Trainer(ToyMLP(), loss_fn, predict_fn, cfg, mesh, total_steps=cfg.epochs * 8)
    return fit(trainer, read, N, validate, run.path / "ckpt", run=run, desc="toy", log_prefix=PREFIX)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 3-epoch toy training in a run, without progress bars; (run, result, its stdout)."""
    run = Run.create(tmp_path_factory.mktemp("runs"), "toy", {"toy": {}})
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = _fit(run)
    return run, result, out.getvalue()


def test_the_event_files_hold_the_scalars_of_metrics_jsonl_at_each_step(trained):
    run, result, _ = trained
    records = run.read_log()
    assert [r["step"] for r in records] == [8, 16, 24] and len(result.history) == 3
    directory = run.path / "tensorboard" / "toy" / "1-3"
    points = scalar_points(directory)
    assert points == expected_points(records, PREFIX)
    tags = {tag for tag, _, _ in points}
    assert {"epoch", "loss", "accuracy", "grad_norm", "val_accuracy", "epoch_seconds"} <= tags
    assert not tags & {"step", "model", "range", "time"}
    # The first event of a file is its version header; one summary event per epoch.
    events = read_events(directory)
    assert events[0].file_version == "brain.Event:2"
    assert [e.step for e in events if e.summary.value] == [8, 16, 24]


def test_one_console_line_per_epoch_without_progress_bars(trained):
    run, result, out = trained
    lines = out.splitlines()
    assert len(lines) == 3 and all(line.startswith("[toy toy/1-3] epoch ") for line in lines), out
    for line, record in zip(lines, result.history):
        fields = line.split("  ")
        assert fields[:3] == [
            f"[toy toy/1-3] epoch {record['epoch']}/3",
            f"loss {record['loss']:.4g}",
            f"val_accuracy {record['val_accuracy']:.4g}",
        ]
        seconds = float(fields[3].removesuffix(" s"))
        assert fields[3].endswith(" s") and len(fields) == 4
        assert record["epoch_seconds"] - 0.1 <= seconds < 60  # the epoch's training and more


def test_a_resume_that_redoes_an_epoch_leaves_each_step_once(trained, tmp_path):
    run, _, _ = trained
    copy = Run.open(shutil.copytree(run.path, tmp_path / "toy" / run.run_id))
    latest = copy.path / "ckpt" / "latest"
    shutil.rmtree(latest / "24")  # epoch 3's checkpoint lost: the resume redoes epoch 3
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = _fit(copy)
    assert result.resumed_from_epoch == 2
    assert [line.split("  ")[0] for line in out.getvalue().splitlines()] == ["[toy toy/1-3] epoch 3/3"]
    records = copy.read_log()
    assert [r["epoch"] for r in records] == [1, 2, 3]
    points = scalar_points(copy.path / "tensorboard" / "toy" / "1-3")
    assert points == expected_points(records, PREFIX)  # each (tag, step) once, as in metrics.jsonl
    steps = [step for tag, step, _ in points if tag == "loss"]
    assert steps == [8, 16, 24]


def test_the_log_replays_only_its_own_trainings_records_and_skips_a_cut_line(tmp_path):
    run = Run.create(tmp_path, "toy", {})
    run.log({"model": "a", "epoch": 1, "step": 10, "loss": 1.5})
    run.log({"model": "b", "epoch": 1, "step": 10, "loss": 2.5, "note": "text", "nan_guard": True})
    run.log({"model": "b", "event": "calibrated"})  # not an epoch record
    with open(run.path / "metrics.jsonl", "a") as f:
        f.write('{"model": "b", "epoch": 2, "st')  # a kill mid-append
    log = metric_log.TensorBoardLog(run, {"model": "b"})
    log({"model": "b", "epoch": 2, "step": 20, "loss": 0.25, "val_auc": 0.75}, None, None)
    log.close()
    points = scalar_points(run.path / "tensorboard" / "b")
    assert points == [
        ("epoch", 10, 1.0),
        ("loss", 10, 2.5),
        ("epoch", 20, 2.0),
        ("loss", 20, 0.25),
        ("val_auc", 20, 0.75),
    ]
    assert not (run.path / "tensorboard" / "a").exists()
    # Opened again (a restart): one file, holding what metrics.jsonl holds (epoch 2 never got there).
    metric_log.TensorBoardLog(run, {"model": "b"}).close()
    assert len(list((run.path / "tensorboard" / "b").iterdir())) == 1
    assert scalar_points(run.path / "tensorboard" / "b") == points[:2]


def test_training_tags_name_safe_folders(tmp_path):
    run = Run(tmp_path, "pid", "r1")
    assert metric_log.training_tag({"model": "fse", "range": "full"}) == "fse/full"
    assert metric_log.training_tag(None, "filter") == "filter"
    board = run.path / "tensorboard"
    assert metric_log.event_dir(run, {"task": "direction", "member": 0}) == board / "direction" / "0"
    assert metric_log.event_dir(run, {"model": "a b/c", "x": ".."}) == board / "a_b_c" / "_"


def test_only_the_primary_process_writes_or_prints(tmp_path, monkeypatch, capsys):
    run = Run.create(tmp_path, "toy", {})
    monkeypatch.setattr(metric_log, "is_primary", lambda: False)
    log, console = metric_log.default_callbacks(run, "toy", {"model": "a"})
    trainer = type("T", (), {"cfg": dataclasses.replace(CFG, progress=False)})()
    record = {"model": "a", "epoch": 1, "step": 8, "loss": 0.5}
    log(record, trainer, None)
    console(record, trainer, None)
    log.close()
    assert not (run.path / "tensorboard").exists() and capsys.readouterr().out == ""


def test_the_line_goes_through_tqdm_write_when_progress_bars_are_on(monkeypatch):
    written = []
    monkeypatch.setattr(metric_log.tqdm, "write", lambda line, file=None: written.append(line))
    trainer = type("T", (), {"cfg": dataclasses.replace(CFG, progress=True)})()
    metric_log.ConsoleLine("pid fse/full")({"epoch": 2, "loss": 0.31234, "val_accuracy": 0.9}, trainer)
    assert len(written) == 1
    assert written[0].startswith("[pid fse/full] epoch 2/3  loss 0.3123  val_accuracy 0.9  ")
