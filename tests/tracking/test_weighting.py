"""The loss of `loss.pt_weighting`: each true edge weighs its particle's TrackML pT weight, by hand and
against `score.pt_weight`; `auto_pos_weight` balances the weighted positives; the loss is the weighted
BCE of those weights. The first stage's own network sizes (`cascade.filter_width/filter_layers`)."""

import dataclasses
from types import SimpleNamespace

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxhep import losses
from jaxhep.tracking import config
from jaxhep.tracking.config import LossConfig, stage_model
from jaxhep.tracking.model import EdgeClassifier, EdgeClassifierConfig, batched_logits
from jaxhep.tracking.score import pt_weight
from jaxhep.tracking.training import auto_pos_weight, edge_weight, make_loss_fn
from tests.approx import approx

PT = np.array([0.01, 0.1, 0.5, 1.75, 3.0, 20.0, 2.0], np.float32)
LABELS = np.array([1, 1, 1, 1, 1, 1, 0], np.float32)


def test_edge_weight_by_hand_and_as_the_score_weighs_hits():
    # 0 below 0.05 GeV, 0.2 up to 0.5, linear to 1.0 at 3 GeV (1.75 GeV: half way, 0.6), 1 above;
    # a false edge weighs 1 whatever its (zero) pT.
    expected = [0.0, 0.2, 0.2, 0.6, 1.0, 1.0, 1.0]
    assert edge_weight(LABELS, PT) == approx(expected, abs=1e-6)
    assert edge_weight(jnp.asarray(LABELS), jnp.asarray(PT)) == approx(expected, abs=1e-6)
    assert edge_weight(LABELS[:-1], PT[:-1]) == approx(pt_weight(PT[:-1]), abs=1e-6)


def test_auto_pos_weight_balances_the_weighted_positives():
    graph = SimpleNamespace(
        labels=np.array([1, 1, 0, 0, 0, 0, 1], np.float32),
        edge_pt=np.array([0.1, 3.0, 0, 0, 0, 0, 5.0], np.float32),
        train_mask=np.array([1, 1, 1, 1, 1, 1, 0], bool),  # the last edge is not trained on
    )
    train = SimpleNamespace(graphs=[graph, graph])
    assert auto_pos_weight(train) == approx(8 / 4)
    assert auto_pos_weight(train, pt_weighting=True) == approx(8 / (2 * (0.2 + 1.0)))


@pytest.mark.parametrize("pt_weighting", [False, True])
def test_the_loss_is_the_weighted_bce_of_those_weights(pt_weighting):
    rng = np.random.default_rng(0)
    n, e = 12, 30
    senders, receivers = rng.integers(0, n, e).astype(np.int32), rng.integers(0, n, e).astype(np.int32)
    labels = (rng.random(e) < 0.3).astype(np.float32)
    edge_pt = np.where(labels > 0, rng.uniform(0.1, 5.0, e), 0.0).astype(np.float32)
    edge_mask = np.arange(e) < 27
    batch = {
        "nodes": rng.normal(size=(1, n, 3)).astype(np.float32),
        "edges": rng.normal(size=(1, e, 6)).astype(np.float32),
        "senders": senders[None],
        "receivers": receivers[None],
        "labels": labels[None],
        "edge_pt": edge_pt[None],
        "edge_mask": edge_mask[None],
        "train_mask": np.ones((1, e), bool),
    }
    model = EdgeClassifier(EdgeClassifierConfig(width=8, heads=2, layers=1, node_in=3), rngs=nnx.Rngs(0))
    loss, _ = make_loss_fn(LossConfig(pt_weighting=pt_weighting), 3.0)(model, batch, None)
    logits = np.asarray(batched_logits(model, batch))[0]
    weight = edge_mask * (edge_weight(labels, edge_pt) if pt_weighting else 1.0)
    expected = losses.weighted_bce(jnp.asarray(logits), jnp.asarray(labels), 3.0, jnp.asarray(weight))
    assert float(loss) == approx(float(expected), rel=1e-5)
    # by hand: sum of w (3 y softplus(-z) + (1 - y) softplus(z)) over sum of the mask's weights
    by_hand = weight * (3.0 * labels * np.logaddexp(0, -logits) + (1 - labels) * np.logaddexp(0, logits))
    assert float(expected) == approx(by_hand.sum() / weight.sum(), rel=1e-5)


def test_the_filter_has_its_own_sizes_and_the_edges_classifier_the_models():
    cfg = config.quick()
    same = dataclasses.replace(
        cfg, cascade=dataclasses.replace(cfg.cascade, filter_width=None, filter_layers=None)
    )
    assert stage_model(same, "filter") == stage_model(same, "edges") == cfg.model
    cfg = dataclasses.replace(cfg, cascade=dataclasses.replace(cfg.cascade, filter_width=16, filter_layers=0))
    assert (stage_model(cfg, "filter").width, stage_model(cfg, "filter").layers) == (16, 0)
    assert stage_model(cfg, "edges") == cfg.model
    # zero layers: an edge MLP on [h_j, h_i, e_ij], no message passing
    model = EdgeClassifier(stage_model(cfg, "filter"), rngs=nnx.Rngs(0))
    assert len(model.convs) == 0
