"""The regression gate fails on planted regressions: a baseline claiming more codebook usage than the
code gives, and a real code change that loses most of a codebook on one built-in tokenizer."""

from __future__ import annotations

import json

import pytest

from bench import regress
from implementations.quantizers import vector

TOKENIZER = "vqvae_tiny_vq_d4"


def one_tokenizer_baseline(tmp_path, usage_factor: float = 1.0):
    """The committed built-in baseline of TOKENIZER alone, its usage multiplied by ``usage_factor``."""
    baseline = json.loads((regress.BASELINES / "builtin.json").read_text())
    baseline["tokenizers"] = {TOKENIZER: baseline["tokenizers"][TOKENIZER]}
    baseline["tokenizers"][TOKENIZER]["usage"]["value"] *= usage_factor
    folder = tmp_path / "baselines"
    folder.mkdir()
    (folder / "builtin.json").write_text(json.dumps(baseline))
    return folder, baseline


def test_a_baseline_claiming_20_percent_more_usage_fails(tmp_path, monkeypatch, capsys):
    """What the code gives is the committed baseline; the edited baseline says usage was 20% higher."""
    folder, _ = one_tokenizer_baseline(tmp_path, usage_factor=1.2)
    committed = json.loads((regress.BASELINES / "builtin.json").read_text())["tokenizers"][TOKENIZER]
    monkeypatch.setattr(regress, "measure", lambda *args, **kwargs: {TOKENIZER: {m: e["value"] for m, e in committed.items()}})
    with pytest.raises(SystemExit) as exit_:
        regress.main(["--suite", "builtin", "--baselines", str(folder)])
    assert exit_.value.code == 1
    out = capsys.readouterr().out
    assert "tier" in out and "METRICS MOVED BEYOND TOLERANCE" in out
    assert any("usage" in line and ("COLLAPSE" in line or "REGRESSION" in line) for line in out.splitlines())


@pytest.mark.slow  # one training run of the built-in suite's budget (~40 s on 2 cores)
def test_a_quantizer_that_reaches_only_32_codes_fails_the_gate(tmp_path, monkeypatch, capsys):
    """A planted bug: the nearest-code search sees only the first 32 of the 512 codes."""
    folder, _ = one_tokenizer_baseline(tmp_path)
    nearest = vector.nearest_codes
    monkeypatch.setattr(vector, "nearest_codes", lambda flat, codebook: nearest(flat, codebook[:32]))
    with pytest.raises(SystemExit) as exit_:
        regress.main(["--suite", "builtin", "--tokenizer", TOKENIZER, "--baselines", str(folder), "--output-dir", str(tmp_path / "runs")])
    assert exit_.value.code == 1
    usage = next(line for line in capsys.readouterr().out.splitlines() if "| usage " in line)
    assert "COLLAPSE" in usage, usage
