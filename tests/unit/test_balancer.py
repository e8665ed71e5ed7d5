"""EnCodec's loss balancer (`implementations.losses.balancer.Balancer`) against closed forms computed by
hand on tiny problems: quadratic losses whose gradients at the output have chosen norms, so that the
balanced gradient ``sum_i total_norm * w_i / sum(w) * g_i / ema(||g_i||)`` is known exactly. The moving
average is bias-corrected (flashy's ``averager``), so the first step uses the first norms exactly for any
decay; the second step checks the average with decay 0.5. (tests/parity/test_audiocraft_losses.py
compares it with audiocraft's own ``Balancer``.)
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from implementations.losses.balancer import Balancer


def _quadratics(parameter: torch.Tensor, a: list[float], b: list[float]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """output ``y = parameter`` (through an operation); losses ``sum (y - a)^2`` and ``sum (y - b)^2``,
    gradients ``2 (y - a)`` and ``2 (y - b)``."""
    output = parameter * 1.0
    return output, {"a": ((output - torch.tensor([a])) ** 2).sum(), "b": ((output - torch.tensor([b])) ** 2).sum()}


def test_two_quadratic_losses_closed_form():
    """Weights a: 1, b: 3 (shares 1/4, 3/4), total_norm 2, decay 0.5, output y = 0 (1 item of 3 values).

    Step 1: g_a = 2 (0 - a) = (0, 3, 4), ||g_a|| = 5; g_b = (1, 0, 0), ||g_b|| = 1.
        G = 2 (1/4 (0, 3, 4) / 5 + 3/4 (1, 0, 0) / 1) = (1.5, 0.3, 0.4).
    Step 2: g_a = (0, 6, 8), norm 10; g_b = (3, 0, 0), norm 3.
        ema_a = (0.5 * 5 + 10) / (0.5 + 1) = 25/3, ema_b = (0.5 * 1 + 3) / 1.5 = 7/3;
        factors 2 * 1/4 / (25/3) = 0.06 and 2 * 3/4 / (7/3) = 9/14;
        G = 0.06 (0, 6, 8) + 9/14 (3, 0, 0) = (27/14, 0.36, 0.48); ratios 25/32, 7/32.
    """
    balancer = Balancer({"a": 1.0, "b": 3.0}, total_norm=2.0, ema_decay=0.5)
    parameter = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)

    output, losses = _quadratics(parameter, a=[0.0, -1.5, -2.0], b=[-0.5, 0.0, 0.0])
    metrics = balancer.backward(losses, output)
    torch.testing.assert_close(parameter.grad, torch.tensor([[1.5, 0.3, 0.4]], dtype=torch.float64), rtol=1e-12, atol=1e-12)
    assert metrics["norm_a"] == pytest.approx(5.0) and metrics["norm_b"] == pytest.approx(1.0)
    assert metrics["ratio_a"] == pytest.approx(5 / 6) and metrics["scale_b"] == pytest.approx(1.5)

    parameter.grad = None
    output, losses = _quadratics(parameter, a=[0.0, -3.0, -4.0], b=[-1.5, 0.0, 0.0])
    metrics = balancer.backward(losses, output)
    torch.testing.assert_close(parameter.grad, torch.tensor([[27 / 14, 0.36, 0.48]], dtype=torch.float64), rtol=1e-12, atol=1e-12)
    assert metrics["ema_norm_a"] == pytest.approx(25 / 3) and metrics["ema_norm_b"] == pytest.approx(7 / 3)
    assert metrics["scale_a"] == pytest.approx(0.06) and metrics["scale_b"] == pytest.approx(9 / 14)
    assert metrics["ratio_a"] == pytest.approx(25 / 32) and metrics["ratio_b"] == pytest.approx(7 / 32)


@pytest.mark.parametrize("per_batch_item, norm", [(True, 3.0), (False, 26**0.5)])
def test_norm_per_batch_item_or_whole_batch(per_batch_item, norm):
    """One loss ``sum (y - t)^2 / 2``, gradient ``y - t`` = ((3, 4), (0, 1)): per-item norms 5 and 1, mean
    3; whole-batch norm sqrt(26). With one loss, G = total_norm * g / norm."""
    balancer = Balancer({"only": 1.0}, total_norm=1.0, per_batch_item=per_batch_item)
    parameter = torch.zeros(2, 2, dtype=torch.float64, requires_grad=True)
    output = parameter * 1.0
    target = -torch.tensor([[3.0, 4.0], [0.0, 1.0]], dtype=torch.float64)
    metrics = balancer.backward({"only": ((output - target) ** 2).sum() / 2}, output)
    assert metrics["norm_only"] == pytest.approx(norm)
    torch.testing.assert_close(parameter.grad, -target / norm, rtol=1e-12, atol=1e-12)


def test_scale_multiplies_the_backpropagated_gradient():
    parameter = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    output, losses = _quadratics(parameter, a=[0.0, -1.5, -2.0], b=[-0.5, 0.0, 0.0])
    Balancer({"a": 1.0, "b": 3.0}, total_norm=2.0).backward(losses, output, scale=0.25)
    torch.testing.assert_close(parameter.grad, 0.25 * torch.tensor([[1.5, 0.3, 0.4]], dtype=torch.float64), rtol=1e-12, atol=1e-12)


def test_shares_among_the_losses_given():
    """Only ``a`` given (e.g. before the GAN terms start): it gets the whole total_norm; ``b``'s average is untouched."""
    balancer = Balancer({"a": 1.0, "b": 3.0}, total_norm=2.0)
    parameter = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    output, losses = _quadratics(parameter, a=[0.0, -1.5, -2.0], b=[-0.5, 0.0, 0.0])
    balancer.backward({"a": losses["a"]}, output)
    torch.testing.assert_close(parameter.grad, 2 * torch.tensor([[0.0, 0.6, 0.8]], dtype=torch.float64), rtol=1e-12, atol=1e-12)
    assert balancer.decay_sums.tolist() == [1.0, 0.0]
    with pytest.raises(KeyError, match="without a balancer weight"):
        balancer.backward({"c": losses["a"]}, output)
    with pytest.raises(ValueError, match="need a positive sum"):
        balancer.backward({}, output)


