"""Typed configs: "a.b=value" overrides with type coercion, and the to_dict / from_dict round trip."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Literal

import pytest

from jaxhep.config import changed_fields, from_dict, override, to_dict
from jaxhep.errors import ConfigError
from jaxhep.train import TrainConfig


@dataclass(frozen=True)
class ModelSection:
    hidden: tuple[int, ...] = (64, 32)
    pair: tuple[int, float] = (1, 0.5)
    names: tuple[str, ...] = ("simple", "dnn")
    name: str = "mlp"
    dropout: float | None = None
    kind: Literal["a", "b"] = "a"
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Experiment:
    model: ModelSection = field(default_factory=ModelSection)
    train: TrainConfig = field(default_factory=TrainConfig)
    tag: str = "base"
    max_rows: int | None = None


BASE = Experiment()


def test_nested_paths_replace_only_their_field_and_leave_the_original_alone():
    cfg = override(BASE, ["train.learning_rate=3e-4", "train.epochs=7", "model.hidden=(256,128)", "tag=run1"])
    assert cfg.train.learning_rate == 3e-4 and type(cfg.train.learning_rate) is float
    assert cfg.train.epochs == 7 and type(cfg.train.epochs) is int
    assert cfg.model.hidden == (256, 128)
    assert cfg.tag == "run1"
    # everything else keeps its default, and the input config is untouched (frozen, replaced)
    assert cfg.train.batch_size == TrainConfig().batch_size and cfg.model.pair == (1, 0.5)
    assert BASE.train.epochs == 10 and BASE.model.hidden == (64, 32) and BASE.tag == "base"
    # later assignments win
    assert override(BASE, ["train.epochs=3", "train.epochs=4"]).train.epochs == 4


@pytest.mark.parametrize(
    "assignment, path, expected",
    [
        ("train.epochs=5.0", ("train", "epochs"), 5),  # an integral float is an int
        ("train.learning_rate=1", ("train", "learning_rate"), 1.0),
        ("train.progress=false", ("train", "progress"), False),
        ("train.progress=True", ("train", "progress"), True),  # Python spelling too
        ("train.grad_clip_norm=none", ("train", "grad_clip_norm"), None),
        ("train.grad_clip_norm=null", ("train", "grad_clip_norm"), None),
        ("train.grad_clip_norm=2", ("train", "grad_clip_norm"), 2.0),
        ("max_rows=1000", ("max_rows",), 1000),
        ("max_rows=None", ("max_rows",), None),
        ("model.dropout=0.25", ("model", "dropout"), 0.25),
        ("model.hidden=[8]", ("model", "hidden"), (8,)),
        ("model.hidden=(8,)", ("model", "hidden"), (8,)),
        ("model.hidden=16", ("model", "hidden"), (16,)),  # a bare value is a 1-tuple
        ("model.pair=(3,2)", ("model", "pair"), (3, 2.0)),
        ("model.kind=b", ("model", "kind"), "b"),
        ("train.optimizer=sgd", ("train", "optimizer"), "sgd"),
        ('model.extra={"k": 1}', ("model", "extra"), {"k": 1}),
        ("tag=a=b", ("tag",), "a=b"),  # only the first '=' splits
    ],
)
def test_values_are_coerced_to_the_declared_type(assignment, path, expected):
    value = override(BASE, [assignment])
    for name in path:
        value = getattr(value, name)
    assert value == expected
    assert type(value) is type(expected)
    if isinstance(expected, tuple):
        assert [type(v) for v in value] == [type(v) for v in expected]


def test_a_whole_section_can_be_given_as_a_mapping():
    cfg = override(BASE, ['train={"epochs": 3, "optimizer": "sgd"}'])
    assert cfg.train == TrainConfig(epochs=3, optimizer="sgd")


def test_parenthesised_tuple_of_strings():
    """`--set pid.models=(simple,dnn)`: the tuple syntax the docstring shows, for a tuple[str, ...].

    jaxhep/pid/config.py has two such fields (models, ranges).
    """
    cfg = override(BASE, ["model.names=(simple,fse)"])
    assert cfg.model.names == ("simple", "fse")
    assert override(BASE, ["model.names=(full,0.7-1.5)"]).model.names == ("full", "0.7-1.5")


def test_string_fields_keep_the_text_as_typed():
    """A str field gets the raw text, not the str() of its JSON reading ('1e3' -> '1000.0')."""
    assert override(BASE, ["tag=1e3"]).tag == "1e3"
    assert override(BASE, ["tag=true"]).tag == "true"
    assert override(BASE, ["tag=1.10"]).tag == "1.10"


@pytest.mark.parametrize(
    "assignment, key, choices",
    [
        ("train.lr=1e-3", "train.lr", ["epochs", "learning_rate", "optimizer"]),
        ("trian.epochs=3", "trian.epochs", ["model", "train", "tag", "max_rows"]),
        ("model.hiden=(1,2)", "model.hiden", ["hidden", "pair", "dropout"]),
    ],
)
def test_unknown_key_names_the_key_and_the_choices(assignment, key, choices):
    with pytest.raises(ConfigError) as info:
        override(BASE, [assignment])
    msg = str(info.value)
    assert repr(key) in msg and "choices" in msg
    for choice in choices:
        assert choice in msg


@pytest.mark.parametrize(
    "assignment, needle",
    [
        ("train.epochs=2.5", "integer"),
        ("train.epochs=ten", "integer"),
        ("train.epochs=true", "integer"),  # a bool is not an int here
        ("train.learning_rate=fast", "number"),
        ("train.progress=1", "true/false"),
        ("train.progress=yes", "true/false"),
        ("train.grad_clip_norm=abc", "fits none"),
        ("max_rows=1.5", "fits none"),
        ("model.pair=(1,2,3)", "expected 2 values"),
        ("model.kind=c", "not one of"),
        ("model.extra=5", "mapping"),
        ("model=7", "mapping"),
        ("train.epochs.x=1", "no fields"),
        ("train.epochs", "key.path=value"),
    ],
)
def test_bad_values_are_config_errors(assignment, needle):
    with pytest.raises(ConfigError, match=needle) as info:
        override(BASE, [assignment])
    assert assignment.split("=")[0] in str(info.value) or needle == "key.path=value"


def test_round_trip_through_json_of_a_nested_frozen_config():
    cfg = override(
        BASE,
        [
            "model.hidden=(5,6,7)",
            "model.dropout=0.1",
            'model.extra={"a": [1, 2]}',
            "train.grad_clip_norm=null",
            "train.schedule=cosine",
            "max_rows=12",
        ],
    )
    data = to_dict(cfg)
    # JSON-ready: plain dicts and lists only, so it survives json.dumps / loads unchanged
    assert data["model"]["hidden"] == [5, 6, 7] and data["train"]["grad_clip_norm"] is None
    text = json.dumps(data)
    back = from_dict(Experiment, json.loads(text))
    assert back == cfg
    assert type(back.model) is ModelSection and type(back.train) is TrainConfig
    assert back.model.hidden == (5, 6, 7) and isinstance(back.model.pair, tuple)
    assert isinstance(back.model.pair[1], float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        back.train.epochs = 1  # type: ignore[misc]


def test_from_dict_fills_defaults_and_rejects_unknown_or_mistyped_keys():
    assert from_dict(Experiment, {"train": {"epochs": 2}}) == Experiment(train=TrainConfig(epochs=2))
    with pytest.raises(ConfigError, match="'train.learning_rat'.*TrainConfig"):
        from_dict(Experiment, {"train": {"learning_rat": 0.1}})
    with pytest.raises(ConfigError, match="integer"):
        from_dict(Experiment, {"train": {"epochs": "many"}})


def test_changed_fields_names_each_differing_leaf_by_its_path():
    cfg = override(BASE, ["train.epochs=7", "model.hidden=(8,)", "tag=base"])
    assert changed_fields(BASE, cfg) == {
        "model.hidden": ((64, 32), (8,)),
        "train.epochs": (TrainConfig().epochs, 7),
    }
    assert changed_fields(cfg, cfg) == {}
