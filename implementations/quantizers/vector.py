"""Vector quantization (VQ-VAE, van den Oord et al. 2017, https://arxiv.org/abs/1711.00937).

Options the literature compares, each a constructor flag:

* the VQ loss ``||sg[z] - e||^2 + beta ||z - sg[e]||^2`` (paper) and taming's ``legacy`` placement
  ``beta ||sg[z] - e||^2 + ||z - sg[e]||^2`` (Esser et al. 2021, kept as a flag: released taming
  checkpoints were trained with it);
* an EMA codebook with Laplace smoothing (paper appendix A.1, as in Sonnet's ``VectorQuantizerEMA``)
  instead of the codebook loss;
* l2-normalised (cosine) codes (ViT-VQGAN, Yu et al. 2022, https://arxiv.org/abs/2110.04627);
* a low-dimensional code space reached through linear in/out projections (ViT-VQGAN, LlamaGen);
* k-means initialisation of the codebook from the first training batch (as in SoundStream /
  EnCodec, Zeghidour et al. 2021, https://arxiv.org/abs/2107.03312);
* dead-code restart: codes whose usage falls below a threshold are replaced by random encoder
  outputs of the current batch (Jukebox, Dhariwal et al. 2020, https://arxiv.org/abs/2005.00341;
  SoundStream);
* the rotation trick (Fifty et al. 2024, "Restructuring Vector Quantization with the Rotation
  Trick", https://arxiv.org/abs/2410.06424): the gradient reaches ``z`` through the (detached)
  rotation and rescaling that map ``z`` onto its code instead of through the identity.

Nearest codes are found without building an ``N x K`` one-hot (see ``distance.nearest_codes``);
EMA statistics and restarts use ``bincount`` / ``index_add_`` and row indexing only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..protocol import Quantizer, QuantizerOutput
from ..arguments import require_at_least, require_positive
from ..registry import register_quantizer
from .distance import nearest_codes
from .kmeans import kmeans
from .stats import batch_perplexity

__all__ = ["VectorQuantizer", "nearest_codes", "rotate_to"]

_EPS = 1e-12


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def rotate_to(z: Tensor, target: Tensor) -> Tensor:
    """Rotation trick (Fifty et al. 2024, section 4.2): ``lambda R z`` with ``R`` the rotation taking
    the direction of ``z`` onto that of ``target`` and ``lambda = |target| / |z|``, both treated as
    constants, so the value is ``target`` (up to rounding) and ``d out / d z = lambda R``.

    ``R = I - 2 w w^T + 2 v u^T`` with ``u = z/|z|``, ``v = target/|target|``, ``w = (u+v)/|u+v|``,
    applied row-wise in ``O(d)`` without forming ``R``. z, target: ``(..., d)``.
    """
    target = target.detach()
    z_norm = z.detach().norm(dim=-1, keepdim=True)
    t_norm = target.norm(dim=-1, keepdim=True)
    u = z.detach() / z_norm.clamp_min(_EPS)
    v = target / t_norm.clamp_min(_EPS)
    w = F.normalize(u + v, dim=-1)
    rotated = z - 2 * (z * w).sum(-1, keepdim=True) * w + 2 * (z * u).sum(-1, keepdim=True) * v
    # A (numerically) zero z has no direction: keep the scale at 1 there instead of exploding.
    scale = torch.where(z_norm > 1e-6, t_norm / z_norm.clamp_min(_EPS), torch.ones_like(z_norm))
    return rotated * scale


@register_quantizer("vq")
class VectorQuantizer(Quantizer):
    """Nearest-neighbour vector quantizer with one codebook.

    Args:
        dim: channels of the input ``z`` ``(..., dim)``.
        codebook_size: number of codes K.
        codebook_dim: dimension of the code space; when it differs from ``dim`` the input is
            projected down (and the codes back up) by linear layers.
        beta: commitment weight.
        legacy_beta: taming's placement of ``beta`` on the codebook term instead.
        l2_normalize: compare and emit unit-norm vectors (cosine similarity).
        ema_decay: if set, update the codebook by exponential moving averages (no codebook loss).
        ema_epsilon: Laplace smoothing of the EMA cluster sizes.
        kmeans_init: on the first training forward, set the codebook to ``kmeans_iters`` Lloyd
            iterations on that batch (rows drawn at random as seeds); the ``initialized`` buffer
            records it, so a reloaded checkpoint is not initialised again.
        dead_code_threshold: if > 0, before quantizing a training batch, codes whose usage is below
            it are replaced by random rows of the batch (code space). Usage is the EMA cluster size
            for EMA codebooks, else a usage EMA ``code_usage`` (decay ``usage_decay``, starting at
            the threshold). Both count expected assignments per batch. Note that EMA cluster sizes
            start at zero, so without ``kmeans_init`` the first training step restarts every code
            from the batch (a data-dependent initialisation, as in vector-quantize-pytorch).
            Restarted codes get usage = threshold.
        rotation_trick: pass the gradient through the rotation trick instead of straight through.
    """

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        codebook_dim: int | None = None,
        beta: float = 0.25,
        legacy_beta: bool = False,
        l2_normalize: bool = False,
        ema_decay: float | None = None,
        ema_epsilon: float = 1e-5,
        kmeans_init: bool = False,
        kmeans_iters: int = 10,
        dead_code_threshold: float = 0.0,
        usage_decay: float = 0.99,
        rotation_trick: bool = False,
    ):
        super().__init__()
        require_positive(dim=dim, codebook_size=codebook_size, codebook_dim=codebook_dim, kmeans_iters=kmeans_iters)
        require_at_least(0, dead_code_threshold=dead_code_threshold)
        self.dim = dim
        self.codebook_size = codebook_size
        self.codebook_dim = codebook_dim or dim
        self.beta = beta
        self.legacy_beta = legacy_beta
        self.l2_normalize = l2_normalize
        self.ema_decay = ema_decay
        self.ema_epsilon = ema_epsilon
        self.kmeans_init = kmeans_init
        self.kmeans_iters = kmeans_iters
        self.dead_code_threshold = dead_code_threshold
        self.usage_decay = usage_decay
        self.rotation_trick = rotation_trick

        projected = self.codebook_dim != dim
        self.in_proj = nn.Linear(dim, self.codebook_dim) if projected else nn.Identity()
        self.out_proj = nn.Linear(self.codebook_dim, dim) if projected else nn.Identity()

        weight = torch.empty(codebook_size, self.codebook_dim).uniform_(-1 / codebook_size, 1 / codebook_size)
        if ema_decay is None:
            self.codebook = nn.Parameter(weight)
        else:
            self.register_buffer("codebook", weight)
            self.register_buffer("ema_cluster_size", torch.zeros(codebook_size))
            self.register_buffer("ema_sum", weight.clone())
        if kmeans_init:
            self.register_buffer("initialized", torch.tensor(False))
        if dead_code_threshold > 0 and ema_decay is None:
            self.register_buffer("code_usage", torch.full((codebook_size,), float(dead_code_threshold)))

    @property
    def uses_ema(self) -> bool:
        return self.ema_decay is not None

    def _normalize(self, x: Tensor) -> Tensor:
        return F.normalize(x, dim=-1) if self.l2_normalize else x

    def embeddings(self) -> Tensor:
        """The codebook as the quantizer uses it, ``(K, codebook_dim)``."""
        return self._normalize(self.codebook)

    def forward(self, z: Tensor) -> QuantizerOutput:
        latent = self._normalize(self.in_proj(z))
        flat = latent.reshape(-1, self.codebook_dim)
        restarted = 0
        if self.training:
            if self.kmeans_init and not bool(self.initialized):
                self._kmeans_init(flat.detach())
            if self.dead_code_threshold > 0:
                restarted = self._restart_dead_codes(flat.detach())

        codebook = self.embeddings()
        codes = nearest_codes(flat.detach(), codebook.detach())
        selected = F.embedding(codes, codebook).view_as(latent)

        if self.training and self.uses_ema:
            self._ema_update(flat.detach(), codes)
        elif self.training and self.dead_code_threshold > 0:
            self._update_usage(codes)

        commitment = F.mse_loss(latent, selected.detach())
        if self.uses_ema:
            codebook_loss = torch.zeros((), device=z.device)
            loss = self.beta * commitment
        else:
            codebook_loss = F.mse_loss(selected, latent.detach())
            loss = self.beta * codebook_loss + commitment if self.legacy_beta else codebook_loss + self.beta * commitment

        if self.rotation_trick:
            rotated = rotate_to(latent, selected)
            quantized = rotated + (selected - rotated).detach()  # value exactly the code, gradient lambda R
        else:
            quantized = latent + (selected - latent).detach()  # straight-through estimator
        metrics = {
            "commitment": commitment.detach(),
            "codebook": codebook_loss.detach(),
            "perplexity": batch_perplexity(codes, self.codebook_size),
        }
        if self.dead_code_threshold > 0:
            metrics["restarted_codes"] = torch.tensor(float(restarted))
        return QuantizerOutput(self.out_proj(quantized), codes.view(*z.shape[:-1], 1), loss, metrics)

    def codes_to_embeddings(self, codes: Tensor) -> Tensor:
        return self.out_proj(F.embedding(codes[..., 0], self.embeddings()))

    # -- training-time codebook maintenance (all under no_grad, no N x K tensors) --------------

    def _smoothed_cluster_size(self) -> Tensor:
        """Laplace-smoothed EMA cluster sizes ``N~_k = (N_k + eps) / (sum N + K eps) * sum N``."""
        total = self.ema_cluster_size.sum()
        return (self.ema_cluster_size + self.ema_epsilon) / (total + self.codebook_size * self.ema_epsilon) * total

    def _set_ema_sum(self, rows: Tensor | slice) -> None:
        """Make ``ema_sum`` agree with the codebook (``e_k = m_k / N~_k``) on ``rows``."""
        self.ema_sum[rows] = self.codebook[rows] * self._smoothed_cluster_size()[rows].unsqueeze(1)

    @torch.no_grad()
    def _kmeans_init(self, flat: Tensor) -> None:
        result = kmeans(flat, self.codebook_size, self.kmeans_iters, init="random", spherical=self.l2_normalize)
        centroids = result.centroids.to(self.codebook.dtype)
        counts = torch.bincount(result.codes, minlength=self.codebook_size).to(self.codebook.dtype)
        if _distributed():
            torch.distributed.broadcast(centroids, src=0)
            torch.distributed.broadcast(counts, src=0)
        self.codebook.data.copy_(centroids)
        if self.uses_ema:
            self.ema_cluster_size.copy_(counts)
            self._set_ema_sum(slice(None))
        elif self.dead_code_threshold > 0:
            self.code_usage.copy_(counts.clamp_min(self.dead_code_threshold))
        self.initialized.fill_(True)

    @torch.no_grad()
    def _restart_dead_codes(self, flat: Tensor) -> int:
        usage = self.ema_cluster_size if self.uses_ema else self.code_usage
        dead = (usage < self.dead_code_threshold).nonzero().squeeze(1)
        if dead.numel() == 0:
            return 0
        n = flat.shape[0]
        if n >= dead.numel():
            rows = torch.randperm(n, device=flat.device)[: dead.numel()]
        else:
            rows = torch.randint(n, (dead.numel(),), device=flat.device)
        samples = flat[rows].to(self.codebook.dtype)
        if _distributed():  # the dead set agrees across ranks (usage is all-reduced); the samples are rank 0's
            torch.distributed.broadcast(samples, src=0)
        self.codebook.data[dead] = samples
        usage[dead] = self.dead_code_threshold
        if self.uses_ema:
            self._set_ema_sum(dead)
        return dead.numel()

    @torch.no_grad()
    def _update_usage(self, codes: Tensor) -> None:
        counts = torch.bincount(codes, minlength=self.codebook_size).to(self.code_usage.dtype)
        if _distributed():
            torch.distributed.all_reduce(counts)
        self.code_usage.mul_(self.usage_decay).add_(counts, alpha=1 - self.usage_decay)

    @torch.no_grad()
    def _ema_update(self, flat: Tensor, codes: Tensor) -> None:
        """Sonnet/VQ-VAE EMA: N_k <- g N_k + (1-g) n_k, m_k <- g m_k + (1-g) sum z, e_k = m_k / N~_k,
        with Laplace-smoothed N~_k = (N_k + eps) / (sum N + K eps) * sum N."""
        counts = torch.bincount(codes, minlength=self.codebook_size).to(flat.dtype)
        sums = torch.zeros_like(self.ema_sum).index_add_(0, codes, flat.to(self.ema_sum.dtype))
        if _distributed():
            torch.distributed.all_reduce(counts)
            torch.distributed.all_reduce(sums)
        decay = self.ema_decay
        self.ema_cluster_size.mul_(decay).add_(counts, alpha=1 - decay)
        self.ema_sum.mul_(decay).add_(sums, alpha=1 - decay)
        self.codebook.copy_(self.ema_sum / self._smoothed_cluster_size().unsqueeze(1))
