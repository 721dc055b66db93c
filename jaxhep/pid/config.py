"""Configuration of a PID experiment: data, networks, momentum ranges, loss, training, evaluation;
`default()` (the seed's setup), `quick()` (a one-minute smoke run) and the task's flags."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from jaxhep.cli import Flag
from jaxhep.errors import ConfigError
from jaxhep.pid.models import ModelConfig
from jaxhep.train import TrainConfig


@dataclass(frozen=True)
class DataConfig:
    """Where the tracks come from and how they are split."""

    path: str | None = None  # CSV / Parquet / O2 ROOT file or glob pattern; None = the simulated sample
    n_tracks: int = 1_000_000  # size of the simulated default sample
    sim_seed: int = 231
    split_seed: int = 231  # the seed's stratified 80/20 split
    test_fraction: float = 0.2
    val_fraction: float = 0.1  # carved out of the training split for early stopping
    max_rows: int | None = None  # use only the first N rows (smoke runs)


@dataclass(frozen=True)
class LossConfig:
    """Focal loss with balanced class weights (the seed: alpha 0.25, gamma 2)."""

    alpha: float = 0.25
    gamma: float = 2.0
    balanced_weights: bool = True


@dataclass(frozen=True)
class EvalConfig:
    importance_rows: int = 50_000  # test tracks used for permutation feature importance
    importance_seed: int = 0


@dataclass(frozen=True)
class PIDConfig:
    data: DataConfig = field(default_factory=DataConfig)
    models: tuple[str, ...] = ("simple", "dnn", "fse")
    ranges: tuple[str, ...] = ("full", "0.7-1.5", "1-3")
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    reuse: bool = True  # take a finished identical training of another run instead of training


MODELS = ("simple", "dnn", "fse")


def default() -> PIDConfig:
    """The seed's setup: focal loss (0.25, 2), Adam 1e-3, batch 1024, <= 150 epochs, patience 15."""
    return PIDConfig(
        data=DataConfig(n_tracks=1_000_000),
        model=ModelConfig(),
        train=TrainConfig(
            epochs=150,
            batch_size=1024,
            learning_rate=1e-3,
            patience=15,
            steps_per_call=16,
            grad_clip_norm=None,
            monitor="val_accuracy",
            eval_batch_size=65536,
            # float32 everywhere, as every quoted PID figure was made; "auto" would train in
            # bfloat16 on accelerators, not yet measured for these small networks.
            precision="float32",
        ),
    )


def quick() -> PIDConfig:
    """About a minute on a laptop CPU: a small sample, a few epochs, smaller networks."""
    cfg = default()
    return dataclasses.replace(
        cfg,
        data=dataclasses.replace(cfg.data, n_tracks=40_000),
        model=dataclasses.replace(cfg.model, embed_dim=32, head_hidden=(64, 32)),
        train=dataclasses.replace(cfg.train, epochs=2, batch_size=512, steps_per_call=8, patience=2),
        eval=EvalConfig(importance_rows=2_000),
    )


FLAGS = (
    Flag(
        "--data",
        "data.path",
        "CSV or Parquet table with the 21 feature columns and mc_pdg, or an O2 ROOT file (O2pidtracksmc "
        "trees in DF_* folders; needs uproot); a quoted glob such as 'AO2D_*.root' reads all matches",
        metavar="FILE",
    ),
    Flag("--model", "models", "train only this network (default: all three)", repeat=True, choices=MODELS),
    Flag(
        "--range",
        "ranges",
        "pT range in GeV/c, e.g. 0.7-1.5, or 'full' (default: full, 0.7-1.5, 1-3)",
        repeat=True,
        metavar="LO-HI",
    ),
    Flag("--force-train", "reuse", "train even if an identical model exists", const=False),
)


def check(cfg: PIDConfig) -> None:
    """A ConfigError for a config with nothing to do or a range that is not one."""
    if not cfg.models or not cfg.ranges:
        raise ConfigError("nothing to do: no model or no momentum range selected")
    unknown = sorted(set(cfg.models) - set(MODELS))
    if unknown:
        raise ConfigError(f"models {unknown}: PID has {', '.join(MODELS)}")
    for name in cfg.ranges:
        parse_range(name)


def parse_range(name: str) -> tuple[float | None, float | None]:
    """'full' -> (None, None); '0.7-1.5' -> (0.7, 1.5) in GeV/c of pT."""
    if name == "full":
        return None, None
    try:
        lo, hi = (float(v) for v in name.split("-"))
    except ValueError:
        raise ConfigError(
            f"momentum range {name!r} is not 'full' or 'LO-HI' in GeV/c, e.g. 0.7-1.5"
        ) from None
    if not 0 <= lo < hi:
        raise ConfigError(f"momentum range {name!r}: need 0 <= LO < HI")
    return lo, hi
