"""k-means and hierarchical k-means tokens (VideoBERT, Sun et al. 2019, "VideoBERT: A Joint Model for
Video and Language Representation Learning", https://arxiv.org/abs/1904.01766).

VideoBERT tokenizes clip features with hierarchical k-means: ``depth`` levels of ``branching``
clusters each (4 x 12 = 20736 leaves in the paper), every cluster split again by k-means on its own
members. A token is the path of cluster indices from the root to a leaf, ``codes (..., depth)``; the
embedding of a token is its leaf centroid.

``kmeans`` is plain Lloyd with greedy k-means++ seeding (Arthur & Vassilvitskii 2007, with
``2 + log k`` candidates per step), seeded through a ``torch.Generator``; it is also used by
``VectorQuantizer`` for data-dependent codebook initialisation. Empty clusters are moved onto the
points farthest from their centroids.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..protocol import Quantizer, QuantizerOutput
from ..arguments import require_positive
from ..registry import register_quantizer
from .distance import nearest_codes, squared_distances_to
from .stats import batch_perplexity


@dataclass
class KMeansResult:
    """centroids ``(k, d)``, codes ``(N,)`` of the final centroids, inertia (sum of squared
    distances) after each assignment step, the last one for the returned centroids."""

    centroids: Tensor
    codes: Tensor
    inertia: list[float]


def kmeans_plusplus(x: Tensor, k: int, generator: torch.Generator | None = None) -> Tensor:
    """Greedy k-means++ seeding: ``k`` rows of ``x`` ``(N, d)``, returns ``(k, d)``."""
    n = x.shape[0]
    trials = 2 + int(math.log(k))
    first = torch.randint(n, (1,), generator=generator, device=x.device)
    centers = [x[first[0]]]
    closest = squared_distances_to(x, x[first])[0]
    for _ in range(1, k):
        total = closest.sum()
        probs = closest / total if total > 0 else torch.full_like(closest, 1.0 / n)
        candidates = torch.multinomial(probs, trials, replacement=True, generator=generator)
        candidate_closest = torch.minimum(closest, squared_distances_to(x, x[candidates]))
        best = candidate_closest.sum(dim=1).argmin()
        closest = candidate_closest[best]
        centers.append(x[candidates[best]])
    return torch.stack(centers)


def _inertia(x: Tensor, centroids: Tensor, codes: Tensor) -> Tensor:
    return (x - centroids[codes]).square().sum()


def kmeans(
    x: Tensor,
    k: int,
    iters: int = 50,
    *,
    init: str = "kmeans++",
    generator: torch.Generator | None = None,
    tol: float = 1e-4,
    spherical: bool = False,
    n_init: int = 1,
) -> KMeansResult:
    """Lloyd's k-means on the rows of ``x`` ``(N, d)``.

    init: ``"kmeans++"`` or ``"random"`` (``k`` rows drawn uniformly, with replacement when N < k).
    tol: stop when the centroids move less than ``tol`` times the mean per-feature variance
        (scikit-learn's criterion). spherical: unit-norm centroids (for cosine codebooks).
    n_init: runs from different seeds (drawn from ``generator`` in turn); the lowest final inertia wins.
    """
    runs = [_lloyd(x.detach().float(), k, iters, init, generator, tol, spherical) for _ in range(n_init)]
    return min(runs, key=lambda run: run.inertia[-1])


def _lloyd(x: Tensor, k: int, iters: int, init: str, generator: torch.Generator | None, tol: float, spherical: bool) -> KMeansResult:
    n = x.shape[0]
    if init == "kmeans++" and n >= k:
        centroids = kmeans_plusplus(x, k, generator)
    elif init in ("random", "kmeans++"):
        rows = torch.randperm(n, generator=generator, device=x.device)[:k] if n >= k else torch.randint(n, (k,), generator=generator, device=x.device)
        centroids = x[rows].clone()
    else:
        raise ValueError(f"unknown k-means init {init!r}")
    if spherical:
        centroids = F.normalize(centroids, dim=1)
    threshold = tol * x.var(dim=0).mean() if n > 1 else torch.zeros((), device=x.device)

    history: list[float] = []
    for _ in range(iters):
        codes = nearest_codes(x, centroids)
        history.append(float(_inertia(x, centroids, codes)))
        counts = torch.bincount(codes, minlength=k)
        sums = torch.zeros_like(centroids).index_add_(0, codes, x)
        updated = sums / counts.clamp_min(1).unsqueeze(1).to(x.dtype)
        empty = (counts == 0).nonzero().squeeze(1)
        if empty.numel() and n >= k:
            # Relocate empty clusters onto the points worst served by their centroids.
            far = (x - centroids[codes]).square().sum(1).topk(empty.numel()).indices
            updated[empty] = x[far]
        elif empty.numel():
            updated[empty] = centroids[empty]
        if spherical:
            updated = F.normalize(updated, dim=1)
        shift = (updated - centroids).square().sum()
        centroids = updated
        if shift <= threshold:
            break
    codes = nearest_codes(x, centroids)
    history.append(float(_inertia(x, centroids, codes)))
    return KMeansResult(centroids, codes, history)


@register_quantizer("kmeans")
class HierarchicalKMeansQuantizer(Quantizer):
    """Hierarchical k-means tokens (VideoBERT). Not trained by gradient: call ``fit(features)`` first.

    Args:
        dim: feature channels of ``z`` ``(..., dim)``.
        branching: clusters per level k (default 12; ``codebook_size`` is accepted as an alias so
            ``create_quantizer("kmeans", dim=..., codebook_size=...)`` works like the other quantizers).
        depth: levels d (``num_codebooks``); ``branching ** depth`` leaves.
        iters: Lloyd iterations per clustering.
        seed: seed of the ``torch.Generator`` used by ``fit``.

    Buffers ``centroids_{l}`` ``(branching ** (l + 1), dim)`` hold the centroids of level ``l``; the
    children of node ``i`` of level ``l`` are rows ``i * branching ... i * branching + branching - 1``
    of level ``l + 1``. Codes are the path ``(..., depth)`` found greedily from the root (as VideoBERT
    assigns tokens), and ``codes_to_embeddings`` returns the leaf centroid. ``forward`` returns the
    leaf centroid (no gradient path; loss zero).
    """

    def __init__(self, dim: int, branching: int | None = None, depth: int = 4, iters: int = 50, seed: int = 0, codebook_size: int | None = None):
        super().__init__()
        require_positive(dim=dim, branching=branching, codebook_size=codebook_size, depth=depth, iters=iters)
        if branching is not None and codebook_size is not None and codebook_size != branching:
            raise ValueError("for hierarchical k-means codebook_size is the branching factor; they differ")
        branching = branching or codebook_size or 12  # VideoBERT: 12 clusters per level
        self.dim = dim
        self.codebook_size = branching
        self.num_codebooks = depth
        self.branching = branching
        self.depth = depth
        self.iters = iters
        self.seed = seed
        for level in range(depth):
            self.register_buffer(f"centroids_{level}", torch.zeros(branching ** (level + 1), dim))
        self.register_buffer("fitted", torch.tensor(False))

    def level_centroids(self, level: int) -> Tensor:
        """Centroids of ``level`` ``(branching ** (level + 1), dim)``."""
        return getattr(self, f"centroids_{level}")

    @property
    def leaf_centroids(self) -> Tensor:
        return self.level_centroids(self.depth - 1)

    @torch.no_grad()
    def fit(self, features: Tensor) -> "HierarchicalKMeansQuantizer":
        """Cluster ``features`` ``(N, dim)`` (any leading shape) level by level. A node with fewer
        members than ``branching`` gets its members (repeated) as children, or copies of its own
        centroid when it has none."""
        x = features.detach().reshape(-1, self.dim).float().cpu()
        generator = torch.Generator().manual_seed(self.seed)
        k = self.branching
        assignment = torch.zeros(x.shape[0], dtype=torch.long)  # node index at the previous level
        parents = x.mean(0, keepdim=True)
        for level in range(self.depth):
            children = torch.empty(parents.shape[0] * k, self.dim)
            next_assignment = torch.empty_like(assignment)
            order = torch.argsort(assignment)
            counts = torch.bincount(assignment, minlength=parents.shape[0]).tolist()
            start = 0
            for node, count in enumerate(counts):
                members = order[start : start + count]
                start += count
                block = slice(node * k, node * k + k)
                if count >= k:
                    result = kmeans(x[members], k, self.iters, generator=generator)
                    children[block] = result.centroids
                    next_assignment[members] = node * k + result.codes
                elif count > 0:
                    children[block] = x[members][torch.arange(k) % count]
                    next_assignment[members] = node * k + torch.arange(count)
                else:
                    children[block] = parents[node]
            self.level_centroids(level).copy_(children)
            parents, assignment = children, next_assignment
        self.fitted.fill_(True)
        return self

    def _check_fitted(self) -> None:
        if not bool(self.fitted):
            raise RuntimeError("HierarchicalKMeansQuantizer is not fitted: call .fit(features) first")

    @torch.no_grad()
    def encode(self, z: Tensor) -> Tensor:
        """Greedy root-to-leaf path: ``z`` ``(..., dim)`` -> codes ``(..., depth)``."""
        self._check_fitted()
        flat = z.detach().reshape(-1, self.dim).float()
        k = self.branching
        node = torch.zeros(flat.shape[0], dtype=torch.long, device=flat.device)
        path = []
        rows = max(1, (1 << 22) // (k * self.dim))
        for level in range(self.depth):
            groups = self.level_centroids(level).float().view(-1, k, self.dim)
            choice = torch.empty_like(node)
            for s in range(0, flat.shape[0], rows):
                candidates = groups[node[s : s + rows]]  # (n, k, dim), n small
                distances = (candidates - flat[s : s + rows, None]).square().sum(-1)
                choice[s : s + rows] = distances.argmin(1)
            path.append(choice)
            node = node * k + choice
        return torch.stack(path, dim=-1).view(*z.shape[:-1], self.depth)

    def leaf_index(self, codes: Tensor) -> Tensor:
        """Flat leaf index ``(...)`` in ``[0, branching ** depth)`` of paths ``(..., depth)``."""
        index = torch.zeros_like(codes[..., 0])
        for level in range(codes.shape[-1]):
            index = index * self.branching + codes[..., level]
        return index

    def codes_to_embeddings(self, codes: Tensor) -> Tensor:
        self._check_fitted()
        return F.embedding(self.leaf_index(codes), self.leaf_centroids)

    def forward(self, z: Tensor) -> QuantizerOutput:
        codes = self.encode(z)
        quantized = self.codes_to_embeddings(codes).to(z.dtype)
        leaves = self.leaf_index(codes)
        metrics = {
            "perplexity": batch_perplexity(leaves, self.branching**self.depth),
            "distortion": (quantized - z.detach()).square().mean(),
        }
        return QuantizerOutput(quantized, codes, torch.zeros((), device=z.device), metrics)
