"""``python -m bench.run [suite=S] [tokenizer=T] [overrides...]``: train and/or evaluate tokenizers on a
suite, write one record per run, regenerate the suite's leaderboard page among the results
(``leaderboard_dir``, ``results/leaderboards/`` by default; the committed pages are not touched).

Without ``tokenizer=``, every tokenizer the suite lists runs in turn, and without ``seed=`` each at
every seed the suite lists (each composed exactly as ``tokenizer=<name> seed=<seed>`` would be, so
records and hashes match those of a ``-m`` sweep or SLURM array). A suite that fixes ``threads``
runs on that many CPU threads whatever the environment says: CPU numbers depend on it.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from torchmetrics import Metric

from implementations import create_tokenizer, tokenizer_entry
from implementations.arguments import ArgumentError
from implementations.checkpoints import (
    CorruptWeightsError,
    MissingWeightsError,
    find_weights,
    sha256_of,
)

from . import checkpoints, distributed
from .config import one_line_config_errors, register_configs, validate
from .data import build_dataset, default_workers
from .data.items import DataAccount, first_readable
from .errors import BenchError
from .files import atomic_write_bytes
from .evaluate import compute_all, evaluate, merge_shards, metric_states
from .fid_reference import load_references, save_references
from .leaderboard import PUBLISHED_DIR, write_leaderboard
from .metrics import build_metrics
from .preemption import StopSignals
from .records import config_hash, make_record, record_path, write_record
from .samples import save_samples
from .train import Budget, train, trained_wall_time

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
    except ArgumentError as error:
        where = "tokenizer.kwargs." if error.argument in kwargs else f"tokenizer {tok_cfg.id} ({tok_cfg.arch}): "
        raise BenchError(f"{where}{error}") from error
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


def released_weights(entry, tokenizer_id: str) -> Path:
    """The released weight file of ``entry``'s architecture on this machine (never downloaded)."""
    if not entry.pretrained:
        raise BenchError(f"tokenizer {tokenizer_id}: architecture {entry.name} has no released weights; set tokenizer.checkpoint")
    try:
        return find_weights(entry.pretrained[0])
    except (MissingWeightsError, CorruptWeightsError) as error:
        raise BenchError(f"tokenizer {tokenizer_id}: {error}") from error


def given_weights(cfg) -> Path | None:
    """The weight file the run evaluates instead of training: ``tokenizer.checkpoint``, or the released
    file when ``tokenizer.pretrained``; None when it trains."""
    tok = cfg.tokenizer
    if tok.checkpoint:
        path = Path(tok.checkpoint).expanduser()
        if not path.is_file():
            raise BenchError(f"tokenizer.checkpoint={tok.checkpoint}: no such file")
        return path
    return released_weights(tokenizer_entry(tok.arch), tok.id) if tok.pretrained else None


def hashed_config(config: dict[str, Any], weights_sha256: str | None) -> dict[str, Any]:
    """The config as hashed: a given weight file counts by its content (sha256), not by its path, so a
    file moved keeps its records and a file replaced at the same path is measured again."""
    if weights_sha256 is None:
        return config
    return {**config, "tokenizer": {**config["tokenizer"], "checkpoint": f"sha256:{weights_sha256}"}}


