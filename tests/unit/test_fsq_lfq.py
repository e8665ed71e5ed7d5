"""FSQ and LFQ: codes against vector-quantize-pytorch (vqp), inverses, gradients, and the LFQ
entropies against a brute-force softmax over the explicit codebook."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import pytest
import torch

from implementations import create_quantizer
from implementations.quantizers.fsq import FiniteScalarQuantizer
from implementations.quantizers.lfq import LookupFreeQuantizer, _GroupCodebookEntropy, bit_signs

vqp = pytest.importorskip("vector_quantize_pytorch")


# ----------------------------------------------------------------------------- FSQ


@pytest.mark.parametrize("levels", [[8, 8, 8, 5, 5, 5], [8, 5, 5, 5], [7, 5, 5, 5, 5], [3, 4, 6]])
def test_fsq_codes_and_values_equal_vqp(levels):
    torch.manual_seed(0)
    d = len(levels)
    ours = FiniteScalarQuantizer(d, levels)
    peer = vqp.FSQ(levels=levels)
    z = torch.randn(4, 300, d) * 2
    out = ours(z)
    peer_quantized, peer_codes = peer(z)
    assert ours.codebook_size == math.prod(levels) == peer.codebook_size
    assert out.codes.shape == (4, 300, 1) and out.codes.dtype == torch.long
    assert torch.equal(out.codes[..., 0], peer_codes.long())
    torch.testing.assert_close(out.quantized, peer_quantized, rtol=0, atol=1e-6)
    # every code of the grid is reached by its pre-image through the bound: index <-> grid point
    every = torch.arange(ours.codebook_size).unsqueeze(-1)
    grid = ours.codes_to_embeddings(every).double()  # (K, d) in [-1, 1]
    lv = torch.tensor(levels, dtype=torch.float64)
    half_l = (lv - 1) * (1 + 1e-3) / 2
    offset = (lv % 2 == 0).double() * 0.5
    preimage = torch.atanh((grid * (lv // 2) + offset) / half_l) - torch.atanh(offset / half_l)
    assert torch.equal(ours(preimage.float()).codes, every)
    assert torch.equal(peer(preimage.float().unsqueeze(0))[1][0].long(), every[:, 0])


def test_fsq_codes_to_embeddings_with_projection():
    torch.manual_seed(0)
    q = create_quantizer("fsq", dim=32, levels=[8, 5, 5, 5]).eval()
    assert isinstance(q, FiniteScalarQuantizer) and q.codebook_size == 1000 and q.num_codebooks == 1
    z = torch.randn(2, 5, 7, 32)
    out = q(z)
    assert out.quantized.shape == z.shape and out.codes.shape == (2, 5, 7, 1)
    torch.testing.assert_close(q.codes_to_embeddings(out.codes), out.quantized, rtol=0, atol=1e-6)
    assert out.loss.item() == 0


def test_fsq_gradient_is_the_bound_derivative_and_equals_vqp():
    torch.manual_seed(0)
    levels = [8, 8, 8, 5, 5, 5]
    ours = FiniteScalarQuantizer(6, levels)
    peer = vqp.FSQ(levels=levels)
    z = (torch.randn(2, 64, 6) * 1.5).requires_grad_()
    weights = torch.randn(2, 64, 6)
    (ours(z).quantized * weights).sum().backward()
    grad = z.grad.clone()
    z.grad = None
    (peer(z)[0] * weights).sum().backward()
    torch.testing.assert_close(grad, z.grad, rtol=1e-5, atol=1e-6)
    # closed form: d/dz [tanh(z + shift) half_l] / (L // 2)
    lv = torch.tensor(levels, dtype=torch.float64)
    half_l = (lv - 1) * (1 + 1e-3) / 2
    offset = (lv % 2 == 0).double() * 0.5
    shift = torch.atanh(offset / half_l)
    expected = weights.double() * (1 - torch.tanh(z.detach().double() + shift) ** 2) * half_l / (lv // 2)
    torch.testing.assert_close(grad.double(), expected, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- LFQ: codes


@pytest.mark.parametrize("bits,num_codebooks", [(10, 1), (6, 3), (18, 1)])
def test_lfq_codes_equal_vqp(bits, num_codebooks):
    torch.manual_seed(0)
    dim = bits * num_codebooks
    ours = LookupFreeQuantizer(dim, 2**bits, num_codebooks=num_codebooks, entropy_weight=0.0)
    peer = vqp.LFQ(dim=dim, codebook_size=2**bits, num_codebooks=num_codebooks, entropy_loss_weight=0.0).eval()
    z = torch.randn(3, 50, dim)
    z[0, 0, 0] = 0.0  # the sign of 0 is -1 on both sides
    out = ours.eval()(z)
    peer_quantized, peer_codes, _ = peer(z)
    peer_codes = peer_codes if num_codebooks > 1 else peer_codes.unsqueeze(-1)
    assert out.codes.shape == (3, 50, num_codebooks)
    assert torch.equal(out.codes, peer_codes.long())
    torch.testing.assert_close(out.quantized, peer_quantized, rtol=0, atol=0)


def test_lfq_codes_to_embeddings_and_projection():
    torch.manual_seed(0)
    q = create_quantizer("lfq", dim=24, codebook_size=2**5, num_codebooks=2, codebook_scale=0.5).eval()
    assert isinstance(q, LookupFreeQuantizer) and q.codebook_dim == 10
    z = torch.randn(2, 4, 4, 24)
    out = q(z)
    assert out.codes.shape == (2, 4, 4, 2) and int(out.codes.max()) < 32
    torch.testing.assert_close(q.codes_to_embeddings(out.codes), out.quantized, rtol=0, atol=1e-6)
    plain = LookupFreeQuantizer(12, 2**12).eval()
    x = torch.randn(100, 12)
    o = plain(x)
    assert torch.equal(plain.codes_to_embeddings(o.codes), o.quantized)
    assert torch.equal(o.quantized, torch.where(x > 0, 1.0, -1.0))


def test_lfq_lsb_first_codes_are_the_bit_reversed_msb_codes():
    """Open-MAGVIT2's order since its v2 code: code = sum_d [x_d > 0] 2^d (first channel least significant)."""
    torch.manual_seed(0)
    x = torch.randn(64, 3 * 6)
    msb = LookupFreeQuantizer(18, 2**6, num_codebooks=3).eval()
    lsb = LookupFreeQuantizer(18, 2**6, num_codebooks=3, bit_order="lsb_first").eval()
    out = lsb(x)
    expected = ((x.view(64, 3, 6) > 0).long() * 2 ** torch.arange(6)).sum(-1)
    assert torch.equal(out.codes, expected) and not torch.equal(out.codes, msb(x).codes)
    assert torch.equal(out.quantized, msb(x).quantized) and torch.equal(lsb.codes_to_embeddings(out.codes), out.quantized)
    with pytest.raises(ValueError, match="bit_order"):
        LookupFreeQuantizer(6, 2**6, bit_order="big")


