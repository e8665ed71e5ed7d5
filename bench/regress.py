"""``python -m bench.regress``: run the built-in suites at a fixed seed and compare every metric with
the committed baselines (``bench/baselines/<suite>.json``); exit 1 with a table of what moved.

Two tiers, chosen per suite and printed with the reason:

* **exact**: this machine's CPU (`bench.records.cpu_identity`: vendor, family, model, kernel flags,
  torch's CPU capability), the suite's thread count and the torch version are the baseline's. The
  suite is bit-exact there, so every metric must equal its baseline to float noise
  (``EXACT_RELATIVE``), not to a spread.
* **portable**: anything else differs. Each metric may move by the tolerance ``--update`` measured
  across float noise: the same seed run at other thread counts (another float order, a fair stand-in
  for another CPU), ``NOISE_MULTIPLE`` times the largest move, at least ``NOISE_FLOOR``.

In both tiers a collapse fails whatever the tolerance: codebook usage and perplexity may not fall
by more than ``COLLAPSE_FLOOR`` (10%) relative to the baseline.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from tabulate import tabulate

from .config import compose
from .files import atomic_write_bytes
from .records import cpu_identity, describe_cpu
from .run import run_one

BASELINES = Path(__file__).parent / "baselines"
CHECKED_METRICS = ("psnr", "ssim", "mel_distance", "si_sdr", "pesq", "stoi", "usage", "perplexity")
LOWER_IS_BETTER = ("mel_distance",)
COLLAPSE_METRICS = ("usage", "perplexity")
COLLAPSE_FLOOR = 0.10  # usage / perplexity may not fall by more than this fraction of the baseline
EXACT_RELATIVE = 1e-6  # exact tier: float noise of the metric computations themselves
NOISE_MULTIPLE = 3.0  # portable tier: times the largest move another thread count caused
# Smallest portable tolerances: below these, differences are float noise, not behaviour.
NOISE_FLOOR = {"psnr": 0.02, "ssim": 0.001, "mel_distance": 0.01, "si_sdr": 0.05, "pesq": 0.01, "stoi": 0.002, "usage": 0.004, "perplexity": 0.5}


def environment(threads: int | None) -> dict[str, Any]:
    """What decides whether a rerun is bit-exact: the CPU, the suite's thread count, torch."""
    return {"cpu": cpu_identity(), "threads": threads, "torch": torch.__version__}


def choose_tier(baseline_env: dict[str, Any] | None, here: dict[str, Any]) -> tuple[str, str]:
    """(``exact`` | ``portable``, why)."""
    if not baseline_env:
        return "portable", "the baseline does not say where it was measured"
    differ = [key for key in ("cpu", "threads", "torch") if baseline_env.get(key) != here[key]]
    if not differ:
        return "exact", f"CPU, threads ({here['threads']}) and torch ({here['torch']}) are the baseline's: every metric must match to {EXACT_RELATIVE:g} relative"
    shown = {"cpu": describe_cpu, "threads": str, "torch": str}
    reasons = "; ".join(f"{key} {shown[key](here[key])} vs the baseline's {shown[key](baseline_env[key])}" if baseline_env.get(key) is not None else f"{key} unknown in the baseline" for key in differ)
    return "portable", f"{reasons}: tolerances measured across thread counts, collapse floors"


def measure(suite: str, overrides: list[str], seed: int, output_dir: Path, tokenizers: list[str] | None = None, commits: set[str] | None = None) -> dict[str, dict[str, float]]:
    """``{tokenizer: {metric: value}}`` for the suite's tokenizers (or ``tokenizers``), run at ``seed``
    (records already in ``output_dir`` are reused); the records' git shas are added to ``commits``."""
    common = [f"suite={suite}", f"seed={seed}", f"output_dir={output_dir}", f"leaderboard_dir={output_dir / 'lb'}", *overrides]
    results = {}
    for tokenizer in tokenizers or compose(common).suite.tokenizers:
        record = json.loads(run_one(compose([*common, f"tokenizer={tokenizer}"])).read_text())
        results[tokenizer] = {m: record["metrics"][m] for m in CHECKED_METRICS if m in record["metrics"]}
        if commits is not None:
            commits.add(record["git_sha"])
    return results


def _worse(metric: str, delta: float) -> bool:
    return delta > 0 if metric in LOWER_IS_BETTER else delta < 0


def verdict(metric: str, entry: dict[str, Any], value: float | None, tier: str) -> tuple[str, float]:
    """(status, the tolerance applied) of one measured value against its baseline entry."""
    base = entry["value"]
    tolerance = EXACT_RELATIVE * max(abs(base), 1.0) if tier == "exact" else entry["tolerance"]
    if value is None:
        return "MISSING", tolerance
    if metric in COLLAPSE_METRICS and value < (1 - COLLAPSE_FLOOR) * base:
        return "COLLAPSE", tolerance
    delta = value - base
    if abs(delta) <= tolerance:
        return "ok", tolerance
    return ("REGRESSION" if _worse(metric, delta) else "MOVED"), tolerance


