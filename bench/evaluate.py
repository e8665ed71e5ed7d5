"""One streaming evaluation pass: encode, decode through the codes, update every metric.

Reconstructions go through ``decode(encode(x))`` (the token path a generative model uses), never
through ``forward``, so what is scored is what the tokens carry. A tokenizer without a decoder
(``reconstructs`` False: vq-wav2vec) is scored on its codes and its quantization error (``forward``).

A pass can cover one shard of the set: shard ``k`` of ``S`` is a contiguous run of whole batches,
so the batches are those of the unsharded pass and merging the shards' metric states in shard
order (`merge_shards`) gives the unsharded result (sums in a different order: float64 rounding;
counts and the usage queue exactly). A stop signal is honoured between batches: the metric
states and the next batch index are saved to ``state_path`` and the pass resumes from there.

Unreadable items are skipped and counted (`bench.data.items.DataAccount`, one of the metric states);
more than ``max_skipped`` (a fraction of the dataset) ends the pass with one line naming the first.
The tokenizer's forward may run under autocast (``precision`` bf16 / fp16); metrics always get
float32 inputs and keep their own precision.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset
from torchmetrics import Metric

from . import checkpoints
from .data.items import DataAccount, collate
from .errors import BenchError
from .metrics import update_all
from .preemption import StopSignals
from .progress import progress


def shard_items(num_items: int, batch_size: int, shard: int, num_shards: int) -> range:
    """Item indices of shard ``shard`` of ``num_shards``: a contiguous run of whole batches."""
    batches = math.ceil(num_items / batch_size)
    first, last = shard * batches // num_shards, (shard + 1) * batches // num_shards
    return range(first * batch_size, min(last * batch_size, num_items))


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def load_states(metrics: dict[str, Metric], states: dict[str, dict[str, Tensor]]) -> None:
    """Set each metric's state tensors (as saved from ``metric.metric_state``)."""
    for name, metric in metrics.items():
        for key, value in states[name].items():
            setattr(metric, key, [v.to(metric.device) for v in value] if isinstance(value, list) else value.to(metric.device))
        metric._update_count = max(metric._update_count, 1)  # states came from updates


def metric_states(metrics: dict[str, Metric]) -> dict[str, dict[str, Tensor]]:
    def detached(value):
        return [v.detach().cpu() for v in value] if isinstance(value, list) else value.detach().cpu()

    return {name: {key: detached(value) for key, value in metric.metric_state.items()} for name, metric in metrics.items()}


def worker_message(error: Exception) -> str:
    """The original message of an error a DataLoader worker raised (the re-raised copy carries the
    worker's traceback in its message)."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[-1].split(": ", 1)[-1] if "DataLoader worker" in str(error) and lines else str(error)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset: Dataset,
    metrics: dict[str, Metric],
    *,
    batch_size: int,
    device: torch.device,
    num_workers: int = 0,
    shard: int = 0,
    num_shards: int = 1,
    max_skipped: float = 0.001,
    precision: str = "fp32",
    state_path: Path | None = None,
    stop: StopSignals | None = None,
) -> None:
    """Update ``metrics`` with shard ``shard`` of ``num_shards`` of ``dataset`` (call ``compute()`` after);
    resumes from ``state_path`` if a stopped pass saved its state there. A `DataAccount` among
    ``metrics`` counts the skipped items; without one, a skipped item is an error."""
    model.to(device).eval()
    for metric in metrics.values():
        metric.to(device)
    items = shard_items(len(dataset), batch_size, shard, num_shards)
    start = 0
    if state_path is not None and state_path.exists():
        state = checkpoints.load(state_path)
        load_states(metrics, state["states"])
        start = int(state["batch"])
    loader = DataLoader(Subset(dataset, items[start * batch_size :]), batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate)
    total = math.ceil(len(items) / batch_size)
    account = next((m for m in metrics.values() if isinstance(m, DataAccount)), None)
    allowed = int(max_skipped * len(dataset))
    autocast = torch.autocast(device.type, dtype=PRECISIONS[precision], enabled=PRECISIONS[precision] is not None)
    batches = iter(progress(loader, desc="eval", unit="batch", total=total, initial=start))
    for batch in range(start, total):
        try:
            data = next(batches)
        except BenchError as error:
            raise BenchError(worker_message(error)) from None
        if account is None and data.skipped:
            raise BenchError(f"cannot read {data.skipped[0]}")
        if account is not None:
            account.update(data)
            if len(account.skipped_indices()) > allowed:
                names = [dataset.source(i) for i in account.skipped_indices()[:3]]
                raise BenchError(f"more than {max_skipped:.2%} of the {len(dataset)} items are unreadable (suite.dataset.max_skipped): "
                                 f"{', '.join(names)}, ...; the first: {data.skipped[0] if data.skipped else names[0]}")  # fmt: skip
        if data.x is not None:
            x = data.x.to(device, non_blocking=True)
            with autocast:
                if getattr(model, "reconstructs", True):
                    codes = model.encode(x)
                    update_all(metrics, real=x, fake=model.decode(codes).float().clamp(-1, 1), codes=codes)
                else:  # no decoder: the codes and how far the features are from their quantized values
                    out = model(x)
                    update_all(metrics, real=x, fake=None, codes=out.codes, quantization_error=out.metrics.get("quantization_error"))
        if stop is not None and stop.received is not None and state_path is not None and batch + 1 < total:
            checkpoints.save({"batch": batch + 1, "states": metric_states(metrics)}, state_path)
            stop.stop(f"eval batch {batch + 1}/{total} of shard {shard}/{num_shards} (state in {state_path})")
    next(batches, None)  # the loader ends: the bar counts the last batch and closes
    if state_path is not None:
        state_path.unlink(missing_ok=True)


def merge_shards(metrics: dict[str, Metric], paths: list[Path]) -> None:
    """Merge saved shard states (``{metric name: metric_state}`` files) into fresh ``metrics``, in order."""
    for path in paths:
        states = checkpoints.load(path)
        for name, metric in metrics.items():
            metric.merge_state(states[name])
            metric._update_count += 1


def compute_all(metrics: dict[str, Metric]) -> dict[str, Any]:
    """``{metric name: value}`` (values may be dicts); under torch.distributed, over all ranks."""
    return {name: metric.compute() for name, metric in metrics.items()}
