"""VectorQuantizer against independent references: brute-force distances, vector-quantize-pytorch
(test-only), hand-computed EMA / loss / rotation-trick formulas."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from implementations import create_quantizer
from implementations.quantizers.vector import VectorQuantizer, rotate_to

vqp = pytest.importorskip("vector_quantize_pytorch")


def blobs(n: int, dim: int, centers: int, seed: int = 0, spread: float = 0.1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(centers, dim, generator=g) * 3
    labels = torch.randint(centers, (n,), generator=g)
    return means[labels] + spread * torch.randn(n, dim, generator=g)


def test_registered_and_codes_shape():
    q = create_quantizer("vq", dim=8, codebook_size=16)
    assert isinstance(q, VectorQuantizer)
    out = q(torch.randn(2, 3, 4, 8))
    assert out.codes.shape == (2, 3, 4, 1) and out.codes.dtype == torch.long
    assert out.quantized.shape == (2, 3, 4, 8)


def test_codes_equal_bruteforce_cdist():
    torch.manual_seed(0)
    q = VectorQuantizer(16, 300).eval()
    q.codebook.data.normal_()
    z = torch.randn(4, 257, 16)
    expected = torch.cdist(z.reshape(-1, 16), q.codebook).argmin(dim=1)
    assert torch.equal(q(z).codes.reshape(-1), expected)


def test_codes_equal_bruteforce_in_many_chunks(monkeypatch):
    from implementations.quantizers import distance

    monkeypatch.setattr(distance, "_DISTANCE_BLOCK", 64 * 7)  # 7 rows per block
    torch.manual_seed(1)
    q = VectorQuantizer(8, 64).eval()
    q.codebook.data.normal_()
    z = torch.randn(100, 8)
    assert torch.equal(q(z).codes[:, 0], torch.cdist(z, q.codebook).argmin(1))


@pytest.mark.parametrize("cosine", [False, True])
def test_codes_match_vector_quantize_pytorch(cosine):
    torch.manual_seed(2)
    dim, size = 12, 128
    ours = VectorQuantizer(dim, size, l2_normalize=cosine).eval()
    ours.codebook.data.normal_()
    theirs = vqp.VectorQuantize(
        dim=dim, codebook_size=size, use_cosine_sim=cosine, rotation_trick=False, kmeans_init=False,
        threshold_ema_dead_code=0, commitment_weight=1.0,
    ).eval()
    theirs._codebook.embed.data.copy_(ours.embeddings().detach()[None])
    z = torch.randn(4, 500, dim)
    out = ours(z)
    q_theirs, idx_theirs, _ = theirs(z)
    agreement = (out.codes[..., 0] == idx_theirs).float().mean().item()
    assert agreement == 1.0, f"code agreement with vqp {agreement:.4%}"
    torch.testing.assert_close(out.quantized, q_theirs, atol=1e-5, rtol=1e-5)


def test_l2_normalize_codes_are_argmax_cosine():
    torch.manual_seed(3)
    q = VectorQuantizer(6, 40, l2_normalize=True).eval()
    q.codebook.data.normal_().mul_(torch.rand(40, 1) * 5)  # varied norms: only the direction must count
    z = torch.randn(300, 6) * torch.rand(300, 1) * 10
    cosine = F.normalize(z, dim=1) @ F.normalize(q.codebook, dim=1).t()
    out = q(z)
    assert torch.equal(out.codes[:, 0], cosine.argmax(1))
    torch.testing.assert_close(out.quantized.norm(dim=1), torch.ones(300))


def test_straight_through_gradient_is_identity():
    torch.manual_seed(4)
    q = VectorQuantizer(5, 16)
    q.codebook.data.normal_()
    z = torch.randn(7, 5, requires_grad=True)
    jac = torch.autograd.functional.jacobian(lambda x: q(x).quantized, z)  # (7, 5, 7, 5)
    torch.testing.assert_close(jac.reshape(35, 35), torch.eye(35))


def test_codes_to_embeddings_reproduces_forward_eval():
    torch.manual_seed(5)
    for kwargs in ({}, {"l2_normalize": True}, {"codebook_dim": 4}, {"ema_decay": 0.9}, {"rotation_trick": True}):
        q = VectorQuantizer(10, 32, **kwargs).eval()
        q.codebook.data.normal_()
        z = torch.randn(3, 9, 10)
        out = q(z)
        torch.testing.assert_close(q.codes_to_embeddings(out.codes), out.quantized, atol=1e-6, rtol=0), kwargs


def test_ema_update_matches_hand_computation():
    decay, eps = 0.5, 1e-5
    q = VectorQuantizer(2, 2, ema_decay=decay, ema_epsilon=eps, beta=0.25).train()
    codebook0 = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    q.codebook.copy_(codebook0)
    q.ema_sum.copy_(codebook0)
    z = torch.tensor([[0.1, 0.0], [0.9, 1.0], [1.1, 1.0]])
    out = q(z)
    assert out.codes[:, 0].tolist() == [0, 1, 1]
    # N_k = g N_k + (1-g) n_k with N = 0, n = (1, 2)
    n_new = torch.tensor([0.5 * 0 + 0.5 * 1, 0.5 * 0 + 0.5 * 2])
    # m_k = g m_k + (1-g) sum_{i in k} z_i with m = codebook0
    m_new = torch.tensor([[0.5 * 0 + 0.5 * 0.1, 0.5 * 0 + 0.5 * 0.0], [0.5 * 1 + 0.5 * 2.0, 0.5 * 1 + 0.5 * 2.0]])
    total = n_new.sum()
    smoothed = (n_new + eps) / (total + 2 * eps) * total
    torch.testing.assert_close(q.ema_cluster_size, n_new)
    torch.testing.assert_close(q.ema_sum, m_new)
    torch.testing.assert_close(q.codebook, m_new / smoothed[:, None])
    # a second step folds in the previous averages
    q(z)
    n2 = 0.5 * n_new + 0.5 * torch.tensor([1.0, 2.0])
    torch.testing.assert_close(q.ema_cluster_size, n2)
    # EMA: loss is beta * commitment only, measured against the codes chosen before the update
    commitment = F.mse_loss(z, codebook0[[0, 1, 1]])
    torch.testing.assert_close(out.loss, 0.25 * commitment)


@pytest.mark.parametrize("legacy", [False, True])
def test_legacy_beta_moves_beta_between_terms(legacy):
    beta = 0.25
    q = VectorQuantizer(2, 2, beta=beta, legacy_beta=legacy).train()
    with torch.no_grad():
        q.codebook.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    z = torch.tensor([[0.2, -0.1], [0.7, 1.3]], requires_grad=True)
    out = q(z)
    e = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    mse = (z.detach() - e).square().mean()
    # both placements have the same value (the two terms are equal in value) ...
    torch.testing.assert_close(out.loss, (1 + beta) * mse)
    out.loss.backward()
    numel = z.numel()
    codebook_weight, commit_weight = (beta, 1.0) if legacy else (1.0, beta)
    # ... but d/dz comes only from the commitment term, d/de only from the codebook term
    torch.testing.assert_close(z.grad, commit_weight * 2 * (z.detach() - e) / numel)
    torch.testing.assert_close(q.codebook.grad, codebook_weight * 2 * (e - z.detach()) / numel)


def quantization_error(q: VectorQuantizer, z: torch.Tensor) -> float:
    q.eval()
    return (q(z).quantized - z).square().mean().item()


def test_kmeans_init_lowers_error_and_is_not_repeated():
    torch.manual_seed(6)
    z = blobs(2048, 8, centers=32, seed=6)
    random_init = VectorQuantizer(8, 32)
    rows = VectorQuantizer(8, 32)
    rows.codebook.data.copy_(z[torch.randperm(2048)[:32]])
    km = VectorQuantizer(8, 32, kmeans_init=True, kmeans_iters=10).train()
    assert not bool(km.initialized)
    km(z)  # first training batch initialises
    assert bool(km.initialized)
    err_km, err_rows, err_random = (quantization_error(m, z) for m in (km, rows, random_init))
    assert err_km < 0.5 * err_rows < err_random, (err_km, err_rows, err_random)

    # a reloaded checkpoint is not initialised again
    fresh = VectorQuantizer(8, 32, kmeans_init=True)
    fresh.load_state_dict(km.state_dict())
    before = fresh.codebook.detach().clone()
    fresh.train()(torch.randn(512, 8) * 10)
    torch.testing.assert_close(fresh.codebook.detach(), before)


def test_kmeans_init_ema_keeps_codebook_and_statistics_consistent():
    z = blobs(1024, 4, centers=16, seed=7)
    torch.manual_seed(7)
    plain = VectorQuantizer(4, 16, kmeans_init=True).train()
    plain(z)
    torch.manual_seed(7)  # same seeds -> same k-means centroids
    q = VectorQuantizer(4, 16, ema_decay=0.99, kmeans_init=True).train()
    q(z)
    # the invariant e_k = m_k / N~_k holds after init + one EMA step, and the sizes are the k-means counts scale
    torch.testing.assert_close(q.codebook, q.ema_sum / q._smoothed_cluster_size()[:, None])
    assert math.isclose(q.ema_cluster_size.sum().item(), 1024, rel_tol=1e-4)
    # one EMA step on the same batch keeps the k-means solution
    assert quantization_error(q, z) <= 1.01 * quantization_error(plain, z)


@pytest.mark.parametrize("ema", [False, True])
def test_dead_code_restart_revives_unused_code(ema):
    torch.manual_seed(8)
    q = VectorQuantizer(4, 8, dead_code_threshold=1.0, ema_decay=0.9 if ema else None).train()
    z = torch.randn(256, 4)
    with torch.no_grad():
        q.codebook.copy_(torch.randn(8, 4) * 0.5)
        q.codebook[3] = 100.0  # far from all data: never chosen
        if ema:
            q.ema_cluster_size.fill_(32.0)
            q.ema_cluster_size[3] = 0.0
            q.ema_sum.copy_(q.codebook * q._smoothed_cluster_size()[:, None])
    if not ema:
        q(z)  # usage of code 3 decays below the threshold
    out = q(z)  # restart happens before quantizing this batch
    assert out.metrics["restarted_codes"].item() >= 1
    assert (out.codes == 3).any()  # the revived code serves this batch already
    revived = q.codebook[3].detach()
    if not ema:  # it is one of the batch's vectors (with EMA it has since moved to its cluster mean)
        assert (z - revived).abs().sum(1).min().item() < 1e-6
    assert revived.abs().max() < 10
    assert (q.eval()(z).codes == 3).any()


def test_rotation_trick_value_equals_plain_vq_and_gradient_differs():
    torch.manual_seed(9)
    plain = VectorQuantizer(6, 32)
    plain.codebook.data.normal_()
    rot = VectorQuantizer(6, 32, rotation_trick=True)
    rot.load_state_dict(plain.state_dict())
    z = torch.randn(20, 6, requires_grad=True)
    a, b = plain(z), rot(z)
    assert torch.equal(a.codes, b.codes)
    torch.testing.assert_close(b.quantized, a.quantized, atol=1e-6, rtol=0)
    torch.testing.assert_close(b.loss, a.loss)
    jac = torch.autograd.functional.jacobian(lambda x: rot(x).quantized[0], z)[:, 0]  # (6, 6) for row 0
    assert (jac - torch.eye(6)).abs().max() > 1e-2


def test_rotation_trick_gradient_matches_hand_derivation_2d():
    # z = (1, 0), code q = (0, 2): u = (1, 0), v = (0, 1), w = (1, 1)/sqrt 2,
    # R = I - 2 w w^T + 2 v u^T = [[0, -1], [1, 0]] (a quarter turn), lambda = |q|/|z| = 2.
    # d(c . quantized)/dz = lambda R^T c; with c = (1, 0): 2 * (0, -1) = (0, -2); with c = (0, 1): (2, 0).
    q = VectorQuantizer(2, 1, rotation_trick=True)
    with torch.no_grad():
        q.codebook.copy_(torch.tensor([[0.0, 2.0]]))
    z = torch.tensor([[1.0, 0.0]], requires_grad=True)
    out = q(z)
    torch.testing.assert_close(out.quantized.detach(), torch.tensor([[0.0, 2.0]]))
    (gx,) = torch.autograd.grad(out.quantized[0, 0], z, retain_graph=True)
    (gy,) = torch.autograd.grad(out.quantized[0, 1], z)
    torch.testing.assert_close(gx, torch.tensor([[0.0, -2.0]]))
    torch.testing.assert_close(gy, torch.tensor([[2.0, 0.0]]))


def test_rotation_matches_vector_quantize_pytorch_rotate_to():
    from vector_quantize_pytorch.vector_quantize_pytorch import rotate_to as vqp_rotate_to

    torch.manual_seed(10)
    z = torch.randn(50, 7, requires_grad=True)
    target = torch.randn(50, 7)
    g = torch.randn(50, 7)
    ours = rotate_to(z, target)
    theirs = vqp_rotate_to(z, target)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours, target, atol=1e-5, rtol=1e-5)
    (ga,) = torch.autograd.grad(ours, z, g)
    (gb,) = torch.autograd.grad(theirs, z, g)
    torch.testing.assert_close(ga, gb, atol=1e-5, rtol=1e-5)
