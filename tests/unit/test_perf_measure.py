"""`bench.perf.measure.interleaved`: every side gets the same warm-up and repeats, taking turns."""

from __future__ import annotations

from bench.perf.measure import interleaved


def test_sides_take_turns_and_get_equal_counts():
    calls = []
    timings = interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, warmup=2, repeats=3)
    assert calls == ["a", "b"] * 2 + ["a", "b", "b", "a", "a", "b"]  # warm-up, then the order alternates
    assert {side: len(t) for side, t in timings.warmup_ms.items()} == {"a": 2, "b": 2}
    assert {side: len(t) for side, t in timings.ms.items()} == {"a": 3, "b": 3} and timings.repeats == 3


def test_a_budget_sets_the_repeats_within_bounds():
    steps = {"ours": lambda: None, "peer": lambda: None}
    assert interleaved(steps, budget_s=0.0, least=4).repeats == 4
    assert interleaved(steps, budget_s=10.0, most=7).repeats == 7
