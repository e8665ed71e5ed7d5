"""``python -m bench.regress``: run the built-in suites at a fixed seed and compare every metric with
the committed baselines (``bench/baselines/<suite>.json``); exit 1 with a table of what moved.

Tolerances are measured, not guessed: ``--update`` runs the suite at several seeds and stores, per
tokenizer and metric, the value at the check seed and a tolerance of ``k`` standard deviations of
the seed-to-seed spread (at least the floor below, the size of cross-machine float noise). It prints
what changed against the previous baselines.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from tabulate import tabulate

from .config import compose
from .files import atomic_write_bytes
from .run import run_one

BASELINES = Path(__file__).parent / "baselines"
CHECKED_METRICS = ("psnr", "ssim", "mel_distance", "si_sdr", "pesq", "stoi", "usage", "perplexity")
LOWER_IS_BETTER = ("mel_distance",)
SPREAD_MULTIPLE = 4.0
# Below this, differences are float noise across machines/threads, not behaviour.
NOISE_FLOOR = {"psnr": 0.02, "ssim": 0.001, "mel_distance": 0.01, "si_sdr": 0.05, "pesq": 0.01, "stoi": 0.002, "usage": 0.004, "perplexity": 0.5}


def measure(suite: str, overrides: list[str], seed: int, output_dir: Path, commits: set[str] | None = None) -> dict[str, dict[str, float]]:
    """``{tokenizer: {metric: value}}`` for every tokenizer the suite lists, run at ``seed`` (records
    already in ``output_dir`` are reused); the records' git shas are added to ``commits``."""
    common = [f"suite={suite}", f"seed={seed}", f"output_dir={output_dir}", f"leaderboard_dir={output_dir / 'lb'}", *overrides]
    results = {}
    for tokenizer in compose(common).suite.tokenizers:
        record = json.loads(run_one(compose([*common, f"tokenizer={tokenizer}"])).read_text())
        results[tokenizer] = {m: record["metrics"][m] for m in CHECKED_METRICS if m in record["metrics"]}
        if commits is not None:
            commits.add(record["git_sha"])
    return results


def compare(baseline: dict[str, Any], measured: dict[str, dict[str, float]]) -> tuple[list[dict[str, Any]], bool]:
    """Rows of (tokenizer, metric, baseline, measured, delta, tolerance, status); ok when none fails."""
    rows, ok = [], True
    for tokenizer, metrics in sorted(baseline["tokenizers"].items()):
        for metric, entry in sorted(metrics.items()):
            value = measured.get(tokenizer, {}).get(metric)
            if value is None:
                status, delta = "MISSING", None
            else:
                delta = value - entry["value"]
                status = "ok" if abs(delta) <= entry["tolerance"] else "REGRESSION" if _worse(metric, delta) else "MOVED"
            ok &= status == "ok"
            rows.append({"tokenizer": tokenizer, "metric": metric, "baseline": entry["value"], "measured": value, "delta": delta, "tolerance": entry["tolerance"], "status": status})
    return rows, ok


def _worse(metric: str, delta: float) -> bool:
    return delta > 0 if metric in LOWER_IS_BETTER else delta < 0


def derive(per_seed: list[dict[str, dict[str, float]]], check_seed_index: int = 0) -> dict[str, dict[str, dict[str, Any]]]:
    """Baseline entries from measurements at several seeds (the first is the check seed)."""
    baseline: dict[str, dict[str, dict[str, Any]]] = {}
    for tokenizer in per_seed[check_seed_index]:
        baseline[tokenizer] = {}
        for metric, value in per_seed[check_seed_index][tokenizer].items():
            values = [run[tokenizer][metric] for run in per_seed]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            baseline[tokenizer][metric] = {
                "value": value,
                "tolerance": max(SPREAD_MULTIPLE * spread, NOISE_FLOOR[metric]),
                "seed_values": values,
            }
    return baseline


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", action="append", help="baseline suites to check (default: all in bench/baselines)")
    parser.add_argument("--baselines", type=Path, default=BASELINES)
    parser.add_argument("--update", action="store_true", help="re-measure and rewrite the baselines")
    parser.add_argument("--seeds", default="0,1,2", help="seeds measured by --update (the first is the check seed)")
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
                seeds = [int(s) for s in args.seeds.split(",")]
                commits: set[str] = set()
                per_seed = [measure(suite, current["overrides"], seed, output_dir, commits) for seed in seeds]
                updated = {**current, "seed": seeds[0], "git_sha": ",".join(sorted(commits)), "tokenizers": derive(per_seed)}
                rows, _ = compare(current, per_seed[0]) if current.get("tokenizers") else ([], True)
                print(f"{suite}: baselines re-measured at seeds {seeds}; against the previous ones:")
                print(tabulate(rows, headers="keys", tablefmt="github", floatfmt=".4f") if rows else "(no previous baselines)")
                atomic_write_bytes(path, (json.dumps(updated, indent=2, sort_keys=True) + "\n").encode())
                continue
            measured = measure(suite, current["overrides"], current["seed"], output_dir)
            rows, ok = compare(current, measured)
            all_ok &= ok
            print(f"{suite}: {'no regression' if ok else 'METRICS MOVED BEYOND TOLERANCE'} (baselines {path}, seed {current['seed']})")
            print(tabulate(rows, headers="keys", tablefmt="github", floatfmt=".4f"))
    sys.exit(0 if all_ok else 1)


if __name__ == "__main__":
    main()
