"""``python -m bench.tokenizers`` lists exactly what ``bench.run tokenizer=<name>`` accepts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench import tokenizers
from bench.config import compose

REPO = Path(__file__).resolve().parents[2]


def listing(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.tokenizers", *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_every_accepted_name_is_listed_with_what_it_runs():
    rows = {row["name"]: row for row in json.loads(listing("--json").stdout)}
    accepted = sorted(p.stem for p in (REPO / "bench" / "conf" / "tokenizer").glob("*.yaml"))
    assert sorted(rows) == accepted
    for name in accepted:
        compose([f"tokenizer={name}"])  # bench.run takes it
    tiny = rows["vqvae_tiny_vq_d4"]
    assert tiny["arch"] == "vqvae_simplecnn" and tiny["suites"] == ["builtin"]
    assert tiny["input_shape"] == [3, 32, 32] and tiny["token_grid"] == [8, 8]
    assert 300_000 < tiny["parameters"] < 320_000 and tiny["rate"] == 9 * 64 / (32 * 32)
    assert rows["vqvae_celeba_vq_d64"]["input_shape"] == [3, 64, 64] and rows["vqvae_celeba_vq_d64"]["parameters"] > 4_000_000


def printed(capsys, *args: str) -> str:
    tokenizers.main(list(args))
    return capsys.readouterr().out


def test_architectures_on_request(capsys):
    out = printed(capsys, "--archs")
    assert "vqvae_simplecnn" in out and "weights" in out and "van den Oord 2017" in out
    assert "official weights" in printed(capsys, "--archs", "--wide")


def test_the_listing_fits_a_100_column_terminal_and_wide_shows_everything(capsys):
    for args in ((), ("--archs",)):
        lines = printed(capsys, *args).splitlines()
        assert lines and max(map(len, lines)) <= 100
    wide = printed(capsys, "--wide")
    assert "| vqvae_tiny_vq_d4 " in wide and "| suites " in wide and "| recipe " in wide


def test_a_closed_pipe_is_not_an_error():
    process = subprocess.Popen([sys.executable, "-m", "bench.tokenizers", "--json"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # the reader is gone before the listing is printed, as with `| head` on a long list
    err = process.stderr.read().decode()
    assert process.wait(timeout=120) == 0 and "Traceback" not in err, err
