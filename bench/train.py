"""One generic trainer for every tokenizer and every recipe (`bench.config.RecipeConfig`).

A step: the tokenizer's update on the recipe's objective (`bench.objective`: reconstruction,
perceptual and spectral terms, GAN terms, the quantizer's loss), then, once the GAN terms are on,
the discriminator's update with its own optimizer, on the reconstructions of the tokenizer's update
or on those of the updated tokenizer (``adversarial.discriminator_input``). Adam or AdamW with the
recipe's betas and weight decay, linear warm-up then constant or cosine learning rates, gradient
clipping, gradient accumulation over micro-batches, bf16 / fp16 autocast (fp16 with a gradient
scaler per optimizer), an EMA of the weights, optional ``torch.compile``.

Exact resumption: the batch order is a pure function of (seed, step), and the checkpoint holds the
model, both optimizers, both schedules, the scalers, the objective's state (discriminator, LeCAM
anchors, balancer), the EMA, the RNG, the step, the recent losses and the training time so far, so
a resumed run ends with the same state, log and weights as an uninterrupted one (tested byte for
byte, continued past the original end). A stop signal (`bench.preemption`) is honoured at the
next step boundary: save, then requeue. Under torch.distributed each rank trains on its slice of
every global batch (DDP, discriminator included) and only rank 0 writes.

Every ``log_every`` steps the terms are written to ``<state>.log.csv`` in long form (``step, name,
value``: losses, adaptive weight, discriminator logits on real and reconstructed inputs, gradient
norms, learning rate) and shown on the progress bar.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Dataset, Sampler

from . import checkpoints, distributed
from .data import default_workers
from .data.items import collate
from .errors import BenchError
from .files import atomic_write_bytes, reporting_full_disk
from .objective import Objective
from .preemption import StopSignals
from .progress import progress

logger = logging.getLogger("bench.train")

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class TrainingDiverged(BenchError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass(frozen=True)
class Budget:
    """How long a run trains: the suite's budget where it sets one, else the recipe's."""

    steps: int
    batch_size: int
    checkpoint_every: int = 200
    log_every: int = 10
    num_workers: int = 0

    @classmethod
    def of(cls, recipe, suite_train) -> Budget:
        return cls(
            steps=recipe.steps if suite_train.steps is None else suite_train.steps,
            batch_size=recipe.batch_size if suite_train.batch_size is None else suite_train.batch_size,
            checkpoint_every=suite_train.checkpoint_every,
            log_every=suite_train.log_every,
            num_workers=default_workers() if suite_train.num_workers is None else suite_train.num_workers,
        )


class SeededBatches(Sampler[list[int]]):
    """Batches of indices for steps ``start..stop-1``; epoch e is ``randperm(n, seed=(seed, e))``,
    incomplete last batches are dropped; under torch.distributed, this rank's slice of each."""

    def __init__(self, num_items: int, batch_size: int, seed: int, start: int, stop: int):
        if num_items < batch_size:
            raise BenchError(f"the training split has {num_items} items, fewer than one batch of {batch_size}")
        self.num_items, self.batch_size, self.seed = num_items, batch_size, seed
        self.start, self.stop = start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __iter__(self):
        per_epoch = self.num_items // self.batch_size
        order, order_epoch = None, -1
        for step in range(self.start, self.stop):
            epoch, offset = divmod(step, per_epoch)
            if epoch != order_epoch:
                generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
                order, order_epoch = torch.randperm(self.num_items, generator=generator), epoch
            yield distributed.local_slice(order[offset * self.batch_size : (offset + 1) * self.batch_size].tolist())


@dataclass
class TrainResult:
    model: nn.Module  # the weights to evaluate (the EMA copy when enabled)
    steps: int
    final_loss: float  # mean reconstruction loss over the last 50 steps
    wall_time_s: float  # the training's, summed over the runs that resumed it


def make_optimizer(parameters, cfg) -> torch.optim.Optimizer:
    kind = torch.optim.AdamW if cfg.name == "adamw" else torch.optim.Adam
    return kind(parameters, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay, eps=cfg.eps)


