"""bench.regress: the two tiers, collapse floors, tolerances from thread-count noise, the verdict table."""

from __future__ import annotations

import copy

import pytest

from bench import regress


def _env(**changes):
    env = {"cpu": {"model_name": "X", "vendor": "V", "family": "6", "model": "207", "stepping": "2", "kernel_flags": ["avx2"], "torch_capability": "AVX2"}, "threads": 2, "torch": "2.14.1"}
    return {**env, **changes}


def test_tier_is_exact_only_where_cpu_threads_and_torch_all_match():
    assert regress.choose_tier(_env(), _env())[0] == "exact"
    other_cpu = _env(cpu={**_env()["cpu"], "kernel_flags": ["avx2", "avx512f"]})
    for here in (other_cpu, _env(threads=1), _env(torch="2.15.0")):
        tier, why = regress.choose_tier(_env(), here)
        assert tier == "portable"
    assert "threads 1 vs the baseline's 2" in regress.choose_tier(_env(), _env(threads=1))[1]
    assert regress.choose_tier(None, _env())[0] == "portable"


def test_portable_tolerance_is_a_multiple_of_the_largest_thread_move_with_a_floor():
    by_threads = {2: {"tok": {"psnr": 24.0, "ssim": 0.6}}, 1: {"tok": {"psnr": 24.03, "ssim": 0.6}}, 3: {"tok": {"psnr": 23.99, "ssim": 0.6}}}
    baseline = regress.derive(by_threads, threads=2)
    assert baseline["tok"]["psnr"]["value"] == 24.0
    assert baseline["tok"]["psnr"]["tolerance"] == pytest.approx(regress.NOISE_MULTIPLE * 0.03)
    assert baseline["tok"]["ssim"]["tolerance"] == regress.NOISE_FLOOR["ssim"]  # no move: the floor
    assert baseline["tok"]["psnr"]["values_by_threads"] == {"1": 24.03, "2": 24.0, "3": 23.99}


BASELINE = {"tokenizers": {"tok": {"psnr": {"value": 24.0, "tolerance": 0.5}, "usage": {"value": 0.5, "tolerance": 0.2}, "perplexity": {"value": 100.0, "tolerance": 50.0}}}}


def test_exact_tier_allows_float_noise_only():
    rows, ok = regress.compare(BASELINE, {"tok": {"psnr": 24.0 + 1e-9, "usage": 0.5, "perplexity": 100.0}}, "exact")
    assert ok, rows
    rows, ok = regress.compare(BASELINE, {"tok": {"psnr": 23.999, "usage": 0.5, "perplexity": 100.0}}, "exact")
    assert not ok and {r["metric"]: r["status"] for r in rows}["psnr"] == "REGRESSION"


def test_portable_tier_flags_regressions_moves_missing_metrics_and_collapse_beyond_the_spread():
    rows, ok = regress.compare(BASELINE, {"tok": {"psnr": 23.9, "usage": 0.5, "perplexity": 100.0}}, "portable")
    assert ok
    rows, ok = regress.compare(BASELINE, {"tok": {"psnr": 26.0, "usage": 0.5}}, "portable")
    status = {r["metric"]: r["status"] for r in rows}
    assert not ok and status == {"psnr": "MOVED", "usage": "ok", "perplexity": "MISSING"}
    # usage 12% lower is within its (wide) tolerance but below the collapse floor
    rows, ok = regress.compare(BASELINE, {"tok": {"psnr": 24.0, "usage": 0.44, "perplexity": 89.0}}, "portable")
    assert not ok and {r["metric"]: r["status"] for r in rows} == {"psnr": "ok", "usage": "COLLAPSE", "perplexity": "COLLAPSE"}


def test_a_baseline_claiming_20_percent_more_usage_fails_in_both_tiers():
    edited = copy.deepcopy(BASELINE)
    edited["tokenizers"]["tok"]["usage"]["value"] = 0.5 * 1.2
    for tier in ("exact", "portable"):
        rows, ok = regress.compare(edited, {"tok": {"psnr": 24.0, "usage": 0.5, "perplexity": 100.0}}, tier)
        assert not ok