def test_lfq_straight_through_gradient_is_identity():
    q = LookupFreeQuantizer(8, 2**8, entropy_weight=0.0, commitment_weight=0.0).train()
    z = torch.randn(5, 8, requires_grad=True)
    weights = torch.randn(5, 8)
    (q(z).quantized * weights).sum().backward()
    assert torch.equal(z.grad, weights)


def test_lfq_loss_matches_vqp_where_its_clamp_is_inactive():
    # at a low inverse temperature all probabilities exceed vqp's 1e-5 clamp, so the losses agree
    torch.manual_seed(0)
    ours = LookupFreeQuantizer(
        8, 2**8, entropy_weight=0.1, commitment_weight=0.25, diversity_gamma=0.7, inv_temperature=0.2,
        entropy_group_bits=8,
    ).train()
    peer = vqp.LFQ(dim=8, codebook_size=2**8, entropy_loss_weight=0.1, commitment_loss_weight=0.25, diversity_gamma=0.7)
    z = torch.randn(2, 64, 8) * 0.5
    out = ours(z)
    (_, _, peer_loss), parts = peer(z, inv_temperature=0.2, return_loss_breakdown=True)
    torch.testing.assert_close(out.metrics["per_sample_entropy"], parts.per_sample_entropy, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.metrics["codebook_entropy"], parts.batch_entropy, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.loss, peer_loss, rtol=1e-5, atol=1e-6)


def test_lfq_entropy_skipped_when_weight_zero_or_eval():
    q = LookupFreeQuantizer(8, 2**8, entropy_weight=0.0).train()
    assert "per_sample_entropy" not in q(torch.randn(4, 8)).metrics
    q = LookupFreeQuantizer(8, 2**8).eval()
    assert "per_sample_entropy" not in q(torch.randn(4, 8)).metrics


# ----------------------------------------------------------------------------- LFQ: entropies


