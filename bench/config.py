"""Structured configs: the schema Hydra checks every run config against.

A wrong key, a value of the wrong type or an unknown suite, tokenizer or recipe fails at composition;
`config_error_line` makes Hydra's report of it one line with the closest valid names. Values the
types cannot check are validated in `validate`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, fields, is_dataclass
from difflib import get_close_matches
from typing import Any, Callable, Optional

from hydra import compose as hydra_compose
from hydra import initialize_config_module
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from .errors import BenchError


@dataclass
class DatasetConfig:
    kind: str = "builtin_photos"  # builtin_photos | image_folder | webdataset | celeba | builtin_speech | audio_folder | librispeech | libritts
    root: Optional[str] = None  # folder holding the split folders (image_folder)
    resolution: int = 32
    preprocessing: str = "resize_center_crop"  # adm_center_crop | resize_center_crop | smallest_side_bilinear | none (bench/data/transforms.py)
    center_crop: Optional[int] = None  # crop a square of this size from the middle first (CelebA: 140)
    train_split: str = "train"
    eval_split: str = "test"
    max_items: Optional[int] = None  # a fixed subset of each split (e.g. 5000)
    max_skipped: float = 0.001  # fraction of unreadable files an evaluation tolerates (skipped, counted, named)
    sample_rate: int = 24000  # audio: items' rate in Hz (files resampled with soxr HQ)
    channels: int = 1  # audio: 1 (mean of a file's channels) or 2 (mono files duplicated)
    segment_seconds: Optional[float] = 1.0  # audio: the first this many seconds of each file (shorter: zero-padded, noted); null: whole utterances (batch size 1)


@dataclass
class TrainConfig:
    """The suite's training budget: it names no losses or optimizers (the tokenizer's recipe does)."""

    steps: Optional[int] = None  # None: the recipe's; 0: no training, the tokenizer must name a checkpoint
    batch_size: Optional[int] = None  # None: the recipe's (global batch, split over DDP ranks)
    checkpoint_every: int = 200
    log_every: int = 10  # steps between rows of the training log (CSV beside the checkpoint)
    num_workers: Optional[int] = None  # None: from the CPUs this process may use (bench.data.default_workers)


@dataclass
class OptimizerConfig:
    name: str = "adam"  # adam | adamw
    lr: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0
    eps: float = 1e-8


@dataclass
class ScheduleConfig:
    kind: str = "constant"  # constant | cosine (after a linear warm-up)
    warmup_steps: int = 0
    final_lr_ratio: float = 0.0  # cosine: the last step's lr / lr


@dataclass
class PerceptualConfig:
    weight: float = 0.0  # 0: off; LPIPS with the VGG16 backbone
    backbone_weights: Optional[str] = None  # vgg16-397923af.pth (default: found in the caches)
    linear_weights: Optional[str] = None  # LPIPS v0.1 vgg.pth (default: found in the caches)
    dropout: bool = False  # LPIPS's dropout (p 0.5 before each linear layer) active in training, as where the loss module is in train mode


@dataclass
class SpectralConfig:
    """Audio reconstruction losses (weights; 0: off)."""

    mel_weight: float = 0.0  # multi-scale mel, L1 + L2 (EnCodec)
    stft_weight: float = 0.0  # multi-resolution STFT (Parallel WaveGAN)


@dataclass
class AdversarialConfig:
    weight: float = 0.0  # 0: no discriminator
    discriminator: str = "patchgan"  # a registered discriminator (implementations.list_discriminators())
    discriminator_kwargs: dict[str, Any] = field(default_factory=dict)
    loss: str = "hinge"  # the discriminator's: hinge | non_saturating | least_squares
    generator_loss: Optional[str] = None  # None: the same as loss; or hinge_margin (EnCodec)
    start_step: int = 0  # no GAN terms before this step
    # what the discriminator's update sees: reuse, the reconstructions of the generator's update (from before
    # it); recompute, the updated generator's, from a second training-mode forward (stateful quantizers update again)
    discriminator_input: str = "reuse"
    adaptive_weight: bool = False  # taming's ratio of last-layer gradient norms, times weight
    adaptive_weight_max: float = 1.0e4
    lecam_weight: float = 0.0
    lecam_ema_decay: float = 0.999
    r1_weight: float = 0.0  # gamma of the R1 penalty
    feature_matching_weight: float = 0.0
    feature_matching_relative: bool = False  # EnCodec: each term / mean |real features|
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)


@dataclass
class BalancerConfig:
    """EnCodec's loss balancer: the listed terms' gradients at the output are rescaled to these weights."""

    enabled: bool = False
    total_norm: float = 1.0
    ema_decay: float = 0.999
    weights: dict[str, float] = field(default_factory=dict)  # term -> weight (l1, l2, mel, stft, adversarial, feature_matching)


@dataclass
class RecipeConfig:
    """How a paper trains its tokenizer: losses and their weights, discriminator, optimizers, schedule,
    precision and budget. One file per paper in ``bench/conf/recipe/``, each value with its source."""

    name: str = ""  # empty: no recipe (the tokenizer only evaluates released weights)
    source: str = ""
    steps: int = 0  # the paper's budget (a suite may set its own)
    batch_size: int = 32
    l1_weight: float = 0.0
    l2_weight: float = 0.0
    quantizer_weight: float = 1.0  # times the quantizer's own loss (taming's codebook_weight)
    perceptual: PerceptualConfig = field(default_factory=PerceptualConfig)
    spectral: SpectralConfig = field(default_factory=SpectralConfig)
    adversarial: AdversarialConfig = field(default_factory=AdversarialConfig)
    balancer: BalancerConfig = field(default_factory=BalancerConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    grad_clip: Optional[float] = None  # max global gradient norm (generator and discriminator)
    grad_accumulation: int = 1  # micro-batches per step (the batch is split)
    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast; fp16 with a gradient scaler)
    weights_ema_decay: Optional[float] = None  # evaluate an EMA of the weights (e.g. 0.999)
    compile: bool = False  # torch.compile the tokenizer's training forward


@dataclass
class EvalConfig:
    batch_size: int = 64
    metrics: list[str] = field(default_factory=lambda: ["psnr", "ssim", "lpips", "rfid", "usage"])
    usage_queue: int = 65536  # codes in the recent-usage queue (visual-tokenizer-pytorch's definition)
    fid_weights: dict[str, str] = field(default_factory=dict)  # rFID backend (rfid, rfid_clean, rfid_pytorch) -> weight file; default: found in the caches
    samples: int = 8  # reconstructions kept for the leaderboard's grid
    precision: str = "fp32"  # the tokenizer's forward: fp32 | bf16 | fp16 (autocast); metrics stay in their own precision
    num_workers: Optional[int] = None  # None: from the CPUs this process may use (bench.data.default_workers)


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
    checkpoint: Optional[str] = None  # a weights file to evaluate instead of training (ours or the official format)
    pretrained: bool = False  # evaluate the architecture's released weights, found in the caches (never downloaded)
    recipe: RecipeConfig = field(default_factory=RecipeConfig)  # how it trains (bench/conf/recipe/)


@dataclass
class RunConfig:
    suite: SuiteConfig = MISSING
    tokenizer: Optional[TokenizerConfig] = None  # None: every tokenizer the suite lists
    seed: Optional[int] = None  # None: each of the suite's seeds in turn
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    output_dir: str = "results"
    leaderboard_dir: str = "${output_dir}/leaderboards"  # your pages; the committed ones change with bench.leaderboard --publish
    redo: bool = False  # run again from scratch: train (unless a checkpoint is given) and evaluate
    reevaluate: bool = False  # evaluate again with the weights an earlier run trained
    eval_shards: int = 1  # split the evaluation into this many shards (e.g. one SLURM array task each)
    eval_shard: Optional[int] = None  # the shard this task evaluates; None: every shard, in turn


def register_configs() -> None:
    store = ConfigStore.instance()
    store.store(name="run_schema", node=RunConfig)
    store.store(group="suite", name="suite_schema", node=SuiteConfig)
    store.store(group="tokenizer", name="tokenizer_schema", node=TokenizerConfig)
    store.store(group="recipe", name="recipe_schema", node=RecipeConfig)


def compose(overrides: list[str]) -> DictConfig:
    """The config ``python -m bench.run <overrides>`` would run with (for tests and tools); a composition
    error is a `BenchError` (`config_error_line`)."""
    register_configs()
    try:
        if GlobalHydra.instance().is_initialized():  # inside `bench.run`'s @hydra.main: same config module
            return hydra_compose(config_name="config", overrides=list(overrides))
        with initialize_config_module(config_module="bench.conf", version_base="1.3"):
            return hydra_compose(config_name="config", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as error:
        raise BenchError(config_error_line(error)) from error


def closest(name: str, choices, count: int = 1) -> str:
    """`` (did you mean X?)`` naming the choices closest to ``name``, or nothing when none is close."""
    close = get_close_matches(str(name), sorted(choices), n=count)
    return f" (did you mean {', '.join(close[:-1]) + ' or ' if len(close) > 1 else ''}{close[-1]}?)" if close else ""


def config_error_line(error: Exception) -> str:
    """Hydra's report of a composition error (7 to 37 lines) as one line: an unknown config of a group
    with the closest names (all of them when none is close), an unknown key with the closest field,
    a value of the wrong type with its key."""
    if isinstance(error, MissingConfigException) and error.missing_cfg_file and error.options is not None:
        group, _, name = error.missing_cfg_file.rpartition("/")
        options = sorted(option for option in error.options if not option.endswith("_schema"))  # the schemas are no choice
        hint = closest(name, options, count=3) or f" (choose from {', '.join(options)})"
        return f"{group}={name}: no such {group} in bench/conf/{group}/{hint}"
    if isinstance(error, OverrideParseException):
        return f"{error.override}: {error.message.splitlines()[0]} (https://hydra.cc/docs/advanced/override_grammar/basic)"
    cause = error if isinstance(error, OmegaConfBaseException) else error.__cause__
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and is_dataclass(cause.object_type) and cause.full_key:
        return f"unknown config key: {cause.full_key}{closest(cause.key, [f.name for f in fields(cause.object_type)])}"
    if isinstance(cause, OmegaConfBaseException) and cause.full_key and cause.msg:
        return f"{cause.full_key}: {cause.msg.splitlines()[0]}"
    return "; ".join(line.strip() for line in str(error).splitlines() if line.strip())


def one_line_config_errors(main: Callable[[], Any]) -> Any:
    """Run the ``@hydra.main`` entry point ``main`` with composition errors reported in one line
    (`config_error_line`, exit status 2), unless ``HYDRA_FULL_ERROR`` asks for Hydra's own report."""
    if os.environ.get("HYDRA_FULL_ERROR"):
        return main()
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra then raises the error instead of printing its report
    try:
        return main()
    except (HydraException, OmegaConfBaseException) as error:
        print(f"error: {config_error_line(error)}", file=sys.stderr)
        sys.exit(2)


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
                found.append(path + closest(key, allowed))
            elif allowed is not None:
                found += unknown_keys(node._get_node(key), path)
    return found


