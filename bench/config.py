"""Structured configs: the schema Hydra checks every run config against.

A wrong key or a value of the wrong type fails at composition with Hydra's one-line error
(``Key 'stpes' not in 'TrainConfig'``); values the types cannot check are validated in
`validate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from difflib import get_close_matches
from typing import Any, Optional

from hydra import compose as hydra_compose
from hydra import initialize_config_module
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

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
    seeds: list[int] = field(default_factory=lambda: [0])  # a run without seed= runs each; the page shows mean ± std
    threads: Optional[int] = None  # CPU threads of every run (CPU numbers depend on it); None: torch's default
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
    seed: Optional[int] = None  # None: each of the suite's seeds in turn
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    output_dir: str = "results"
    leaderboard_dir: str = "leaderboards"
    redo: bool = False  # run again from scratch: train (unless a checkpoint is given) and evaluate
    reevaluate: bool = False  # evaluate again with the weights an earlier run trained
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
    if GlobalHydra.instance().is_initialized():  # inside `bench.run`'s @hydra.main: same config module
        return hydra_compose(config_name="config", overrides=list(overrides))
    with initialize_config_module(config_module="bench.conf", version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides))


def unknown_keys(node, prefix: str = "") -> list[str]:
    """Dotted keys of ``node`` that its schema (the dataclasses above) does not define. Hydra's
    ``+key=value`` adds keys even to structured configs, so they are looked for after composition."""
    found = []
    if isinstance(node, ListConfig):
        for index, item in enumerate(node):
            found += unknown_keys(item, f"{prefix}[{index}]")
    elif isinstance(node, DictConfig):
        schema = OmegaConf.get_type(node)
        allowed = {f.name for f in fields(schema)} if is_dataclass(schema) else None
        for key in node.keys():
            path = f"{prefix}.{key}" if prefix else str(key)
            if allowed is not None and key not in allowed:
                close = get_close_matches(str(key), sorted(allowed), n=1)
                found.append(path + (f" (did you mean {close[0]}?)" if close else ""))
            elif allowed is not None:
                found += unknown_keys(node._get_node(key), path)
    return found


_CHOICES = {
    "train.reconstruction_loss": ("mse", "l1"),
}


def validate(cfg) -> None:
    """Checks the types cannot express; raises `BenchError` with one line."""
    unknown = unknown_keys(cfg)
    if unknown:
        raise BenchError(f"unknown config key{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}")
    if cfg.suite.train.reconstruction_loss not in _CHOICES["train.reconstruction_loss"]:
        raise BenchError(f"suite.train.reconstruction_loss={cfg.suite.train.reconstruction_loss!r}: choose mse or l1")
    for key in ("batch_size",):
        if cfg.suite.train[key] <= 0 or cfg.suite.eval[key] <= 0:
            raise BenchError(f"suite.train.{key} and suite.eval.{key} must be positive")
    if cfg.eval_shards < 1 or (cfg.eval_shard is not None and not 0 <= cfg.eval_shard < cfg.eval_shards):
        raise BenchError(f"eval_shard={cfg.eval_shard} eval_shards={cfg.eval_shards}: need eval_shards >= 1 and 0 <= eval_shard < eval_shards")
    if cfg.redo and cfg.reevaluate:
        raise BenchError("redo=true runs everything again, reevaluate=true only the evaluation: choose one")
    if (cfg.redo or cfg.reevaluate) and cfg.eval_shard is not None:
        raise BenchError("redo/reevaluate with eval_shard: each shard task would remove the others' work; run it without eval_shard")
    if cfg.suite.threads is not None and cfg.suite.threads < 1:
        raise BenchError(f"suite.threads={cfg.suite.threads}: must be >= 1 (or null for torch's default)")
    if not cfg.suite.seeds:
        raise BenchError("suite.seeds is empty: list at least one seed")
    if cfg.suite.train.steps < 0:
        raise BenchError(f"suite.train.steps={cfg.suite.train.steps}: must be >= 0")