def obtain_weights(model, cfg, hash_: str, given: Path | None, device: torch.device, stop: StopSignals) -> tuple[torch.nn.Module, Path, dict[str, Any]]:
    """Load the ``given`` weight file (`given_weights`), or reuse weights a finished training left, or
    train now (one task of a sharded evaluation never trains: the shards would all train the same weights)."""
    suite, tok = cfg.suite, cfg.tokenizer
    if given is not None:
        checkpoints.load_weights(model, given, tokenizer_entry(tok.arch).convert)
        return model, given, {"steps": 0, "source": "checkpoint" if tok.checkpoint else "released weights"}
    budget = Budget.of(tok.recipe, suite.train)
    if budget.steps == 0:
        raise BenchError(f"tokenizer {tok.id} has no checkpoint and nothing to train (suite.train.steps=0 or a recipe without steps): set one")
    if not tok.recipe.name:
        raise BenchError(f"tokenizer {tok.id} has no checkpoint and names no recipe to train by (tokenizer.recipe, bench/conf/recipe/)")
    folder = Path(cfg.output_dir) / suite.name / "checkpoints"
    weights_path, state_path = folder / f"{tok.id}-{hash_}.pt", folder / f"{tok.id}-{hash_}.train.pt"
    if weights_path.exists():
        log.info("%s: training finished earlier, loading %s", tok.id, weights_path)
        state = checkpoints.load(weights_path)
        checkpoints.load_weights(model, weights_path)
        return model, weights_path, {**state["train"], "wall_time_s": trained_wall_time(state_path)}
    if cfg.eval_shard is not None:
        raise BenchError(
            f"{tok.id}: eval_shard={cfg.eval_shard} needs trained weights ({weights_path} is missing): train first with the "
            "same overrides and no eval_shard, or set tokenizer.checkpoint"
        )
    dataset = build_dataset(suite.dataset, suite.dataset.train_split)
    result = train(model, dataset, tok.recipe, budget, seed=cfg.seed, device=device, state_path=state_path, stop=stop)
    # The weights file holds only what a resumed run reproduces exactly, so its sha256 is the same.
    summary = {"steps": result.steps, "batch_size": budget.batch_size, "recipe": tok.recipe.name, "precision": tok.recipe.precision,
               "final_reconstruction_loss": result.final_loss, "source": "trained"}  # fmt: skip
    if distributed.is_writer():
        checkpoints.save({"model": result.model.state_dict(), "train": summary}, weights_path)
    return result.model, weights_path, {**summary, "wall_time_s": result.wall_time_s}


def pass_options(cfg, dataset, device: torch.device) -> dict[str, Any]:
    """The evaluation pass's settings from the suite (items of different lengths go one at a time)."""
    suite = cfg.suite
    workers = default_workers() if suite.eval.num_workers is None else suite.eval.num_workers
    batch_size = 1 if getattr(dataset, "variable_length", False) else suite.eval.batch_size
    return dict(batch_size=batch_size, device=device, num_workers=workers, max_skipped=suite.dataset.max_skipped, precision=suite.eval.precision)


def evaluate_sharded(model, dataset, make_metrics, cfg, folder: Path, device: torch.device, stop: StopSignals) -> dict[str, Metric] | None:
    """Evaluate this task's shards (``cfg.eval_shard``, or all of them) into ``folder/shard-K.pt``; once every
    shard file is there, merge them in order and return the metrics (None while shards are missing).

    With ``eval_shards=1`` nothing is saved: under torch.distributed rank r evaluates the r-th part
    and ``compute`` merges the ranks' states in rank order.
    """
    if cfg.eval_shards == 1:
        metrics = make_metrics()
        state_path = folder / f"rank-{distributed.rank()}-of-{distributed.world_size()}.partial.pt"
        evaluate(model, dataset, metrics, **pass_options(cfg, dataset, device), shard=distributed.rank(), num_shards=distributed.world_size(),
                 state_path=state_path, stop=stop)  # fmt: skip
        return metrics
    if distributed.is_active():
        raise BenchError(f"eval_shards={cfg.eval_shards} with {distributed.world_size()} processes: shard with one or the other")
    paths = [folder / f"of-{cfg.eval_shards}" / f"shard-{k}.pt" for k in range(cfg.eval_shards)]
    for k in range(cfg.eval_shards) if cfg.eval_shard is None else [cfg.eval_shard]:
        if paths[k].exists():
            continue
        metrics = make_metrics()
        evaluate(model, dataset, metrics, **pass_options(cfg, dataset, device), shard=k, num_shards=cfg.eval_shards,
                 state_path=paths[k].with_suffix(".partial.pt"), stop=stop)  # fmt: skip
        checkpoints.save(metric_states(metrics), paths[k])
        log.info("%s: wrote shard %d of %d: %s", cfg.tokenizer.id, k, cfg.eval_shards, paths[k])
    missing = [k for k, path in enumerate(paths) if not path.exists()]
    if missing:
        log.info("%s: shards %s not done yet; the task that finishes the last one writes the record", cfg.tokenizer.id, missing)
        return None
    metrics = make_metrics()
    merge_shards(metrics, paths)
    return metrics


@contextmanager
def cpu_threads(count: int | None):
    """Run the block on ``count`` intra-op CPU threads (None: leave torch's setting)."""
    previous = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def forget_earlier_run(cfg: DictConfig, hash_: str) -> None:
    """``redo``: remove the weights, training state and evaluation shards an earlier run of this config
    left (training then starts from step 0); ``reevaluate``: only the shards (the weights are reused)."""
    if not (cfg.redo or cfg.reevaluate):
        return
    root = Path(cfg.output_dir) / cfg.suite.name
    shutil.rmtree(root / "shards" / f"{cfg.tokenizer.id}-{hash_}", ignore_errors=True)
    if cfg.redo:
        for name in (f"{cfg.tokenizer.id}-{hash_}.pt", f"{cfg.tokenizer.id}-{hash_}.train.pt"):
            (root / "checkpoints" / name).unlink(missing_ok=True)