_CHOICES = {
    "optimizer.name": ("adam", "adamw"),
    "adversarial.optimizer.name": ("adam", "adamw"),
    "schedule.kind": ("constant", "cosine"),
    "precision": ("fp32", "bf16", "fp16"),
    "adversarial.loss": ("hinge", "non_saturating", "least_squares"),
    "adversarial.generator_loss": (None, "hinge", "non_saturating", "least_squares", "hinge_margin"),
    "adversarial.discriminator_input": ("reuse", "recompute"),
}
BALANCED_TERMS = ("l1", "l2", "perceptual", "mel", "stft", "adversarial", "feature_matching")


def validate_recipe(recipe, where: str = "tokenizer.recipe") -> None:
    """The recipe's choices and numbers; raises `BenchError` with one line."""
    for key, choices in _CHOICES.items():
        value = OmegaConf.select(recipe, key)
        if value not in choices:
            raise BenchError(f"{where}.{key}={value!r}: choose one of {', '.join(map(str, choices))}")
    if recipe.grad_accumulation < 1 or recipe.batch_size < 1:
        raise BenchError(f"{where}: grad_accumulation and batch_size must be >= 1")
    unknown = set(recipe.balancer.weights) - set(BALANCED_TERMS)
    if unknown:
        raise BenchError(f"{where}.balancer.weights: unknown terms {sorted(unknown)}; choose from {', '.join(BALANCED_TERMS)}")


def validate(cfg) -> None:
    """Checks the types cannot express; raises `BenchError` with one line."""
    unknown = unknown_keys(cfg)
    if unknown:
        raise BenchError(f"unknown config key{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}")
    if (cfg.suite.train.batch_size is not None and cfg.suite.train.batch_size <= 0) or cfg.suite.eval.batch_size <= 0:
        raise BenchError("suite.train.batch_size and suite.eval.batch_size must be positive")
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
    if cfg.suite.train.steps is not None and cfg.suite.train.steps < 0:
        raise BenchError(f"suite.train.steps={cfg.suite.train.steps}: must be >= 0")
    if cfg.tokenizer is not None:
        validate_recipe(cfg.tokenizer.recipe)
