"""Quantizer speed: ours against vector-quantize-pytorch (vqp) at the same settings, in one process.

Each row runs one training step (forward + backward of ``sum(quantized * g) + loss`` with a fixed
random ``g``) on B=8 x 16x16 tokens (N=2048) in float32, for our quantizer and for the vqp peer
configured like for like, on the same input. Reported per row:

* ``ours_ms`` / ``peer_ms``: median step time (and ``*_min_ms``) of each side, timed alike by
  `measure.interleaved`: two warm-up steps each (the first, cold, is ``first_ms`` / ``peer_first_ms``),
  then the same number of timed steps each (``repeats``), the sides taking turns and alternating
  which goes first, so that a shared, noisy CPU affects both alike. As many rounds as the time budget
  holds at the pace of a warm round of both sides, at least 5 (at most 200, 50 with ``--quick``).
  ``ratio = peer_ms / ours_ms`` (> 1: ours is faster).
* ``codes_match``: our codes equal the peer's for the same input (VQ: after copying our codebook
  into the peer; evaluation mode, so no EMA step moves either codebook first).
* ``peak_mem_mb``: our step's peak resident-memory increase: the kernel's peak-RSS mark is reset
  (``/proc/self/clear_refs``), then ``VmHWM - VmRSS(before)`` after one warm step. Measured after
  all timings, with glibc's mmap threshold then pinned at 64 KiB (``mallopt``) so that freed tensors
  go back to the OS instead of staying in the heap (and ``malloc_trim`` first); the figure counts every tensor alive at the peak (saved activations,
  gradients), not only ``N x K`` blocks. Linux only (``nan`` elsewhere).
* ``gflop``: analytic floating-point work of our step (multiply-adds count 2); ``pct_peak``: that
  work per ``ours_ms`` as a percentage of the float32 matmul rate measured in the same run (a
  2048^3 ``mm``, the better of a measurement before and one after the rows).
* ``ours_sys_pct``: system share of our step's CPU time (page faults show up there).

Like-for-like settings: VQ rows use EMA codebooks on both sides (decay 0.8, commitment 0.25,
rotation trick off, no k-means init, vqp's defaults otherwise); LFQ rows use entropy weight 0.1,
diversity gamma 1, commitment 0.25, inverse temperature 100 on both sides; vqp computes its codebook
entropy over the full ``2^k`` codebook, our "exact" rows do too (in another way), our "grouped" row
sums two 9-bit group entropies (an upper bound). vqp's LFQ at 2^18 needs ~14 GB and ~40 s a step
(each of its rows then takes ~5 minutes: 7 steps per side); it runs only without ``--quick`` and
when the machine reports >= 20 GB available memory (``/proc/meminfo``), else the row says that the
peer was skipped.

Add a quantizer with one ``Case(...)`` line in ``cases()``.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .measure import (
    available_gb,
    interleaved,
    matmul_gflops,
    peak_memory_mb,
    pin_malloc,
)

BATCH, HEIGHT, WIDTH = 8, 16, 16
TOKENS = BATCH * HEIGHT * WIDTH


# ----------------------------------------------------------------------------- adapters


def ours_step(module: nn.Module, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Our protocol: ``z (B, H, W, d)`` -> QuantizerOutput."""
    out = module(z)
    return out.quantized, out.codes, out.loss


def _peer_input(z: Tensor) -> Tensor:
    # vqp treats 4-d inputs as channel-first images: hand it the same memory as (B, H*W, d)
    return z.reshape(z.shape[0], -1, z.shape[-1])


def vqp_vq_step(module, z):
    quantized, codes, loss = module(_peer_input(z))
    return quantized, codes, loss


def vqp_lfq_step(module, z):
    quantized, codes, loss = module(_peer_input(z))
    return quantized, codes, loss


def vqp_rvq_step(module, z):
    quantized, codes, losses = module(_peer_input(z))
    return quantized, codes, losses.sum()


