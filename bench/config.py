"""Structured configs: the schema Hydra checks every run config against.

A wrong key or a value of the wrong type fails at composition with Hydra's one-line error
(``Key 'stpes' not in 'TrainConfig'``); values the types cannot check are validated in
`validate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra import compose as hydra_compose
from hydra import initialize_config_module
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig

from .errors import BenchError


@dataclass
class DatasetConfig:
    kind: str = "builtin_photos"  # builtin_photos | image_folder | celeba
    root: Optional[str] = None  # folder holding the split folders (image_folder)
    resolution: int = 32
    preprocessing: str = "resize_center_crop"  # resize_center_crop | adm_center_crop | none
    center_crop: Optional[int] = None  # crop a square of this size from the middle first (CelebA: 140)
    train_split: str = "train"
    eval_split: str = "test"
    max_items: Optional[int] = None  # a fixed subset of each split (e.g. 5000)


@dataclass
class TrainConfig:
    steps: int = 0  # 0: no training; the tokenizer must name a checkpoint
    batch_size: int = 32
    lr: float = 4e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    reconstruction_loss: str = "mse"  # mse | l1
    weights_ema_decay: Optional[float] = None  # evaluate an EMA of the weights (e.g. 0.999)
    checkpoint_every: int = 200
    num_workers: int = 0


@dataclass
class EvalConfig:
    batch_size: int = 64
    metrics: list[str] = field(default_factory=lambda: ["psnr", "ssim", "lpips", "rfid", "usage"])
    usage_queue: int = 65536  # codes in the recent-usage queue (visual-tokenizer-pytorch's definition)
    fid_weights: Optional[str] = None  # Inception weights file; default: torch-fidelity's cache path
    samples: int = 8  # reconstructions kept for the leaderboard's grid
    num_workers: int = 0


@dataclass
class ReferenceRow:
    """A published number the suite's leaderboard shows beside the measured ones."""

    tokenizer: str = MISSING  # label, e.g. "VQGAN (taming), 16x16, 1024 codes"
    source: str = MISSING  # paper / repository and table
    compares_with: Optional[str] = None  # the tokenizer config whose records it is compared with
    metrics: dict[str, float] = field(default_factory=dict)
    # how the paper measured it; keys compared with the records: split, num_items, resolution, preprocessing
    protocol: dict[str, Any] = field(default_factory=dict)


@dataclass
class SuiteConfig:
    name: str = MISSING
    description: str = ""
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    tokenizers: list[str] = field(default_factory=list)  # tokenizer configs run when none is chosen
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    references: list[ReferenceRow] = field(default_factory=list)


@dataclass
class TokenizerConfig:
    id: str = MISSING  # the name of this configuration (leaderboard row), e.g. vqvae_tiny_ema_d64
    arch: str = MISSING  # a registered factory, see `python -m bench.tokenizers`
    kwargs: dict[str, Any] = field(default_factory=dict)
    checkpoint: Optional[str] = None  # a weights file to evaluate instead of training


@dataclass
class RunConfig:
    suite: SuiteConfig = MISSING
    tokenizer: Optional[TokenizerConfig] = None  # None: every tokenizer the suite lists
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    output_dir: str = "results"
    leaderboard_dir: str = "leaderboards"
    redo: bool = False  # re-run even if a record with the same config hash exists
    eval_shards: int = 1  # split the evaluation into this many shards (e.g. one SLURM array task each)
    eval_shard: Optional[int] = None  # the shard this task evaluates; None: every shard, in turn


def register_configs() -> None:
    store = ConfigStore.instance()
    store.store(name="run_schema", node=RunConfig)
    store.store(group="suite", name="suite_schema", node=SuiteConfig)
    store.store(group="tokenizer", name="tokenizer_schema", node=TokenizerConfig)


def compose(overrides: list[str]) -> DictConfig:
    """The config ``python -m bench.run <overrides>`` would run with (for tests and tools)."""
    register_configs()
    with initialize_config_module(config_module="bench.conf", version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides))


_CHOICES = {
    "train.reconstruction_loss": ("mse", "l1"),
}


def validate(cfg) -> None:
    """Checks the types cannot express; raises `BenchError` with one line."""
    if cfg.suite.train.reconstruction_loss not in _CHOICES["train.reconstruction_loss"]:
        raise BenchError(f"suite.train.reconstruction_loss={cfg.suite.train.reconstruction_loss!r}: choose mse or l1")
    for key in ("batch_size",):
        if cfg.suite.train[key] <= 0 or cfg.suite.eval[key] <= 0:
            raise BenchError(f"suite.train.{key} and suite.eval.{key} must be positive")
    if cfg.eval_shards < 1 or (cfg.eval_shard is not None and not 0 <= cfg.eval_shard < cfg.eval_shards):
        raise BenchError(f"eval_shard={cfg.eval_shard} eval_shards={cfg.eval_shards}: need eval_shards >= 1 and 0 <= eval_shard < eval_shards")
    if cfg.suite.train.steps < 0:
        raise BenchError(f"suite.train.steps={cfg.suite.train.steps}: must be >= 0")
