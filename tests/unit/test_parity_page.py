"""The parity page is generated from what the parity tests measured (bench.parity)."""

from __future__ import annotations

import json
from pathlib import Path

from bench import parity

REPO = Path(__file__).resolve().parents[2]


def entry(**changes) -> dict:
    case = {"family": "VQGAN (taming)", "tokenizers": ["vqgan_taming_f16_1024"], "reference": "taming-transformers", "version": "0.0.1",
            "golden": None, "setup": "width 32", "codes": {"compared": 32, "differ": 0, "distinct": 24, "codebook": 64},
            "errors": {"reconstruction": {"max": 2.8e-05, "tolerance": 0.0001}}}  # fmt: skip
    return {**case, **changes}


def test_the_committed_page_is_what_the_committed_measurements_give():
    assert parity.check(REPO / "leaderboards") == []


def test_a_measurement_agrees_with_its_entry_to_a_factor_and_exactly_elsewhere():
    assert parity.inconsistencies(entry(), entry()) == []
    assert parity.inconsistencies(entry(), entry(errors={"reconstruction": {"max": 1.1e-05, "tolerance": 0.0001}})) == []  # another CPU
    assert parity.inconsistencies(entry(), entry(errors={"reconstruction": {"max": 6.9e-06, "tolerance": 0.0001}})) == [
        "reconstruction max error: 2.8e-05 recorded, 6.9e-06 measured"
    ]
    assert parity.inconsistencies(entry(errors={"decode": {"max": 0.0, "tolerance": 1e-6}}), entry(errors={"decode": {"max": 6e-9, "tolerance": 1e-6}}))
    assert parity.inconsistencies(entry(errors={"grad": {"max": 0.0, "tolerance": 1e-12}}), entry(errors={"grad": {"max": 2.2e-16, "tolerance": 1e-12}})) == []
    assert parity.inconsistencies(entry(), entry(errors={"reconstruction": {"max": 2.8e-05, "tolerance": 1e-05}})) == [
        "reconstruction tolerance: 0.0001 recorded, 1e-05 asserted"
    ]
    assert parity.inconsistencies(entry(), entry(version="0.0.2")) == ["version: '0.0.1' recorded, '0.0.2' measured"]
    assert parity.inconsistencies(None, entry()) == ["no entry"]
    assert parity.round_error(2.8449e-05) == 2.8e-05 and parity.round_error(0.0) == 0.0


def test_check_names_a_stale_page_a_test_without_entry_and_unknown_or_uncounted_configurations(tmp_path):
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_a.py").touch()
    (tests / "test_b.py").touch()
    cases = {"test_a.py::f16": entry(), "test_a.py::tiny": entry(tokenizers=["vqgan_tiny_nonexistent"])}
    parity.update(tmp_path, cases, {})
    assert json.loads((tmp_path / "parity.json").read_bytes()) == {"cases": cases, "sizes": {}}
    assert parity.check(tmp_path, tests) == [
        f"no entry in {tmp_path / 'parity.json'} for tests/parity/test_b.py (BENCH_UPDATE_PARITY=1 python -m pytest tests/parity/test_b.py)",
        "test_a.py::f16 names the released vqgan_taming_f16_1024, but no test records its full-size parameter count",
        "test_a.py::tiny names vqgan_tiny_nonexistent, which tokenizer= does not accept (bench/conf/tokenizer/)",
    ]
    page = (tmp_path / "parity.md").read_text()
    assert "| `vqgan_taming_f16_1024` | VQGAN (taming) | taming-transformers 0.0.1 (PyPI), live | width 32 | 0 of 32 | 24 of 64 | reconstruction 2.8e-5 (1e-4) |" in page
    (tmp_path / "parity.md").write_text(page.replace("2.8e-5", "1e-5"))
    assert parity.check(tmp_path, tests)[0] == f"stale: {tmp_path / 'parity.md'} (regenerate with python -m bench.leaderboard)"
