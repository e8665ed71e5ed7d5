"""EnCodec's loss balancer (Défossez et al. 2022, "High Fidelity Neural Audio Compression",
https://arxiv.org/abs/2210.13438, sec. 3.4), following ``audiocraft/losses/balancer.py`` (``Balancer``)
of github.com/facebookresearch/audiocraft with the exponential moving average of flashy's ``averager``
(github.com/facebookresearch/flashy, ``flashy/utils.py``).

The losses ``l_i`` all depend on the model only through its output ``y``. With ``g_i = d l_i / d y``, the
balancer backpropagates into the model, instead of ``sum_i w_i g_i``,

    G = sum_i total_norm * (w_i / sum_j w_j) * g_i / (epsilon + ema(||g_i||)),

so that on average loss ``i`` contributes the fraction ``w_i / sum_j w_j`` of a gradient of norm
``total_norm``, whatever its own scale. ``||g_i||`` is the mean over batch items of the per-item L2 norms
(``per_batch_item``, audiocraft's default) or the norm over the whole batch. The moving average is
bias-corrected as flashy's: ``ema = S / W`` with ``S <- decay * S + ||g_i||`` and ``W <- decay * W + 1``, so
that the first step uses the first norm exactly. ``S`` and ``W`` of every loss are buffers (float64, as
flashy's Python floats), saved and restored with ``state_dict`` for an exact resume. Under
``torch.distributed`` the norms are averaged over processes (weighted by their batch sizes when
``per_batch_item``) before the update, as audiocraft averages them with ``flashy.distrib.average_metrics``,
so every process holds the same averages. The sum ``sum_j w_j`` runs over the losses given at each step
(audiocraft: over those seen so far, which must be given at every step).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn


class Balancer(nn.Module):
    """``backward(losses, output)`` backpropagates the balanced gradient of ``losses`` (a dict name ->
    scalar, each name a key of ``weights``) through ``output`` (``(B, ...)``, e.g. the decoded audio).

    Args:
        weights: desired share of each loss in the gradient (relative; normalised by their sum).
        total_norm: the norm the balanced gradient has on average.
        ema_decay: decay of the moving average of each loss's gradient norm.
        per_batch_item: norms per batch item, averaged (True) or over the whole batch (False).
        epsilon: added to the averaged norms before dividing by them.
    """

    def __init__(
        self,
        weights: dict[str, float],
        total_norm: float = 1.0,
        ema_decay: float = 0.999,
        per_batch_item: bool = True,
        epsilon: float = 1e-12,
    ):
        super().__init__()
        self.weights = dict(weights)
        self.total_norm = total_norm
        self.ema_decay = ema_decay
        self.per_batch_item = per_batch_item
        self.epsilon = epsilon
        self._index = {name: i for i, name in enumerate(self.weights)}
        self.register_buffer("norm_sums", torch.zeros(len(self.weights), dtype=torch.float64))  # S per loss
        self.register_buffer("decay_sums", torch.zeros(len(self.weights), dtype=torch.float64))  # W per loss

    def backward(self, losses: dict[str, Tensor], output: Tensor, scale: float = 1.0) -> dict[str, float]:
        """Backpropagate ``scale * G`` (``scale``: e.g. 1 / micro-batches) through ``output`` and return
        per loss its gradient norm this step (``norm_<name>``), its moving average (``ema_norm_<name>``),
        the share of that average in their sum (``ratio_<name>``, audiocraft's monitored ratio) and the
        factor applied to its gradient (``scale_<name>``)."""
        unknown = set(losses) - set(self.weights)
        if unknown:
            raise KeyError(f"losses without a balancer weight: {sorted(unknown)}; weights: {sorted(self.weights)}")
        names = list(losses)
        total_weight = sum(float(self.weights[name]) for name in names)
        if total_weight <= 0:
            raise ValueError(f"the weights of the losses {names} sum to {total_weight}; need a positive sum")
        grads = [torch.autograd.grad(losses[name], output, retain_graph=True)[0] for name in names]
        if self.per_batch_item:
            norms = torch.stack([grad.flatten(1).norm(dim=1).mean() for grad in grads]).double()
        else:
            norms = torch.stack([grad.norm() for grad in grads]).double()
        if dist.is_available() and dist.is_initialized():
            count = float(len(output)) if self.per_batch_item else 1.0
            summed = torch.cat([norms * count, norms.new_tensor([count])])
            dist.all_reduce(summed)
            norms = summed[:-1] / summed[-1]
        index = torch.tensor([self._index[name] for name in names], device=norms.device)
        self.norm_sums[index] = self.norm_sums[index] * self.ema_decay + norms
        self.decay_sums[index] = self.decay_sums[index] * self.ema_decay + 1.0
        averages = self.norm_sums[index] / self.decay_sums[index]
        shares = torch.tensor([self.weights[name] / total_weight for name in names], dtype=torch.float64, device=norms.device)
        factors = shares * self.total_norm / (self.epsilon + averages)
        combined = torch.zeros_like(output)
        for grad, factor in zip(grads, factors.to(output.dtype)):
            combined.add_(grad * factor)
        output.backward(combined * scale if scale != 1 else combined)
        metrics = {}
        for name, norm, average, ratio, factor in zip(
            names, norms.tolist(), averages.tolist(), (averages / averages.sum()).tolist(), factors.tolist()
        ):
            metrics.update({f"norm_{name}": norm, f"ema_norm_{name}": average, f"ratio_{name}": ratio, f"scale_{name}": factor})
        return metrics
