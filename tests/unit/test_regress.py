"""bench.regress: tolerances from measured spread, and the verdict table."""

from __future__ import annotations

import statistics

import pytest

from bench import regress


def test_tolerance_is_a_multiple_of_the_seed_spread_with_a_noise_floor():
    per_seed = [{"tok": {"psnr": 24.0, "ssim": 0.6}}, {"tok": {"psnr": 24.5, "ssim": 0.6}}, {"tok": {"psnr": 23.5, "ssim": 0.6}}]
    baseline = regress.derive(per_seed)
    assert baseline["tok"]["psnr"]["value"] == 24.0
    assert baseline["tok"]["psnr"]["tolerance"] == pytest.approx(regress.SPREAD_MULTIPLE * statistics.stdev([24.0, 24.5, 23.5]))
    assert baseline["tok"]["ssim"]["tolerance"] == regress.NOISE_FLOOR["ssim"]  # no spread: the floor
    assert baseline["tok"]["psnr"]["seed_values"] == [24.0, 24.5, 23.5]


def test_compare_flags_regressions_moves_and_missing_metrics():
    baseline = {"tokenizers": {"tok": {"psnr": {"value": 24.0, "tolerance": 0.5}, "usage": {"value": 0.1, "tolerance": 0.01}}, "gone": {"psnr": {"value": 20.0, "tolerance": 1.0}}}}
    rows, ok = regress.compare(baseline, {"tok": {"psnr": 23.9, "usage": 0.05}})
    status = {(r["tokenizer"], r["metric"]): r["status"] for r in rows}
    assert not ok
    assert status == {("tok", "psnr"): "ok", ("tok", "usage"): "REGRESSION", ("gone", "psnr"): "MISSING"}
    rows, ok = regress.compare(baseline | {"tokenizers": {"tok": baseline["tokenizers"]["tok"]}}, {"tok": {"psnr": 26.0, "usage": 0.1}})
    assert not ok and rows[0]["status"] == "MOVED"  # better beyond tolerance: update the baselines deliberately