def vqp_fsq_step(module, z):
    quantized, codes = module(_peer_input(z))
    return quantized, codes, quantized.new_zeros(())


def share_vq_codebook(ours: nn.Module, peer: nn.Module) -> None:
    """Copy our codebook (as used, i.e. normalised for cosine codes) into vqp's ``VectorQuantize``."""
    with torch.no_grad():
        peer._codebook.embed.copy_(ours.embeddings().detach().unsqueeze(0))


def share_rvq_codebooks(ours: nn.Module, peer: nn.Module) -> None:
    """Copy each level's codebook into the matching layer of vqp's ``ResidualVQ``."""
    for index, layer in enumerate(peer.layers):
        share_vq_codebook(ours.level(index), layer)


# ----------------------------------------------------------------------------- cases


@dataclass
class Case:
    """One benchmark row: our quantizer and its peer at the same settings.

    ours / peer: factories of the modules; ours_step / peer_step: ``(module, z) -> (quantized,
    codes, loss)``; share: makes the peer use our codebook before comparing codes; flops:
    analytic work of our step for N tokens; peer_needs_gb: skip the peer below this much free
    memory; peer_in_quick: whether ``--quick`` runs the peer.
    """

    name: str
    dim: int
    ours: Callable[[], nn.Module]
    peer: Callable[[], nn.Module] | None = None
    ours_step: Callable = ours_step
    peer_step: Callable | None = None
    share: Callable[[nn.Module, nn.Module], None] | None = None
    flops: Callable[[int], float] = lambda n: float("nan")
    peer_in_quick: bool = True
    peer_needs_gb: float = 0.0
    note: str = ""
    extra: dict = field(default_factory=dict)


def _vq_flops(d: int, k: int) -> Callable[[int], float]:
    # distances: one (N x d) x (d x K) product; the rest (argmin, gather, EMA) is O(N (K + d))
    return lambda n: 2.0 * n * k * d


def _lfq_flops(bits: int, groups: tuple[int, ...]) -> Callable[[int], float]:
    def flops(n: int) -> float:
        total = 0.0
        for g in groups:
            h1, h2 = (g + 1) // 2, g // 2
            # sub-codebook logits (fwd + bwd) and the P1^T P2 product (fwd + 2 in bwd)
            total += 2 * (2.0 * n * h1 * 2**h1 + 2.0 * n * h2 * 2**h2) + 3 * 2.0 * n * 2**h1 * 2**h2
        return total

    return flops


