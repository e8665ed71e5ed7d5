"""The parity tests' shared comparison and record (`bench.parity`), and no silent skips in CI.

A test compares through the ``parity`` fixture: ``case.codes`` asserts equal and diverse codes,
``case.close`` a largest absolute difference within the tolerance, ``parity.size`` a full-size
parameter count. When the test passes, its entries are checked against ``leaderboards/parity.json``
(or, with ``BENCH_UPDATE_PARITY=1``, written there at the end of the session).

With ``CI=true`` a skipped test or module under ``tests/parity/`` fails the run, naming what did not
import: a missing reference package must not pass for parity.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from bench import parity as parity_data

UPDATE = os.environ.get("BENCH_UPDATE_PARITY") == "1"
IN_CI = os.environ.get("CI") == "true"
LEADERBOARDS = Path(__file__).resolve().parents[2] / "leaderboards"
MEASURED: dict[str, dict[str, dict]] = {"cases": {}, "sizes": {}}  # this session's entries, written with BENCH_UPDATE_PARITY=1
SKIPPED_IN_CI: list[str] = []
CALL_REPORT = pytest.StashKey[pytest.TestReport]()


@dataclass
class Case:
    """One comparison with the official code: what the page's row says about it."""

    family: str
    tokenizers: list[str]  # configuration names (bench/conf/tokenizer/)
    reference: str  # the official code: PyPI package or repository
    version: str  # the package's version, or the commit the golden file was made from
    golden: str | None  # the golden file, relative to the repository; None when the reference runs live
    setup: str  # width, inputs, what is spread
    codes: dict | None = None
    errors: dict[str, dict[str, float]] = field(default_factory=dict)

    def compare_codes(self, ours: torch.Tensor, theirs: torch.Tensor, codebook_size: int, min_distinct: int = 10) -> None:
        """Codes laid out as ours, (B, *grid, depth): all equal, and at least ``min_distinct`` distinct at every level."""
        assert ours.shape == theirs.shape, f"code shapes differ: {tuple(ours.shape)} vs {tuple(theirs.shape)}"
        differ, distinct = int((ours != theirs).sum()), min(int(theirs[..., level].unique().numel()) for level in range(theirs.shape[-1]))
        previous = self.codes or {"compared": 0, "differ": 0, "distinct": distinct, "codebook": codebook_size}
        self.codes = {"compared": previous["compared"] + theirs.numel(), "differ": previous["differ"] + differ,
                      "distinct": min(previous["distinct"], distinct), "codebook": codebook_size}  # fmt: skip
        assert differ == 0, f"{differ} of {theirs.numel()} codes differ from the official code's"
        assert distinct >= min_distinct, f"only {distinct} distinct codes at some level (at least {min_distinct} asserted): equal codes would say little"

    def compare(self, name: str, ours: torch.Tensor, theirs: torch.Tensor, tolerance: float) -> None:
        """``ours`` within ``tolerance`` of ``theirs`` (largest absolute difference); the worst of repeated calls is kept."""
        assert ours.shape == theirs.shape, f"{name}: shapes differ: {tuple(ours.shape)} vs {tuple(theirs.shape)}"
        error = float((ours.detach().double() - theirs.detach().double()).abs().max())
        kept = self.errors.get(name, {"max": 0.0})["max"]
        self.errors[name] = {"max": max(kept, parity_data.round_error(error)), "tolerance": tolerance}
        assert error <= tolerance, f"{name}: largest difference {error:.3g} from the official code's, above the tolerance {tolerance:g}"

    def entry(self) -> dict:
        return {"family": self.family, "tokenizers": self.tokenizers, "reference": self.reference, "version": self.version,
                "golden": self.golden, "setup": self.setup, "codes": self.codes, "errors": self.errors}  # fmt: skip


class Parity:
    """The ``parity`` fixture: cases and full-size counts of one test."""

    def __init__(self, test_file: str):
        self.test_file = test_file
        self.cases: dict[str, Case] = {}
        self.sizes: dict[str, dict] = {}

    def case(self, name: str, **description) -> Case:
        case = self.cases[f"{self.test_file}::{name}"] = Case(**description)
        return case

    def size(self, tokenizer: str, parameters: int, official: int, excluded: int = 0, note: str = "") -> None:
        """Our full-size parameter count equals the official one, less ``excluded`` official parameters we do not hold (``note`` says which)."""
        assert parameters + excluded == official, f"{tokenizer}: {parameters:,} parameters + {excluded:,} excluded vs {official:,} official"
        self.sizes[tokenizer] = {"parameters": parameters, "official": official, "excluded": excluded, "note": note, "test": self.test_file}

    def entries(self) -> dict[str, dict]:
        return {"cases": {key: case.entry() for key, case in self.cases.items()}, "sizes": self.sizes}


@pytest.fixture
def parity(request):
    record = Parity(Path(request.node.path).name)
    yield record
    report = request.node.stash.get(CALL_REPORT, None)
    if report is None or not report.passed:
        return
    if UPDATE:
        for kind, entries in record.entries().items():
            MEASURED[kind].update(entries)
        return
    committed = parity_data.load(LEADERBOARDS)
    problems = [f"{key}: {problem}" for kind, entries in record.entries().items() for key, entry in entries.items()
                for problem in parity_data.inconsistencies(committed[kind].get(key), entry)]  # fmt: skip
    if problems:
        pytest.fail(f"leaderboards/{parity_data.DATA} does not say what this test measures ({'; '.join(problems)}): "
                    f"rerun it with BENCH_UPDATE_PARITY=1 and commit the file", pytrace=False)  # fmt: skip


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if call.when == "call":
        item.stash[CALL_REPORT] = report
    return report


def _under_here(nodeid: str) -> bool:
    return nodeid.startswith("tests/parity/")


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    return (longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)).removeprefix("Skipped: ")


def pytest_collectreport(report):
    if IN_CI and report.skipped and _under_here(report.nodeid):
        SKIPPED_IN_CI.append(f"{report.nodeid}: {_skip_reason(report)}")


def pytest_runtest_logreport(report):
    if IN_CI and report.skipped and _under_here(report.nodeid):
        SKIPPED_IN_CI.append(f"{report.nodeid}: {_skip_reason(report)}")


def pytest_terminal_summary(terminalreporter):
    for line in SKIPPED_IN_CI:
        terminalreporter.write_line(f"FAILED (a parity test may not skip in CI; pip install -e '.[test]'): {line}", red=True)


def pytest_sessionfinish(session):
    if SKIPPED_IN_CI:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if UPDATE and (MEASURED["cases"] or MEASURED["sizes"]):
        parity_data.update(LEADERBOARDS, MEASURED["cases"], MEASURED["sizes"])