@dataclass
class Announcer:
    """What the runs of one ``bench.run`` tell the person watching: which run this is ("run 3 of 18"),
    and a warning that holds for every run (a metric's missing weights) said once."""

    total: int = 1
    current: int = 1
    warned: set[str] = field(default_factory=set)

    def run(self, cfg: DictConfig) -> str:
        return f"run {self.current} of {self.total}: {cfg.tokenizer.id}, seed {cfg.seed}"

    def warn_once(self, message: str) -> None:
        if message not in self.warned:
            self.warned.add(message)
            log.warning("%s", message)


def run_one(cfg: DictConfig, announcer: Announcer | None = None) -> Path:
    """Train/evaluate one tokenizer at one seed on one suite and write its record; returns the record's
    path (not written yet when this task evaluated one shard and others are missing).

    A stop signal (preemption, time limit) saves the training or evaluation state and requeues the
    job (see `bench.preemption`); the requeued run resumes from that state.
    """
    if cfg.seed is None:
        raise BenchError("run_one needs a seed: run() expands the suite's seeds")
    with StopSignals() as stop, cpu_threads(cfg.suite.threads):
        return _run_one(cfg, stop, announcer or Announcer())


def _run_one(cfg: DictConfig, stop: StopSignals, announcer: Announcer) -> Path:
    config = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    given = given_weights(cfg)
    given_sha256 = sha256_of(given) if given is not None else None  # read once: it names the run and goes into its record
    hash_ = config_hash(hashed_config(config, given_sha256))
    suite, tok = cfg.suite, cfg.tokenizer
    log.info("%s, config %s", announcer.run(cfg), hash_)
    path = record_path(cfg.output_dir, suite.name, tok.id, hash_)
    if path.exists() and not (cfg.redo or cfg.reevaluate):
        log.info("%s: record %s exists, skipping (redo=true to run again, reevaluate=true to evaluate again)", tok.id, path)
        return path

    began = time.perf_counter()
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    distributed.setup(device)
    if distributed.is_writer():
        forget_earlier_run(cfg, hash_)
    distributed.barrier()  # no rank reads what the writer is removing
    model = build_tokenizer(tok)
    dataset = build_dataset(suite.dataset, suite.dataset.eval_split)
    item_shape = tuple(first_readable(dataset, range(len(dataset)))[1].shape)
    try:
        model.token_grid(item_shape)
    except ValueError as error:
        raise BenchError(f"{tok.id} cannot tokenize the suite's items of shape {item_shape}: {error}") from error
    model, weights_path, train_summary = obtain_weights(model, cfg, hash_, given, device, stop)

    def make_metrics():
        available, unavailable = build_metrics(
            list(suite.eval.metrics),
            codebook_size=model.codebook_size,
            num_codebooks=model.num_codebooks,
            usage_queue=suite.eval.usage_queue,
            fid_weights=OmegaConf.to_container(suite.eval.fid_weights),
            fid_references=references,
            sample_rate=model.sample_rate,
            reconstructs=model.reconstructs,
        )
        return {**available, "data": DataAccount()}, unavailable

    references: dict[str, Any] = {}
    metrics, unavailable = make_metrics()
    references_folder = Path(cfg.output_dir) / suite.name / "fid_reference"
    references = load_references(metrics, references_folder, dataset, suite.dataset)
    if references:
        metrics, unavailable = make_metrics()
    for name, reason in unavailable.items():
        announcer.warn_once(f"{name} not available: {reason}")
    shard_folder = Path(cfg.output_dir) / suite.name / "shards" / f"{tok.id}-{hash_}"
    evaluated = evaluate_sharded(model, dataset, lambda: make_metrics()[0], cfg, shard_folder, device, stop)
    if evaluated is None:
        return path
    values = compute_all(evaluated)
    if not distributed.is_writer():
        return path
    if not distributed.is_active():  # a rank holds only its part of the real statistics
        save_references(evaluated, references_folder, dataset, suite.dataset)

    samples_path = Path(cfg.output_dir) / suite.name / "samples" / f"{tok.id}-{hash_}.npz"
    save_samples(model, dataset, samples_path, count=suite.eval.samples, device=device)

    data = data_report(values.pop("data"), dataset)
    record = make_record(
        config=config,
        hash_=hash_,
        model=model,
        item_shape=item_shape,
        num_items=data["evaluated"],
        data=data,
        metrics=flatten_metrics(values),
        metric_protocols={name: metric.protocol for name, metric in metrics.items() if name != "data"},
        unavailable=unavailable,
        checkpoint_sha256=given_sha256 or sha256_of(weights_path),
        train=train_summary,
        wall_time_s=time.perf_counter() - began,
        device=device,
    )
    write_record(record, path)
    log.info("%s: wrote %s", tok.id, path)
    return path