def _brute_force(x: torch.Tensor, scale: float, inv_temperature: float, groups: tuple[int, ...]):
    """Per-sample entropy and summed group codebook entropies from the explicit codebook.

    x: (N, k) float64. The full N x 2^k softmax of -||x - c||^2 * inv_temperature; group marginals
    are sums of the full distribution (not sub-codebook softmaxes)."""
    k = x.shape[-1]
    codebook = bit_signs(k, torch.float64) * scale  # (2^k, k), code j has the bits of j (MSB first)
    logits = -((x.unsqueeze(1) - codebook) ** 2).sum(-1) * inv_temperature
    probs = logits.softmax(-1)  # (N, 2^k)
    log_probs = logits.log_softmax(-1)
    per_sample = -(probs * log_probs).sum(-1).mean()
    mean_probs = probs.mean(0).view([2] * k)  # one axis per bit, MSB first
    codebook_entropy = x.new_zeros(())
    start = 0
    for size in groups:
        other = [d for d in range(k) if not start <= d < start + size]
        marginal = mean_probs.sum(other).reshape(-1) if other else mean_probs.reshape(-1)
        codebook_entropy = codebook_entropy - (marginal * marginal.log()).sum()
        start += size
    return per_sample, codebook_entropy


@pytest.mark.parametrize(
    "group_bits,groups,inv_temperature,scale",
    [(10, (10,), 1.0, 1.0), (5, (5, 5), 1.0, 1.0), (4, (4, 3, 3), 3.0, 0.5), (9, (5, 5), 100.0, 1.0), (1, (1,) * 10, 2.0, 1.0)],
)
def test_lfq_entropies_equal_brute_force_values_and_gradients(group_bits, groups, inv_temperature, scale):
    torch.manual_seed(1)
    k = 10
    q = LookupFreeQuantizer(k, 2**k, entropy_group_bits=group_bits, inv_temperature=inv_temperature, codebook_scale=scale)
    assert q.entropy_groups == groups
    assert q.codebook_entropy_is_exact == (len(groups) == 1)
    x = torch.randn(96, k, dtype=torch.float64) * (0.02 if inv_temperature == 100.0 else 0.7)
    x.requires_grad_()
    weights = torch.tensor([0.3, -1.7], dtype=torch.float64)

    per_sample, codebook = q.entropies(x.view(-1, 1, k))
    ours = torch.stack([per_sample, codebook])
    (grad_ours,) = torch.autograd.grad((ours * weights).sum(), x)

    ref = torch.stack(_brute_force(x, scale, inv_temperature, groups))
    (grad_ref,) = torch.autograd.grad((ref * weights).sum(), x)

    assert ours.dtype == torch.float64
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(grad_ours, grad_ref, rtol=1e-8, atol=1e-10)
    if len(groups) > 1:  # subadditivity: the grouped value bounds the full codebook entropy
        assert codebook.item() >= _brute_force(x, scale, inv_temperature, (k,))[1].item() - 1e-12


def test_lfq_entropies_several_codebooks_are_averaged():
    torch.manual_seed(2)
    q = LookupFreeQuantizer(12, 2**6, num_codebooks=2, entropy_group_bits=3, inv_temperature=1.5)
    x = torch.randn(40, 2, 6, dtype=torch.float64)
    per_sample, codebook = q.entropies(x)
    refs = [_brute_force(x[:, c], 1.0, 1.5, (3, 3)) for c in range(2)]
    torch.testing.assert_close(per_sample, (refs[0][0] + refs[1][0]) / 2, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(codebook, (refs[0][1] + refs[1][1]) / 2, rtol=1e-10, atol=1e-10)


def test_group_codebook_entropy_gradcheck():
    torch.manual_seed(3)
    logits = torch.randn(2, 7, 5, dtype=torch.float64, requires_grad=True)
    signs = [bit_signs(h, torch.float64).t() / 2 for h in (3, 2)]
    assert torch.autograd.gradcheck(lambda a: _GroupCodebookEntropy.apply(a, *signs), (logits,))


def test_lfq_2_18_entropy_loss_small_memory_and_fast():
    """2^18 codes on 8 x 16 x 16 tokens: forward + backward of the full loss (exact per-sample,
    exact full-codebook and grouped codebook entropies) without an N x 2^18 tensor (2 GiB in float32).
    Run in a fresh process so that its peak resident memory is this step's."""
    script = textwrap.dedent(
        """
        import resource, time, torch
        from implementations.quantizers.lfq import LookupFreeQuantizer
        torch.set_num_threads(2)
        z = torch.randn(8, 16, 16, 18, requires_grad=True)
        for group_bits in (9, 18):
            q = LookupFreeQuantizer(18, 2**18, entropy_group_bits=group_bits).train()
            q(z).loss.backward()  # warm-up
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        for group_bits in (9, 18):
            q = LookupFreeQuantizer(18, 2**18, entropy_group_bits=group_bits).train()
            out = q(z)
            out.loss.backward()
            assert torch.isfinite(z.grad).all()
            assert 0 < out.metrics["codebook_entropy"] <= 18 * 0.6932
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024, time.perf_counter() - start)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    extra_mib, seconds = map(float, result.stdout.split())
    assert extra_mib < 300, extra_mib
    assert seconds < 20, seconds