def _random_step(balancer: Balancer, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    parameter = torch.randn(2, 1, 50, generator=generator, requires_grad=True)
    target = torch.randn(2, 1, 50, generator=generator)
    output = torch.tanh(parameter)
    losses = {
        "l1": (output - target).abs().mean(),
        "mel": 100 * ((output - target) ** 2).mean(),
        "adversarial": torch.relu(1 - output).mean(),
    }
    balancer.backward(losses, output)
    return parameter.grad


def test_state_dict_resumes_exactly():
    weights = {"l1": 0.1, "mel": 1.0, "adversarial": 3.0}
    running = Balancer(weights)
    for seed in range(3):
        _random_step(running, seed)
    state = copy.deepcopy(running.state_dict())
    assert set(state) == {"norm_sums", "decay_sums"}
    resumed = Balancer(weights)
    resumed.load_state_dict(state)
    expected = _random_step(running, 3)
    assert torch.equal(_random_step(resumed, 3), expected)
    assert not torch.allclose(_random_step(Balancer(weights), 3), expected)  # the state matters


def _distributed_worker(rank: int, init_file: str, results) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        balancer = Balancer({"only": 1.0}, ema_decay=0.5)
        parameter = torch.zeros(1, 2, dtype=torch.float64, requires_grad=True)
        output = parameter * 1.0
        target = -torch.tensor([[3.0, 4.0]] if rank == 0 else [[0.0, 1.0]], dtype=torch.float64)  # norms 5 and 1
        metrics = balancer.backward({"only": ((output - target) ** 2).sum() / 2}, output)
        results[rank] = (metrics["norm_only"], balancer.norm_sums.tolist(), parameter.grad.flatten().tolist())
    finally:
        dist.destroy_process_group()


def test_norms_are_averaged_across_processes(tmp_path):
    """Two processes with one item each, gradient norms 5 and 1: both use and store the average 3."""
    results = mp.Manager().dict()
    mp.spawn(_distributed_worker, args=(str(tmp_path / "init"), results), nprocs=2)
    assert results[0][:2] == results[1][:2] == (3.0, [3.0])
    assert results[0][2] == pytest.approx([1.0, 4 / 3]) and results[1][2] == pytest.approx([0.0, 1 / 3])
