"""Configuration of a PID experiment: data, networks, momentum ranges, loss, training, evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field

from jaxhep.errors import ConfigError
from jaxhep.pid.models import ModelConfig
from jaxhep.train import TrainConfig


@dataclass(frozen=True)
class DataConfig:
    """Where the tracks come from and how they are split."""

    path: str | None = None  # CSV / Parquet table; None = the simulated default sample
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