def cases() -> list[Case]:
    from vector_quantize_pytorch import FSQ, LFQ, ResidualVQ, VectorQuantize

    from implementations.quantizers.fsq import FiniteScalarQuantizer
    from implementations.quantizers.lfq import LookupFreeQuantizer
    from implementations.quantizers.residual import ResidualQuantizer
    from implementations.quantizers.vector import VectorQuantizer

    def vq(d, k, cosine=False):
        return Case(
            f"VQ{' cosine' if cosine else ''} d{d} K{k} (EMA)",
            d,
            ours=lambda: VectorQuantizer(d, k, beta=0.25, l2_normalize=cosine, ema_decay=0.8),
            peer=lambda: VectorQuantize(
                dim=d, codebook_size=k, decay=0.8, commitment_weight=0.25, rotation_trick=False,
                kmeans_init=False, use_cosine_sim=cosine,
            ),
            peer_step=vqp_vq_step,
            share=share_vq_codebook,
            flops=_vq_flops(d, k),
        )

    def lfq(bits, group_bits, label, peer_in_quick=True, peer_needs_gb=0.0):
        ours = lambda: LookupFreeQuantizer(
            bits, 2**bits, entropy_weight=0.1, diversity_gamma=1.0, commitment_weight=0.25,
            inv_temperature=100.0, entropy_group_bits=group_bits,
        )
        return Case(
            f"LFQ 2^{bits} entropy, {label}",
            bits,
            ours=ours,
            peer=lambda: LFQ(
                dim=bits, codebook_size=2**bits, entropy_loss_weight=0.1, diversity_gamma=1.0,
                commitment_loss_weight=0.25,
            ),
            peer_step=vqp_lfq_step,
            flops=_lfq_flops(bits, ours().entropy_groups),
            peer_in_quick=peer_in_quick,
            peer_needs_gb=peer_needs_gb,
        )

    levels = [8, 8, 8, 5, 5, 5]
    return [
        vq(256, 1024),
        vq(8, 16384),
        vq(8, 16384, cosine=True),
        lfq(14, 14, "exact codebook H"),
        lfq(18, 18, "exact codebook H", peer_in_quick=False, peer_needs_gb=20.0),
        lfq(18, 9, "grouped 9+9 codebook H", peer_in_quick=False, peer_needs_gb=20.0),
        Case(
            "FSQ [8,8,8,5,5,5]",
            6,
            ours=lambda: FiniteScalarQuantizer(6, levels),
            peer=lambda: FSQ(levels=levels),
            peer_step=vqp_fsq_step,
            flops=lambda n: 12.0 * n * len(levels),  # elementwise; % of matmul peak is not meaningful
        ),
        Case(
            "RVQ 8 levels d256 K1024 (EMA)",
            256,
            ours=lambda: ResidualQuantizer(256, 8, codebook_size=1024, beta=0.25, ema_decay=0.8),
            peer=lambda: ResidualVQ(
                dim=256, num_quantizers=8, codebook_size=1024, decay=0.8, commitment_weight=0.25,
                rotation_trick=False, kmeans_init=False,
            ),
            peer_step=vqp_rvq_step,
            share=share_rvq_codebooks,
            flops=lambda n: 8 * _vq_flops(256, 1024)(n),
        ),
    ]


# ----------------------------------------------------------------------------- measurement


def make_step(module: nn.Module, step_fn: Callable, z: Tensor, g: Tensor) -> Callable[[], None]:
    def step() -> None:
        z.grad = None
        for p in module.parameters():
            p.grad = None
        quantized, _codes, loss = step_fn(module, z)
        ((quantized.reshape(g.shape) * g).sum() + loss).backward()

    return step


