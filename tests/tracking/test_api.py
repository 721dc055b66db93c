"""`load_predictor` on the tiny runs' folders: from an event's hits (and cells) to the run's own tracks."""

import json
import shutil

import numpy as np
import pytest

from jaxhep.errors import InputError
from jaxhep.tracking.api import load_predictor
from jaxhep.tracking.config import run_config
from jaxhep.tracking.dataset import event_folder
from jaxhep.tracking.io import read_event
from jaxhep.tracking.score import trackml_score
from jaxhep.tracking.tracks import read_submission
from tests.approx import approx


def _test_events(run, dirs):
    """(the run's event folder, its submission, the test events' names)."""
    folder = event_folder(run_config(run.config, run.path).data, dirs["data"])
    sub = read_submission(run.path / "submission.csv")
    return folder, sub, [f"event{i:09d}" for i in np.unique(sub["event_id"])]


def _hits_only(folder, name, to):
    """A copy of one event without truth: its hits and cells files, as a test set has them."""
    for part in ("hits", "cells"):
        for path in folder.glob(f"{name}-{part}.csv*"):
            shutil.copy(path, to / path.name)
    return to / name


def test_predictor_gives_the_runs_tracks_and_score_from_hits_and_cells(dirs, quick_run, tmp_path):
    predictor = load_predictor(quick_run.path)
    assert predictor.filter is not None and predictor.cfg.cascade.stages == 2
    folder, sub, names = _test_events(quick_run, dirs)
    scores = []
    for name in names:
        out = predictor.predict(_hits_only(folder, name, tmp_path))
        rows = sub["event_id"] == int(name[-9:])
        np.testing.assert_array_equal(out["hit_id"], sub["hit_id"][rows])  # every hit, in file order
        np.testing.assert_array_equal(out["track_id"], sub["track_id"][rows])
        truth = read_event(folder, name).truth
        scores.append(
            trackml_score(
                truth["hit_id"], truth["particle_id"], truth["weight"], out["hit_id"], out["track_id"]
            )
        )
    report = json.loads((quick_run.path / "metrics.json").read_text())
    assert np.mean(scores) == approx(report["tracks"]["score"], rel=1e-12)
    assert np.mean(scores) > 0.05  # well above a track per hit (score 0)


def test_edge_scores_of_a_read_event_are_the_pruned_cascades(dirs, quick_run):
    predictor = load_predictor(quick_run.path)
    folder, _, names = _test_events(quick_run, dirs)
    event = read_event(folder, names[0])  # an event already read (truth present, and unused)
    graph, scores = predictor.edge_scores(event)
    assert scores.shape == (graph.n_edge,) and np.all((scores >= 0) & (scores <= 1))
    dropped = np.mean(scores == 0)  # the edges the filter dropped score 0
    assert 0 < dropped < 1
    true = graph.labels > 0
    assert scores[true].mean() > scores[~true].mean()
    np.testing.assert_array_equal(
        predictor.predict(event)["track_id"], predictor.predict(folder / names[0])["track_id"]
    )


def test_predictor_of_a_run_that_reused_another_runs_filter(dirs, reused_filter_run, tmp_path):
    predictor = load_predictor(reused_filter_run.path)
    folder, sub, names = _test_events(reused_filter_run, dirs)
    out = predictor.predict(_hits_only(folder, names[-1], tmp_path))
    np.testing.assert_array_equal(out["track_id"], sub["track_id"][sub["event_id"] == int(names[-1][-9:])])


def test_a_folder_that_is_not_a_finished_run_is_one_clear_error(tmp_path, quick_run):
    with pytest.raises(InputError, match="not a run directory"):
        load_predictor(tmp_path)
    unfinished = tmp_path / "run"
    unfinished.mkdir()
    shutil.copy(quick_run.path / "config.json", unfinished / "config.json")
    with pytest.raises(InputError, match="has not finished"):
        load_predictor(unfinished)
