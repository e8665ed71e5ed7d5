"""Codebook usage and perplexity of the codes a tokenizer emits on an evaluation set.

Three numbers per codebook (then averaged over codebooks):

* ``usage``: share of the ``codebook_size`` entries used at least once over the whole set
  (Open-MAGVIT2's "codebook usage").
* ``usage_queue``: share of entries that occur among the last ``queue_size`` codes seen, 65,536 by
  default (the definition of xyfJASON/visual-tokenizer-pytorch). Codes enter the queue in their
  natural order: each batch flattened row-major over ``codes[..., c]``, batches in update order.
  Before ``queue_size`` codes have been seen, the queue holds all of them.
* ``perplexity``: ``exp(H)`` of the empirical code distribution over the whole set (natural log);
  it equals ``codebook_size`` for a uniform distribution.

States: ``counts`` ``(num_codebooks, codebook_size)`` int64, summed when shards merge; ``queue``
``(queue_size, num_codebooks)`` int64, right-aligned and padded with -1 on the left, merged by
concatenating shards in order (rank order under DDP; for ``a.merge_state(b)``, ``b``'s codes come
after ``a``'s) and keeping the last ``queue_size`` rows.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric


def _merge_queues(queues: Tensor) -> Tensor:
    """Concatenate left-padded queues ``(S, Q, C)`` in shard order; keep the last ``Q`` codes."""
    size = queues.shape[1]
    rows = queues.reshape(-1, queues.shape[-1])
    rows = rows[rows[:, 0] >= 0][-size:]
    pad = rows.new_full((size - rows.shape[0], rows.shape[1]), -1)
    return torch.cat([pad, rows])


class CodebookUsage(Metric):
    """Whole-set usage, last-``queue_size`` usage and perplexity of codes ``(..., num_codebooks)``."""

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(self, codebook_size: int, num_codebooks: int = 1, queue_size: int = 65536, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.codebook_size = int(codebook_size)
        self.num_codebooks = int(num_codebooks)
        self.queue_size = int(queue_size)
        self.add_state(
            "counts", torch.zeros(self.num_codebooks, self.codebook_size, dtype=torch.int64), dist_reduce_fx="sum"
        )
        self.add_state(
            "queue",
            torch.full((self.queue_size, self.num_codebooks), -1, dtype=torch.int64),
            dist_reduce_fx=_merge_queues,
        )

    @property
    def protocol(self) -> str:
        return (
            f"codebook usage: K={self.codebook_size} x {self.num_codebooks} codebooks; usage = share of entries "
            f"used at least once on the whole set; usage_queue = unique entries in the last {self.queue_size} codes "
            "/ K (xyfJASON/visual-tokenizer-pytorch); perplexity = exp(entropy, nats) of whole-set counts; "
            "all per codebook, then mean over codebooks"
        )

    def update(self, codes: Tensor) -> None:
        """``codes``: integer tensor ``(..., num_codebooks)`` with values in ``[0, codebook_size)``."""
        if codes.shape[-1] != self.num_codebooks:
            raise ValueError(f"codes end in {codes.shape[-1]} codebooks, expected {self.num_codebooks}")
        flat = codes.detach().reshape(-1, self.num_codebooks).long()
        if flat.numel() and (flat.min() < 0 or flat.max() >= self.codebook_size):
            raise ValueError(f"codes outside [0, {self.codebook_size})")
        offsets = torch.arange(self.num_codebooks, device=flat.device) * self.codebook_size
        self.counts += torch.bincount(
            (flat + offsets).reshape(-1), minlength=self.num_codebooks * self.codebook_size
        ).view(self.num_codebooks, self.codebook_size)
        self.queue = torch.cat([self.queue, flat[-self.queue_size :]])[-self.queue_size :]

    def merge_state(self, incoming_state: dict[str, Any] | Metric) -> None:
        """Merge another shard; its queued codes count as seen after this metric's."""
        incoming_queue = incoming_state.queue if isinstance(incoming_state, Metric) else incoming_state["queue"]
        local_queue = self.queue
        super().merge_state(incoming_state)
        self.queue = _merge_queues(torch.stack([local_queue, incoming_queue]))

    def compute(self) -> dict[str, float | list[float]]:
        usage = (self.counts > 0).double().mean(dim=1)
        seen = self.queue[:, 0] >= 0
        usage_queue = torch.tensor(
            [self.queue[seen, c].unique().numel() / self.codebook_size for c in range(self.num_codebooks)],
            dtype=torch.float64,
        )
        probs = self.counts.double() / self.counts.sum(dim=1, keepdim=True).clamp_min(1)
        perplexity = torch.exp(-torch.special.xlogy(probs, probs).sum(dim=1))
        return {
            "usage": usage.mean().item(),
            "usage_queue": usage_queue.mean().item(),
            "perplexity": perplexity.mean().item(),
            "usage_per_codebook": usage.tolist(),
            "usage_queue_per_codebook": usage_queue.tolist(),
            "perplexity_per_codebook": perplexity.tolist(),
        }


class QuantizationError(Metric):
    """Mean squared distance between the encoder's features and their quantized values, per item,
    averaged over the evaluation (for tokenizers without a decoder, e.g. vq-wav2vec: with usage and
    perplexity, what their codes can be judged by). Fed the batch mean and the batch size."""

    full_state_update = False
    higher_is_better = False
    protocol = "quantization error: mean squared distance between encoder features and their quantized values (the tokenizer's forward), mean over items"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("total", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, batch_mean: Tensor, batch_size: int) -> None:
        self.total += batch_mean.detach().double() * batch_size
        self.count += batch_size

    def compute(self) -> Tensor:
        return self.total / self.count
