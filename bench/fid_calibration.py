"""``python -m bench.fid_calibration suite=S tokenizer=T [overrides...]``: score one set of
reconstructions with every rFID backend available here and write the offsets table.

The field reports rFID under three Inception ports (`bench.metrics.fid.BACKENDS`) and has no table
of how far apart they are. This runs the one evaluation pass of `bench.run` with every backend as a
metric (the same reconstructions for each), then writes ``<leaderboard_dir>/fid_calibration.md``
from every record under ``<output_dir>`` that scored more than one backend: per tokenizer and
suite, each backend's rFID and its offset and ratio to torch-fidelity's (``rfid``). Backends whose
weights are missing are listed with the file to fetch. Such records measure a different metric
list from their suite's protocol, so the leaderboards show them only with ``--include-deviating``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from tabulate import tabulate

from .config import compose, register_configs, validate
from .errors import BenchError
from .files import atomic_write_bytes
from .metrics.fid import BACKENDS
from .records import read_records
from .run import run_one

BASE = "rfid"


def calibration_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per record that scored two or more backends: each backend's value, offset and ratio to ``rfid``."""
    rows = []
    for record in records:
        scored = {name: record["metrics"][name] for name in BACKENDS if isinstance(record["metrics"].get(name), (int, float))}
        if len(scored) < 2:
            continue
        row = {"suite": record["suite"], "tokenizer": record["tokenizer"], "seed": record["seed"], "items": record["num_items"],
               "preprocessing": record["protocol"]["preprocessing"]}  # fmt: skip
        for name, value in scored.items():
            row[name] = f"{value:.4f}"
            if name != BASE and BASE in scored:
                row[f"{name} - {BASE}"] = f"{value - scored[BASE]:+.4f}"
                row[f"{name} / {BASE}"] = f"{value / scored[BASE]:.4f}"
        rows.append(row)
    return rows


def render(rows: list[dict[str, Any]], unavailable: dict[str, str]) -> str:
    lines = ["# rFID calibration: one set of reconstructions, every Inception backend", "",
             "Written by `python -m bench.fid_calibration`. " + ", ".join(f"`{name}`: {backend.protocol}" for name, backend in BACKENDS.items()) + ".", ""]  # fmt: skip
    if rows:
        lines.append(tabulate(pd.DataFrame(rows).fillna(""), headers="keys", tablefmt="github", showindex=False, disable_numparse=True))
    else:
        lines.append("No record scored more than one backend yet.")
    if unavailable:
        lines += ["", "Not available in the last calibration run:", "", *[f"- {name}: {reason}" for name, reason in sorted(unavailable.items())]]
    return "\n".join(lines) + "\n"


def calibrate(overrides: list[str]) -> Path:
    """Run the evaluation with every backend, then (re)write the table; returns the table's path."""
    register_configs()
    cfg = compose([*overrides, f"suite.eval.metrics=[{','.join(BACKENDS)}]"])
    if cfg.tokenizer is None:
        raise BenchError("choose the tokenizer whose reconstructions are scored: tokenizer=<name>")
    if cfg.seed is None:
        cfg.seed = int(cfg.suite.seeds[0])
    validate(cfg)
    unavailable = json.loads(run_one(cfg).read_text())["unavailable"]
    table = Path(cfg.leaderboard_dir) / "fid_calibration.md"
    atomic_write_bytes(table, render(calibration_rows(read_records(cfg.output_dir)), unavailable).encode())
    return table


def main(argv: list[str] | None = None) -> None:
    try:
        print(calibrate(list(sys.argv[1:] if argv is None else argv)))
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