def lr_factor(cfg, steps: int):
    """The learning-rate multiplier at each step: linear warm-up, then constant or cosine down to
    ``final_lr_ratio`` at the last step."""

    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.kind == "constant":
            return 1.0
        progress = (step - cfg.warmup_steps) / max(1, steps - cfg.warmup_steps)
        return cfg.final_lr_ratio + (1 - cfg.final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


class Updater:
    """One optimizer's update: backward (scaled under fp16), unscale, clip, step, schedule."""

    def __init__(self, parameters, optimizer_cfg, schedule_cfg, steps: int, precision: str, grad_clip: float | None, device: torch.device):
        self.parameters = [p for p in parameters if p.requires_grad]
        self.optimizer = make_optimizer(self.parameters, optimizer_cfg)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_factor(schedule_cfg, steps))
        self.scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
        self.grad_clip = grad_clip

    def backward(self, loss: torch.Tensor, retain_graph: bool = False) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward(retain_graph=retain_graph)

    def step(self, measure_norm: bool) -> torch.Tensor | None:
        """Apply the accumulated gradients; returns their global norm when clipping or ``measure_norm``."""
        norm = None
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.grad_clip is not None or measure_norm:
            norm = torch.nn.utils.clip_grad_norm_(self.parameters, self.grad_clip if self.grad_clip is not None else math.inf)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.schedule.step()
        return norm

    def state_dict(self) -> dict:
        state = {"optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict()}
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        if self.scaler is not None:
            self.scaler.load_state_dict(state["scaler"])


class TrainLog:
    """``step, name, value`` rows appended to a CSV, ``step`` counting the steps done; on resume from
    ``start`` steps, the rows after it (written after the last checkpoint by a run that was then
    killed) are dropped first."""

    def __init__(self, path: Path, start: int):
        self.path = path
        if distributed.is_writer():
            kept = []
            if start and path.exists():
                with open(path, newline="") as file:
                    kept = [row for row in csv.reader(file) if row[0] == "step" or int(row[0]) <= start]
            atomic_write_bytes(path, _csv(kept or [["step", "name", "value"]]))

    def write(self, step: int, values: dict[str, float]) -> None:
        if distributed.is_writer():
            rows = _csv([step, name, f"{value:.6g}"] for name, value in sorted(values.items()))
            with reporting_full_disk(self.path, len(rows)), open(self.path, "ab") as file:
                file.write(rows)


def _csv(rows) -> bytes:
    text = io.StringIO(newline="")
    csv.writer(text).writerows(rows)
    return text.getvalue().encode()


def train(
    model: nn.Module, dataset: Dataset, recipe, budget: Budget, *, seed: int, device: torch.device, state_path: Path, stop: StopSignals | None = None
) -> TrainResult:
    """Train ``model`` by ``recipe`` for ``budget.steps`` steps, resuming from ``state_path`` if a
    checkpoint is there, and checkpointing to it every ``budget.checkpoint_every`` steps and when
    ``stop.requested()`` (then ``stop.stop`` requeues or raises)."""
    model.to(device).train()
    objective = Objective(recipe, model).to(device).train()  # the loss modules too, as Lightning's model.train() sets them
    step_model = torch.compile(model) if recipe.compile else model
    if distributed.is_active():
        step_model = nn.parallel.DistributedDataParallel(step_model)
    discriminator = objective.discriminator
    parallel_discriminator = nn.parallel.DistributedDataParallel(discriminator) if discriminator is not None and distributed.is_active() else None
    generator = Updater(model.parameters(), recipe.optimizer, recipe.schedule, budget.steps, recipe.precision, recipe.grad_clip, device)
    critic = None
    if discriminator is not None:
        critic = Updater(discriminator.parameters(), recipe.adversarial.optimizer, recipe.schedule, budget.steps, recipe.precision, recipe.grad_clip, device)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(recipe.weights_ema_decay), use_buffers=True) if recipe.weights_ema_decay else None
    dtype = PRECISIONS[recipe.precision]

    def autocast():
        return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()

    state = checkpoints.load(state_path) if state_path.exists() else None
    start = int(state["step"]) if state is not None else 0
    recent, trained_s = [], 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        generator.load_state_dict(state["generator"])
        objective.load_resumable_state(state["objective"])
        if critic is not None:
            critic.load_state_dict(state["critic"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        torch.set_rng_state(state["rng"])
        if device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        recent, trained_s = list(state.get("recent", [])), float(state.get("wall_time_s", 0.0))

    def save(step: int, wall_time_s: float) -> None:
        if not distributed.is_writer():
            return
        state = {"model": model.state_dict(), "generator": generator.state_dict(), "objective": objective.resumable_state(), "step": step,
                 "rng": torch.get_rng_state(), "recent": recent, "wall_time_s": wall_time_s}  # fmt: skip
        if critic is not None:
            state["critic"] = critic.state_dict()
        if ema is not None:
            state["ema"] = ema.state_dict()
        if device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(device)
        checkpoints.save(state, state_path)

    log = TrainLog(state_path.with_suffix(".log.csv"), start)
    last_layer = model.last_layer_weight() if recipe.adversarial.adaptive_weight and discriminator is not None else None
    micro = recipe.grad_accumulation
    # The loader draws its workers' base seed from a generator of its own, not from the global RNG the
    # steps use (k-means seeds, restarts, dropout): the steps' stream does not depend on how often a
    # progress bar or a resumed run creates the loader's iterator.
    loader = DataLoader(dataset, batch_sampler=SeededBatches(len(dataset), budget.batch_size, seed, start, budget.steps),
                        num_workers=budget.num_workers, collate_fn=collate, generator=torch.Generator().manual_seed(seed))  # fmt: skip
    began, wall_time_s = time.perf_counter(), trained_s
    bar = progress(loader, total=budget.steps, initial=start, desc="train", unit="step")
    for step, data in enumerate(bar, start=start):
        for item in data.skipped:  # the batch goes on without it
            logger.warning("step %d: skipped unreadable %s", step, item)
        if data.x is None:
            raise BenchError(f"step {step}: no item of the batch is readable ({data.skipped[0]}, ...)")
        batch = data.x.to(device, non_blocking=True)
        chunks = batch.chunk(micro) if micro > 1 else (batch,)
        if len(chunks) != micro:
            raise BenchError(f"a batch of {len(batch)} does not split into grad_accumulation={micro} micro-batches")
        logging = (step + 1) % budget.log_every == 0 or step == 0
        values: dict[str, torch.Tensor] = {}
        reconstructions = []
        for x in chunks:
            with autocast():
                out = step_model(x)
                terms = objective.generator_backward(x, out, step, last_layer, 1.0 / micro, generator.backward)
            reconstructions.append(out.recon.detach())
            _accumulate(values, terms, micro)
            _accumulate(values, out.metrics, micro)
        diverged = [name for name, value in values.items() if not torch.isfinite(value)]
        if diverged:
            name = "loss" if "loss" in diverged else diverged[0]
            raise TrainingDiverged(f"{name} is {values[name].item()} at step {step}; the last good checkpoint is {state_path}")
        norm = generator.step(measure_norm=logging)
        if norm is not None:
            values["grad_norm"] = norm
        if critic is not None and objective.gan_active(step):
            if recipe.adversarial.discriminator_input == "recompute":
                with torch.no_grad(), autocast():
                    reconstructions = [step_model(x).recon for x in chunks]
            for x, recon in zip(chunks, reconstructions):
                terms = objective.discriminator_backward(x, recon, 1.0 / micro, critic.backward, autocast, parallel_discriminator)
                _accumulate(values, terms, micro)
            if not torch.isfinite(values["d_loss"]):
                raise TrainingDiverged(f"d_loss is {values['d_loss'].item()} at step {step}; the last good checkpoint is {state_path}")
            norm = critic.step(measure_norm=logging)
            if norm is not None:
                values["d_grad_norm"] = norm
        if ema is not None:
            ema.update_parameters(model)
        reconstruction = sum(values[name] for name in ("l1", "l2") if name in values)
        recent = (recent + [distributed.mean(torch.as_tensor(reconstruction)).item()])[-50:]
        if logging:
            shown = {name: float(value) for name, value in values.items()}
            shown["lr"] = generator.optimizer.param_groups[0]["lr"]
            log.write(step + 1, shown)
            bar.set_postfix({k: f"{v:.3g}" for k, v in shown.items() if k in ("l1", "l2", "perceptual", "adversarial", "d_loss", "perplexity")}, refresh=False)
        stopping = stop is not None and stop.requested()
        if stopping or (step + 1) % budget.checkpoint_every == 0 or step + 1 == budget.steps:
            wall_time_s = trained_s + time.perf_counter() - began
            save(step + 1, wall_time_s)
        if stopping:
            stop.stop(f"train step {step + 1}/{budget.steps} (state in {state_path})")
    bar.close()

    final = ema.module if ema is not None else model
    final.eval()
    return TrainResult(final, budget.steps, sum(recent) / max(len(recent), 1), wall_time_s)


def trained_wall_time(state_path: Path) -> float | None:
    """The training time a finished training's state holds (None without the state)."""
    return checkpoints.load(state_path).get("wall_time_s") if state_path.exists() else None


def _accumulate(values: dict[str, torch.Tensor], new: dict[str, torch.Tensor], micro: int) -> None:
    """Running mean over micro-batches of detached scalars."""
    for name, value in new.items():
        value = value.detach().float() / micro if micro > 1 else value.detach()
        values[name] = values[name] + value if name in values else value
