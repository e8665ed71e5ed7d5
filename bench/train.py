"""One generic trainer for every tokenizer: reconstruction loss + the quantizer's own loss, Adam,
optional EMA of the weights, atomic checkpoints and exact resumption.

The batch order is a pure function of (seed, step): a run resumed from a checkpoint at step s sees
exactly the batches an uninterrupted run sees from step s on. With the model, optimizer, EMA, RNG
and the recent losses restored, a resumed run ends with the same weights as an uninterrupted one.
A stop signal (`bench.preemption`) is honoured at the next step boundary: save, then requeue.
Under torch.distributed each rank trains on its slice of every global batch (DDP) and only rank 0
writes checkpoints.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Dataset, Sampler

from . import checkpoints, distributed
from .errors import BenchError
from .preemption import StopSignals
from .progress import progress

RECONSTRUCTION_LOSSES = {"mse": F.mse_loss, "l1": F.l1_loss}


class TrainingDiverged(BenchError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


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
    wall_time_s: float


def train(
    model: nn.Module, dataset: Dataset, cfg, *, seed: int, device: torch.device, state_path: Path, stop: StopSignals | None = None
) -> TrainResult:
    """Train ``model`` for ``cfg.steps`` steps (``cfg`` is a `bench.config.TrainConfig`), resuming from
    ``state_path`` if a checkpoint is there, and checkpointing to it every ``cfg.checkpoint_every``
    and when ``stop.requested()`` (then ``stop.stop`` requeues or raises)."""
    model.to(device).train()
    step_model = nn.parallel.DistributedDataParallel(model) if distributed.is_active() else model
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.weights_ema_decay), use_buffers=True) if cfg.weights_ema_decay else None
    reconstruction_loss = RECONSTRUCTION_LOSSES[cfg.reconstruction_loss]

    start, recent = 0, []
    if state_path.exists():
        state = checkpoints.load(state_path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        torch.set_rng_state(state["rng"])
        start, recent = int(state["step"]), list(state.get("recent", []))

    def save(step: int) -> None:
        if not distributed.is_writer():
            return
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step, "rng": torch.get_rng_state(), "recent": recent}
        if ema is not None:
            state["ema"] = ema.state_dict()
        checkpoints.save(state, state_path)

    loader = DataLoader(dataset, batch_sampler=SeededBatches(len(dataset), cfg.batch_size, seed, start, cfg.steps), num_workers=cfg.num_workers)
    began = time.perf_counter()
    bar = progress(loader, total=cfg.steps, initial=start, desc="train", unit="step")
    for step, x in enumerate(bar, start=start):
        x = x.to(device, non_blocking=True)
        out = step_model(x)
        rec = reconstruction_loss(out.recon, x)
        loss = rec + out.loss
        if not torch.isfinite(loss):
            raise TrainingDiverged(f"loss is {loss.item()} at step {step}; the last good checkpoint is {state_path}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if ema is not None:
            ema.update_parameters(model)
        recent = (recent + [distributed.mean(rec.detach()).item()])[-50:]
        if step % 10 == 0:
            bar.set_postfix(rec=f"{rec.item():.4f}", **{k: f"{v.item():.3g}" for k, v in out.metrics.items()}, refresh=False)
        stopping = stop is not None and stop.requested()
        if stopping or (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
            save(step + 1)
        if stopping:
            stop.stop(f"train step {step + 1}/{cfg.steps} (state in {state_path})")
    bar.close()

    final = ema.module if ema is not None else model
    final.eval()
    return TrainResult(final, cfg.steps, sum(recent) / max(len(recent), 1), time.perf_counter() - began)

