"""``python -m bench.run [suite=S] [tokenizer=T] [overrides...]``: train and/or evaluate tokenizers on a
suite, write one record per run, regenerate the suite's leaderboard.

Without ``tokenizer=``, every tokenizer the suite lists runs in turn (each composed exactly as
``tokenizer=<name>`` would be, so records and hashes match those of a ``-m`` sweep or SLURM array).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from implementations import create_tokenizer, tokenizer_entry

from . import checkpoints
from .config import register_configs, validate
from .data import build_dataset
from .errors import BenchError
from .evaluate import evaluate
from .leaderboard import write_leaderboard
from .metrics import build_metrics
from .records import RunRecord, config_hash, file_sha256, git_sha, hardware, record_path, write_record
from .samples import save_samples
from .train import train

log = logging.getLogger("bench.run")
register_configs()


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise BenchError(f"device={name} but no CUDA device is visible")
    return torch.device(name)


def build_tokenizer(tok_cfg) -> torch.nn.Module:
    try:
        tokenizer_entry(tok_cfg.arch)
    except KeyError as error:
        raise BenchError(f"tokenizer.arch: {error.args[0]}") from error
    kwargs = OmegaConf.to_container(tok_cfg.kwargs, resolve=True)
    try:
        return create_tokenizer(tok_cfg.arch, **kwargs)
    except (TypeError, ValueError, KeyError) as error:
        raise BenchError(f"tokenizer {tok_cfg.id} ({tok_cfg.arch}) rejects its kwargs {kwargs}: {error}") from error


def flatten_metrics(values: dict[str, Any]) -> dict[str, Any]:
    """Metric results -> JSON-ready values; a metric returning a dict contributes its keys."""
    flat: dict[str, Any] = {}
    for name, value in values.items():
        items = value.items() if isinstance(value, dict) else [(name, value)]
        for key, item in items:
            flat[key] = item.tolist() if isinstance(item, torch.Tensor) else item
    return flat


def obtain_weights(model, cfg, hash_: str, device: torch.device) -> tuple[torch.nn.Module, Path, dict[str, Any]]:
    """Load the tokenizer's checkpoint, or reuse weights a finished training left, or train now."""
    suite, tok = cfg.suite, cfg.tokenizer
    if tok.checkpoint:
        checkpoints.load_weights(model, tok.checkpoint)
        return model, Path(tok.checkpoint), {"steps": 0, "source": "checkpoint"}
    if suite.train.steps == 0:
        raise BenchError(f"tokenizer {tok.id} has no checkpoint and suite.train.steps=0: set one of them")
    folder = Path(cfg.output_dir) / suite.name / "checkpoints"
    weights_path = folder / f"{tok.id}-{hash_}.pt"
    if weights_path.exists():
        log.info("%s: training finished earlier, loading %s", tok.id, weights_path)
        state = checkpoints.load(weights_path)
        checkpoints.load_weights(model, weights_path)
        return model, weights_path, state["train"]
    dataset = build_dataset(suite.dataset, suite.dataset.train_split)
    result = train(model, dataset, suite.train, seed=cfg.seed, device=device, state_path=folder / f"{tok.id}-{hash_}.train.pt")
    summary = {"steps": result.steps, "final_reconstruction_loss": result.final_loss, "wall_time_s": result.wall_time_s, "source": "trained"}
    checkpoints.save({"model": result.model.state_dict(), "train": summary}, weights_path)
    return result.model, weights_path, summary


def run_one(cfg: DictConfig) -> Path:
    """Train/evaluate one tokenizer on one suite and write its record; returns the record's path."""
    config = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    hash_ = config_hash(config)
    suite, tok = cfg.suite, cfg.tokenizer
    path = record_path(cfg.output_dir, suite.name, tok.id, hash_)
    if path.exists() and not cfg.redo:
        log.info("%s: record %s exists, skipping (redo=true to run again)", tok.id, path)
        return path

    began = time.perf_counter()
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    model = build_tokenizer(tok)
    dataset = build_dataset(suite.dataset, suite.dataset.eval_split)
    item_shape = tuple(dataset[0].shape)
    try:
        grid = model.token_grid(item_shape)
    except ValueError as error:
        raise BenchError(f"{tok.id} cannot tokenize the suite's items of shape {item_shape}: {error}") from error
    model, weights_path, train_summary = obtain_weights(model, cfg, hash_, device)

    metrics, unavailable = build_metrics(
        list(suite.eval.metrics),
        codebook_size=model.codebook_size,
        num_codebooks=model.num_codebooks,
        usage_queue=suite.eval.usage_queue,
        fid_weights=suite.eval.fid_weights,
    )
    for name, reason in unavailable.items():
        log.warning("%s: %s not available: %s", tok.id, name, reason)
    values = evaluate(model, dataset, metrics, batch_size=suite.eval.batch_size, device=device, num_workers=suite.eval.num_workers)

    samples_path = Path(cfg.output_dir) / suite.name / "samples" / f"{tok.id}-{hash_}.npz"
    save_samples(model, dataset, samples_path, count=suite.eval.samples, device=device)

    tokens = math.prod(grid)
    pixels = math.prod(item_shape[1:])
    record = RunRecord(
        suite=suite.name,
        tokenizer=tok.id,
        arch=tok.arch,
        config_hash=hash_,
        git_sha=git_sha(),
        seed=cfg.seed,
        split=suite.dataset.eval_split,
        num_items=len(dataset),
        metrics=flatten_metrics(values),
        unavailable=unavailable,
        protocol={
            "dataset": suite.dataset.kind,
            "root": suite.dataset.root,
            "split": suite.dataset.eval_split,
            "num_items": len(dataset),
            "input_shape": list(item_shape),
            "preprocessing": suite.dataset.preprocessing,
            "center_crop": suite.dataset.center_crop,
            "metrics": {name: metric.protocol for name, metric in metrics.items()},
        },
        rate={
            "token_grid": list(grid),
            "tokens": tokens,
            "codebook_size": model.codebook_size,
            "num_codebooks": model.num_codebooks,
            "bits_per_token": model.bits_per_token,
            "bits_per_pixel": model.bits_per_token * tokens / pixels,
        },
        model={"parameters": sum(p.numel() for p in model.parameters()), "family": model.family, "paper": model.paper},
        checkpoint_sha256=file_sha256(weights_path),
        train=train_summary,
        wall_time_s=time.perf_counter() - began,
        hardware=hardware(device),
        config=config,
    )
    write_record(record, path)
    log.info("%s: wrote %s", tok.id, path)
    return path


def compose_for(tokenizer: str) -> DictConfig:
    """The config this job would have with ``tokenizer=<name>`` added to its command-line overrides."""
    overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith("tokenizer=")]
    return hydra.compose(config_name="config", overrides=[*overrides, f"tokenizer={tokenizer}"])


def run(cfg: DictConfig) -> list[Path]:
    validate(cfg)
    if cfg.tokenizer is not None:
        runs = [cfg]
    else:
        if not cfg.suite.tokenizers:
            raise BenchError(f"suite {cfg.suite.name} lists no tokenizers: choose one with tokenizer=<name>")
        runs = [compose_for(name) for name in cfg.suite.tokenizers]
    paths = [run_one(job) for job in runs]
    write_leaderboard(cfg.suite.name, cfg.output_dir, cfg.leaderboard_dir)
    return paths


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        run(cfg)
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
