"""In CI (CI=true) a parity test that skips fails the run, naming what did not import (tests/parity/conftest.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_parity_tests(tmp_path: Path, ci: bool) -> subprocess.CompletedProcess:
    parity = tmp_path / "tests" / "parity"
    parity.mkdir(parents=True)
    shutil.copy(REPO / "tests" / "parity" / "conftest.py", parity)
    (parity / "test_reference.py").write_text('import pytest\n\npytest.importorskip("no_such_reference_package")\n\n\ndef test_x():\n    pass\n')
    (parity / "test_late.py").write_text('import pytest\n\n\ndef test_y():\n    pytest.importorskip("another_missing_package")\n')
    env = {**os.environ, "PYTHONPATH": str(REPO), "CI": "true" if ci else "false", "OMP_NUM_THREADS": "1"}
    env.pop("BENCH_UPDATE_PARITY", None)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), "tests/parity"],
                          check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip


def test_a_skipped_parity_test_fails_in_ci_naming_the_package(tmp_path):
    result = run_parity_tests(tmp_path, ci=True)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "tests/parity/test_reference.py: could not import 'no_such_reference_package'" in result.stdout
    assert "tests/parity/test_late.py::test_y: could not import 'another_missing_package'" in result.stdout


def test_outside_ci_it_is_a_skip(tmp_path):
    result = run_parity_tests(tmp_path, ci=False)
    assert result.returncode == 0 and "2 skipped" in result.stdout, result.stdout + result.stderr