def cpu_seconds() -> tuple[float, float]:
    """(user, system) CPU seconds of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def run_case(case: Case, quick: bool, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    z = torch.randn(BATCH, HEIGHT, WIDTH, case.dim, requires_grad=True)
    g = torch.randn(BATCH, HEIGHT, WIDTH, case.dim)
    ours = case.ours().train()
    steps = {"ours": make_step(ours, case.ours_step, z, g)}

    peer, skipped = None, ""
    if case.peer is not None:
        if quick and not case.peer_in_quick:
            skipped = "peer skipped in --quick"
        elif case.peer_needs_gb and available_gb() < case.peer_needs_gb:
            skipped = f"peer skipped: needs ~{case.peer_needs_gb:.0f} GB, {available_gb():.1f} GB available"
        else:
            peer = case.peer().train()
            steps["peer"] = make_step(peer, case.peer_step, z, g)

    # two warm-up steps each (first calls allocate, initialise, pick kernels), then timed rounds
    timings = interleaved(steps, warmup=2, budget_s=1.5 if quick else 4.0, most=50 if quick else 200)

    # the system share of our CPU time, from our steps alone (page faults show up there)
    user_before, system_before = cpu_seconds()
    for _ in range(min(timings.repeats, 20)):
        steps["ours"]()
    user, system = cpu_seconds()
    user, system = user - user_before, system - system_before

    codes_match = None
    if peer is not None:
        ours.eval()
        peer.eval()
        if case.share is not None:
            case.share(ours, peer)
        with torch.no_grad():
            _, ours_codes, _ = case.ours_step(ours, z.detach())
            _, peer_codes, _ = case.peer_step(peer, z.detach())
        codes_match = bool(torch.equal(ours_codes.reshape(-1), peer_codes.reshape(-1).long()))

    ours_ms = timings.median("ours")
    peer_ms = timings.median("peer") if peer is not None else None
    return {
        "name": case.name,
        "ours_ms": round(ours_ms, 3),
        "ours_min_ms": round(timings.min("ours"), 3),
        "peer_ms": None if peer_ms is None else round(peer_ms, 3),
        "peer_min_ms": None if peer_ms is None else round(timings.min("peer"), 3),
        "ratio": None if peer_ms is None else round(peer_ms / ours_ms, 2),
        "codes_match": codes_match,
        "peak_mem_mb": None,  # filled in by measure_memory after all timings
        "gflop": round(case.flops(TOKENS) / 1e9, 4),
        "pct_peak": None,  # filled in by main from the best matmul rate of the run
        "ours_sys_pct": round(100 * system / (user + system), 1) if user + system > 0 else None,
        "warmup": {side: len(times) for side, times in timings.warmup_ms.items()},
        "repeats": {side: len(times) for side, times in timings.ms.items()},
        "first_ms": round(timings.warmup_ms["ours"][0], 2),
        "peer_first_ms": None if peer is None else round(timings.warmup_ms["peer"][0], 2),
        "note": "; ".join(s for s in (case.note, skipped) if s),
    }


def measure_memory(case: Case, seed: int = 0) -> float:
    """Peak resident-memory increase (MiB) of one warm step of our quantizer."""
    torch.manual_seed(seed)
    z = torch.randn(BATCH, HEIGHT, WIDTH, case.dim, requires_grad=True)
    g = torch.randn(BATCH, HEIGHT, WIDTH, case.dim)
    step = make_step(case.ours().train(), case.ours_step, z, g)
    step()
    step()
    return peak_memory_mb(step)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="shorter budgets; skip the heaviest peers")
    parser.add_argument("--json", action="store_true", help="print a JSON list of row objects")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--only", default="", help="run only rows whose name contains this text")


def main(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    peak = matmul_gflops()
    selected = [c for c in cases() if not args.only or args.only.lower() in c.name.lower()]
    rows = [run_case(case, args.quick) for case in selected]
    # a shared CPU slows some phases of the run: take the better of two matmul measurements
    peak = max(peak, matmul_gflops())
    for case, row in zip(selected, rows):
        flops = case.flops(TOKENS)
        if flops == flops:
            row["pct_peak"] = round(100 * flops / (row["ours_ms"] / 1e3) / (peak * 1e9), 1)
    # memory last: pinning glibc's mmap threshold makes every large allocation fault its pages in,
    # which would slow the timed steps (of both sides) if done before them
    pin_malloc()
    for case, row in zip(selected, rows):
        row["peak_mem_mb"] = round(measure_memory(case), 1)
    meta = {
        "threads": args.threads,
        "tokens": TOKENS,
        "dtype": "float32",
        "matmul_gflops": round(peak, 1),
        "torch": torch.__version__,
        "seconds": round(time.perf_counter() - start, 1),
    }
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        from tabulate import tabulate

        columns = ["name", "ours_ms", "ours_min_ms", "peer_ms", "ratio", "codes_match", "peak_mem_mb", "gflop", "pct_peak", "ours_sys_pct", "note"]
        table = [[row[c] for c in columns] + [row["repeats"]["ours"]] for row in rows]
        print(tabulate(table, headers=columns + ["repeats per side"], floatfmt="g"))
        print(
            f"B={BATCH}, {HEIGHT}x{WIDTH} tokens (N={TOKENS}), float32, fwd+bwd, {meta['threads']} threads; "
            f"matmul peak {meta['matmul_gflops']} GFLOP/s (2048^3 mm, same run); torch {meta['torch']}; "
            f"{meta['seconds']} s. ratio = peer_ms / ours_ms; peer = vector-quantize-pytorch; each side: 2 warm-up "
            "steps, then the same number of timed steps, interleaved."
        )
    return 0
