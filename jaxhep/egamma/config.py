"""Configuration of an e/gamma experiment: data, networks, loss, augmentation, training;
`default()` (the seed's recipe), `quick()` (a one-minute smoke run) and the task's flags."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from jaxhep.cli import Flag
from jaxhep.errors import ConfigError
from jaxhep.train import TrainConfig

MODELS = ("se", "plain")


@dataclass(frozen=True)
class DataConfig:
    """Which files, how they are split, and how they are read."""

    paths: tuple[str, ...] = ()  # ML4SCI HDF5 files; () = the simulated default sample
    n_per_class: int = 100_000  # simulated sample size per class
    sim_seed: int = 5
    split_seed: int = 0
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)  # the seed's train / val / test
    max_rows: int | None = None  # use a stratified subset of this many rows (smoke runs)
    norm_rows: int = 50_000  # training rows looked at for the normalisation statistics
    # Input-pipeline worker processes; None = 0 on the CPU, up to 8 on accelerators (the
    # experiment resolves it: `experiment.input_workers`). Changes speed only, not the batches.
    workers: int | None = None


@dataclass(frozen=True)
class LossConfig:
    """The seed's objective: focal loss on mixup batches."""

    kind: str = "focal"  # focal | bce
    focal_alpha: float | None = None  # None: no class weighting (the two classes are equally common)
    focal_gamma: float = 2.0
    mixup_alpha: float = 0.2  # Beta(alpha, alpha) mixing weight; 0 = no mixup


@dataclass(frozen=True)
class AugmentConfig:
    """Which augmentations run on training batches; defaults keep the detector's symmetries only
    (`jaxhep.egamma.augment` explains each)."""

    flip_eta: bool = True
    flip_phi: bool = True
    rot90: bool = False
    max_shift: int = 0  # crystals, in each direction, zero padding
    erase_prob: float = 0.0  # probability that an image gets one erased rectangle
    erase_area: tuple[float, float] = (0.02, 0.15)  # fraction of the image
    erase_aspect: tuple[float, float] = (0.3, 3.3)  # height / width, log-uniform

    @classmethod
    def seed_like(cls) -> AugmentConfig:
        """Everything on, as the seed's training did (flip, rotate, affine shift, random erasing)."""
        return cls(flip_eta=True, flip_phi=True, rot90=True, max_shift=2, erase_prob=0.5)


@dataclass(frozen=True)
class EgammaConfig:
    data: DataConfig = field(default_factory=DataConfig)
    models: tuple[str, ...] = MODELS
    widths: tuple[int, ...] = (32, 64, 128, 256)  # of both networks (the peer's)
    blocks_per_stage: tuple[int, ...] = (2, 2, 2, 1)  # ResNet-15; fewer for smoke tests
    train: TrainConfig = field(default_factory=TrainConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    embed_rows: int = 4000  # test images in the feature-embedding plot


def default() -> EgammaConfig:
    """The seed's recipe: AdamW + one-cycle, focal loss, mixup, clipping; early stop on val AUC."""
    return EgammaConfig(
        train=TrainConfig(
            epochs=30,
            batch_size=256,
            steps_per_call=8,
            optimizer="adamw",
            learning_rate=2e-3,
            weight_decay=1e-4,
            schedule="onecycle",
            grad_clip_norm=1.0,
            monitor="val_auc",
            patience=6,
            eval_batch_size=2048,
        ),
    )


def quick() -> EgammaConfig:
    """About a minute on a laptop CPU: 2000 images, narrower networks, two epochs."""
    cfg = default()
    return dataclasses.replace(
        cfg,
        data=dataclasses.replace(cfg.data, n_per_class=2000, max_rows=2000, norm_rows=2000),
        widths=(8, 16, 32, 64),
        train=dataclasses.replace(cfg.train, epochs=2, batch_size=128, steps_per_call=4, patience=2),
        embed_rows=500,
    )


FLAGS = (
    Flag("--data", "data.paths", "an ML4SCI HDF5 file (X, y); the files given make one sample", repeat=True),
    Flag("--model", "models", "train only this network", repeat=True, choices=MODELS),
    Flag(
        "--workers",
        "data.workers",
        "input-pipeline worker processes; unset: 0 on the CPU, up to 8 otherwise",
        type=int,
        metavar="N",
    ),
)


def check(cfg: EgammaConfig) -> None:
    """A ConfigError for a config with no network, an unknown network or loss, or sizes that do not fit."""
    from jaxhep.egamma.model import ResNetConfig

    if not cfg.models:
        raise ConfigError("nothing to do: no network selected")
    unknown = sorted(set(cfg.models) - set(MODELS))
    if unknown:
        raise ConfigError(f"models {unknown}: e/gamma has {', '.join(MODELS)}")
    if cfg.loss.kind not in ("focal", "bce"):
        raise ConfigError(f"loss.kind {cfg.loss.kind!r}: must be 'focal' or 'bce'")
    if cfg.data.workers is not None and cfg.data.workers < 0:
        raise ConfigError(f"--workers {cfg.data.workers}: must not be negative")
    for name in cfg.models:
        try:
            ResNetConfig(name=name, widths=cfg.widths, blocks_per_stage=cfg.blocks_per_stage)
        except ValueError as err:
            raise ConfigError(f"widths / blocks_per_stage of {name!r}: {err}") from None