DATA_PROVENANCE = ("resampler", "espeak_version")  # what a dataset says about how its items were made


def data_report(counts: dict[str, int], dataset, examples: int = 10) -> dict[str, Any]:
    """What the evaluation read (`DataAccount`'s counts), naming the first skipped files, and how the
    dataset made its items where it says (the resampler, the speech synthesiser's version)."""
    skipped = counts.pop("skipped_indices")
    made = {key: getattr(dataset, key) for key in DATA_PROVENANCE if hasattr(dataset, key)}
    return {**counts, "listed": len(dataset), "skipped_files": [dataset.source(i) for i in skipped[:examples]], **made}


def compose_for(tokenizer: str | None, seed: int | None) -> DictConfig:
    """The config this job would have with ``tokenizer=<name>`` and ``seed=<seed>`` (where given) added
    to its command-line overrides."""
    overrides = list(HydraConfig.get().overrides.task)
    for key, value in (("tokenizer", tokenizer), ("seed", seed)):
        if value is not None:
            overrides = [o for o in overrides if not o.startswith(f"{key}=")] + [f"{key}={value}"]
    return hydra.compose(config_name="config", overrides=overrides)


def not_run_path(output_dir: str, suite: str, tokenizer: str) -> Path:
    """Where a run that could not be made leaves why (its leaderboard lists it); removed when it runs."""
    return Path(output_dir) / suite / "not_run" / f"{tokenizer}.json"


def run(cfg: DictConfig) -> list[Path]:
    """Every run ``cfg`` asks for (`compose_for`), then the suite's page; ends with one line naming
    the page (or the records, when there is no page to write)."""
    validate(cfg)
    if cfg.tokenizer is None and not cfg.suite.tokenizers:
        raise BenchError(f"suite {cfg.suite.name} lists no tokenizers: choose one with tokenizer=<name>")
    build_dataset(cfg.suite.dataset, cfg.suite.dataset.eval_split)  # missing data: said once, before any weights are looked for
    tokenizers = [None] if cfg.tokenizer is not None else list(cfg.suite.tokenizers)
    seeds = [None] if cfg.seed is not None else list(cfg.suite.seeds)
    runs = [cfg] if tokenizers == [None] and seeds == [None] else [compose_for(t, s) for t in tokenizers for s in seeds]
    announcer = Announcer(total=len(runs))
    paths, failed = [], 0
    for announcer.current, job in enumerate(runs, start=1):  # one failing tokenizer (missing weights, say) does not stop the others
        note = not_run_path(job.output_dir, job.suite.name, job.tokenizer.id)
        try:
            paths.append(run_one(job, announcer))
            note.unlink(missing_ok=True)
        except BenchError as error:
            if distributed.is_writer():  # the page names it in the tokenizer's place
                atomic_write_bytes(note, json.dumps({"tokenizer": job.tokenizer.id, "seed": job.seed, "error": str(error)}).encode())
            if len(runs) == 1:
                raise
            log.error("%s: %s", announcer.run(job), error)
            failed += 1
    page = write_leaderboard(cfg.suite.name, cfg.output_dir, PUBLISHED_DIR, pages_dir=cfg.leaderboard_dir) if distributed.is_writer() else None
    written = f"page {page}" if page else f"records in {Path(cfg.output_dir) / cfg.suite.name / 'records'}"
    if failed:
        raise BenchError(f"{failed} of {len(runs)} runs failed, each said why above; {written}")
    if distributed.is_writer():
        log.info("%d run%s done; %s", len(runs), "s" if len(runs) > 1 else "", written)
    return paths


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> list[Path]:
    try:
        return run(cfg)  # under a Hydra launcher: the task's result (`python -m slurm.status` shows it)
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    one_line_config_errors(main)