def compare(baseline: dict[str, Any], measured: dict[str, dict[str, float]], tier: str) -> tuple[list[dict[str, Any]], bool]:
    """Rows of (tokenizer, metric, baseline, measured, delta, tolerance, status); ok when none fails.
    A metric better than its tolerance allows is MOVED: the baselines are updated deliberately."""
    rows, ok = [], True
    for tokenizer, metrics in sorted(baseline["tokenizers"].items()):
        if tokenizer not in measured:
            continue
        for metric, entry in sorted(metrics.items()):
            value = measured[tokenizer].get(metric)
            status, tolerance = verdict(metric, entry, value, tier)
            ok &= status == "ok"
            delta = None if value is None else value - entry["value"]
            rows.append({"tokenizer": tokenizer, "metric": metric, "baseline": entry["value"], "measured": value, "delta": delta, "tolerance": tolerance, "status": status})
    return rows, ok


def derive(by_threads: dict[int, dict[str, dict[str, float]]], threads: int) -> dict[str, dict[str, dict[str, Any]]]:
    """Baseline entries: the value at the suite's ``threads`` and a portable tolerance from how far the
    same seed moved at the other thread counts (``by_threads``: threads -> measurements)."""
    baseline: dict[str, dict[str, dict[str, Any]]] = {}
    for tokenizer, metrics in by_threads[threads].items():
        baseline[tokenizer] = {}
        for metric, value in metrics.items():
            values = {str(t): run[tokenizer][metric] for t, run in sorted(by_threads.items())}
            largest_move = max(abs(v - value) for v in values.values())
            baseline[tokenizer][metric] = {
                "value": value,
                "tolerance": max(NOISE_MULTIPLE * largest_move, NOISE_FLOOR[metric]),
                "values_by_threads": values,
            }
    return baseline


def update(suite: str, current: dict[str, Any], output_dir: Path, other_threads: list[int]) -> dict[str, Any]:
    """Re-measure a suite's baselines at its check seed, at its thread count and at ``other_threads``."""
    threads = compose([f"suite={suite}"]).suite.threads
    if threads is None:
        raise SystemExit(f"suite {suite} does not fix suite.threads: its numbers are not reproducible enough to gate on")
    commits: set[str] = set()
    # Records are named by config hash, which covers the thread count: one folder holds every run, and
    # the suite's default run (`--output-dir results`) already holds the check seed at its threads.
    by_threads = {t: measure(suite, [*current["overrides"], f"suite.threads={t}"], current["seed"], output_dir, commits=commits) for t in [threads, *other_threads]}
    return {**current, "git_sha": ",".join(sorted(commits)), "environment": environment(threads), "tokenizers": derive(by_threads, threads)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", action="append", help="baseline suites to check (default: all in bench/baselines)")
    parser.add_argument("--tokenizer", action="append", help="check only these tokenizers of the suite")
    parser.add_argument("--baselines", type=Path, default=BASELINES)
    parser.add_argument("--update", action="store_true", help="re-measure and rewrite the baselines")
    parser.add_argument("--other-threads", default="1,3", help="thread counts --update measures besides the suite's, for the portable tolerances")
    parser.add_argument("--output-dir", type=Path, help="keep the runs here (default: a temporary folder)")
    args = parser.parse_args(argv)

    suites = args.suite or sorted(p.stem for p in args.baselines.glob("*.json"))
    all_ok = True
    with tempfile.TemporaryDirectory(prefix="bench-regress-") as tmp:
        output_dir = args.output_dir or Path(tmp)
        for suite in suites:
            path = args.baselines / f"{suite}.json"
            current = json.loads(path.read_text())
            if args.update:
                other = [int(t) for t in args.other_threads.split(",") if t]
                updated = update(suite, current, output_dir, other)
                rows, _ = compare(current, {t: {m: e["value"] for m, e in ms.items()} for t, ms in updated["tokenizers"].items()}, "portable") if current.get("tokenizers") else ([], True)
                print(f"{suite}: baselines re-measured at seed {current['seed']}, threads {updated['environment']['threads']} and {other}; against the previous ones:")
                print(tabulate(rows, headers="keys", tablefmt="github", floatfmt=".4f") if rows else "(no previous baselines)")
                atomic_write_bytes(path, (json.dumps(updated, indent=2, sort_keys=True) + "\n").encode())
                continue
            threads = compose([f"suite={suite}"]).suite.threads
            tier, why = choose_tier(current.get("environment"), environment(threads))
            print(f"{suite}: {tier} tier: {why}")
            measured = measure(suite, current["overrides"], current["seed"], output_dir, args.tokenizer)
            rows, ok = compare(current, measured, tier)
            all_ok &= ok
            print(f"{suite}: {'no regression' if ok else 'METRICS MOVED BEYOND TOLERANCE'} (baselines {path}, seed {current['seed']}, {tier} tier)")
            print(tabulate(rows, headers="keys", tablefmt="github", floatfmt=".6g"))
    sys.exit(0 if all_ok else 1)


if __name__ == "__main__":
    main()
