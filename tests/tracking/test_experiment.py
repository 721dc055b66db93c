"""The tracking experiment end to end (tiny), and a few hundred steps that stay finite and learn."""

import json

import jax
import numpy as np
from flax import nnx

from experiments import tracking as tracking_experiment
from jaxhep.mesh import make_mesh
from jaxhep.pipeline import EpochPlan
from jaxhep.tracking import config, dataset
from jaxhep.tracking.config import LossConfig
from jaxhep.tracking.model import EdgeClassifier, EdgeClassifierConfig, batched_logits
from jaxhep.tracking.tracks import read_submission
from jaxhep.tracking.training import auto_pos_weight, make_loss_fn
from jaxhep.train import TrainConfig, Trainer


def test_quick_run_writes_report_and_a_valid_submission(dirs, quick_run):
    run = quick_run
    report = json.loads((run.path / "metrics.json").read_text())
    assert 0.0 <= report["tracks"]["score"] <= 1.0 and 0.5 <= report["test"]["auc"] <= 1.0
    assert set(report["graph"]) == {"geometric", "knn"}
    assert {"roc.png", "efficiency_vs_pt.png", "efficiency_vs_eta.png", "event_display.png"} <= {
        p.name for p in (run.path / "plots").iterdir()
    }
    sub = read_submission(run.path / "submission.csv")
    cfg = config.quick()
    data_cfg = cfg.data.__class__(**{**cfg.data.__dict__, "n_events": 8, "pileup": 5.0})
    graphs, prefixes = dataset.load_graphs(data_cfg, dirs["data"])
    test_graphs = graphs[-data_cfg.test_events :]
    for g, prefix in zip(test_graphs, prefixes[-data_cfg.test_events :]):
        rows = sub["event_id"] == int(prefix[-9:])
        assert np.array_equal(np.sort(sub["hit_id"][rows]), np.sort(g.hit_id))  # every hit exactly once


def test_two_stages_filter_keeps_the_target_recall_and_caches_its_scores(quick_run):
    report = json.loads((quick_run.path / "metrics.json").read_text())
    f = report["filter"]
    assert f["validation"]["recall"] >= f["target_recall"]  # by construction, on validation
    assert f["test"]["edges_per_event_after"] <= f["test"]["edges_per_event_before"]
    assert len(f["epochs"]) == 2 and "val_kept" in f["epochs"][0]
    assert (quick_run.path / "filter_scores.npz").exists()
    assert (quick_run.path / "ckpt_filter" / "best").is_dir()
    # the cascade's recall (whole graph) cannot exceed what the filter kept of the test's true edges
    assert report["test"]["recall"] <= f["test"]["recall"] + 1e-9
    assert "## Two stages" in (quick_run.path / "report.md").read_text()
    assert (quick_run.path / "plots" / "training_filter.png").exists()


def test_resumed_finished_run_reuses_the_cached_filter_scores(dirs, quick_run):
    before = json.loads((quick_run.path / "metrics.json").read_text())
    n_records = len(quick_run.read_log())
    args = ["--resume", str(quick_run.path), "--no-progress", "--devices", "1", "--data-dir", dirs["data"]]
    tracking_experiment.main(args)
    after = json.loads((quick_run.path / "metrics.json").read_text())
    assert len(quick_run.read_log()) == n_records  # nothing trained again, neither stage
    assert after["filter"]["test"] == before["filter"]["test"]
    assert after["test"] == before["test"]


def test_a_finished_runs_filter_can_be_reused(quick_run, reused_filter_run):
    first = json.loads((quick_run.path / "metrics.json").read_text())
    run = reused_filter_run
    report = json.loads((run.path / "metrics.json").read_text())
    # the same filter (restored from the first run's best checkpoint) scores the same events alike
    assert report["filter"]["test"] == first["filter"]["test"]
    assert report["filter"]["epochs"] == [] and not (run.path / "ckpt_filter").exists()


def test_loss_stays_finite_and_falls_over_hundreds_of_steps(dirs):
    cfg = config.DataConfig(n_events=8, pileup=5.0, val_events=1, test_events=1)
    graphs, prefixes = dataset.load_graphs(cfg, dirs["data"])
    train, _, _ = dataset.split(graphs, prefixes, cfg, bidirectional=True)
    model = EdgeClassifier(EdgeClassifierConfig(width=16, heads=2, layers=2), rngs=nnx.Rngs(0))
    tcfg = TrainConfig(batch_size=2, steps_per_call=25, learning_rate=3e-3, progress=False)
    mesh = make_mesh(jax.devices()[:2])
    trainer = Trainer(
        model, make_loss_fn(LossConfig(), auto_pos_weight(train)), batched_logits, tcfg, mesh, 300
    )
    from jaxhep.mesh import shard_batch

    plan = EpochPlan.fit_to(len(train), 2, 1)
    rng = np.random.default_rng(0)
    losses = []
    for call in range(12):  # 12 calls x 25 steps = 300 steps
        idx = rng.integers(0, len(train), (25, 2))
        chunk = train.read(idx)
        metrics = trainer.train_chunk(shard_batch(chunk, mesh, 2, batch_axis=1), call * 25)
        losses.extend(np.asarray(metrics["loss"]).tolist())
        assert np.asarray(metrics["finite"]).all()
    assert plan.steps_per_epoch >= 1 and np.isfinite(losses).all()
    assert np.mean(losses[-50:]) < 0.7 * np.mean(losses[:25])
