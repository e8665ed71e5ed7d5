"""Leaderboards from hand-made records: deterministic bytes, references with verdicts, --check."""

from __future__ import annotations

import json
from pathlib import Path

from bench import leaderboard

REFERENCE = {
    "tokenizer": "Paper VQ",
    "source": "Some et al. 2024, Table 1",
    "compares_with": "tok_a",
    "metrics": {"psnr": 30.0, "rfid": 10.0},
    "protocol": {"split": "val", "num_items": 50000, "resolution": 32},
}


def make_record(name: str, psnr: float, created: str = "2026-01-01T00:00:00+00:00", references=(REFERENCE,)) -> dict:
    return {
        "suite": "toy",
        "tokenizer": name,
        "arch": "vqvae_simplecnn",
        "config_hash": f"{abs(hash(name)) % 10**12:012d}",
        "git_sha": "0123456789abcdef",
        "seed": 0,
        "split": "test",
        "num_items": 10,
        "metrics": {"psnr": psnr, "ssim": 0.5, "usage": 0.25, "usage_queue": 0.25, "perplexity": 3.0},
        "unavailable": {"rfid": "weights missing"},
        "protocol": {"split": "test", "num_items": 10, "input_shape": [3, 32, 32], "preprocessing": "none", "metrics": {"psnr": "per image"}},
        "rate": {"token_grid": [8, 8], "tokens": 64, "codebook_size": 512, "num_codebooks": 1, "bits_per_token": 9.0, "bits_per_pixel": 0.5625},
        "model": {},
        "checkpoint_sha256": None,
        "train": {},
        "wall_time_s": 1.0,
        "hardware": {},
        "config": {"suite": {"description": "a toy suite", "references": list(references)}},
        "created": created,
    }


def write(results: Path, record: dict) -> None:
    folder = results / record["suite"] / "records"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{record['tokenizer']}-{record['config_hash']}.json").write_text(json.dumps(record))


def test_same_records_same_bytes_and_new_record_changes_only_its_row(tmp_path):
    results, out = tmp_path / "results", tmp_path / "lb"
    write(results, make_record("tok_a", 29.8))
    page = leaderboard.write_leaderboard("toy", results, out).read_text()
    assert leaderboard.write_leaderboard("toy", results, out).read_text() == page

    write(results, make_record("tok_b", 25.0))
    new_page = leaderboard.write_leaderboard("toy", results, out).read_text()
    added = [line for line in new_page.splitlines() if line not in page.splitlines()]
    assert len(added) == 1 and added[0].startswith("| tok_b") and "25.00" in added[0]
    assert "| [toy](toy.md) | a toy suite | 2 | 1 |" in (out / "README.md").read_text()


def test_newest_record_per_tokenizer_wins(tmp_path):
    results = tmp_path / "results"
    write(results, make_record("tok_a", 20.0, created="2026-01-01T00:00:00+00:00"))
    newer = make_record("tok_a", 21.0, created="2026-02-01T00:00:00+00:00")
    newer["config_hash"] = "ffffffffffff"
    write(results, newer)
    page = leaderboard.write_leaderboard("toy", results, tmp_path / "lb").read_text()
    assert "21.00" in page and "20.00" not in page


def test_reference_rows_have_delta_verdict_source_and_protocol_flags(tmp_path):
    results = tmp_path / "results"
    write(results, make_record("tok_a", 29.8))
    page = leaderboard.write_leaderboard("toy", results, tmp_path / "lb").read_text()
    psnr_row = next(line for line in page.splitlines() if line.startswith("| Paper VQ") and "PSNR" in line)
    assert "30.00" in psnr_row and "29.80 (tok_a)" in psnr_row and "-0.2" in psnr_row
    assert "reproduced (tol 0.3)" in psnr_row and "Some et al. 2024" in psnr_row
    assert "split: paper val, here test" in psnr_row and "num_items: paper 50000, here 10" in psnr_row
    fid_row = next(line for line in page.splitlines() if line.startswith("| Paper VQ") and "rFID" in line)
    assert "not measured" in fid_row

    write(results, make_record("tok_a", 28.0, created="2026-03-01T00:00:00+00:00") | {"config_hash": "eeeeeeeeeeee"})
    page = leaderboard.write_leaderboard("toy", results, tmp_path / "lb").read_text()
    assert "differs (tol 0.3)" in page


def test_check_detects_stale_pages(tmp_path):
    results, out = tmp_path / "results", tmp_path / "lb"
    write(results, make_record("tok_a", 29.8))
    leaderboard.write_all(results, out)  # the configured suites' reference-only pages too
    assert leaderboard.check(results, out) == []
    imagenet = (out / "imagenet256.md").read_text()
    assert "No run records yet" in imagenet and "not measured" in imagenet and "split=val" in imagenet
    write(results, make_record("tok_b", 25.0))
    assert str(out / "toy.md") in leaderboard.check(results, out)
    (out / "toy.md").unlink()
    assert str(out / "toy.md") in leaderboard.check(results, out)


def test_local_records_replace_published_rows_and_publish_copies_them(tmp_path):
    results, out = tmp_path / "results", tmp_path / "lb"
    write(out / "records", make_record("tok_a", 29.8))  # published
    leaderboard.write_all(results, out)
    page = (out / "toy.md").read_text()
    assert "29.80" in page and leaderboard.check(results, out) == []

    local = make_record("tok_a", 28.5, created="2026-05-01T00:00:00+00:00") | {"config_hash": "aaaaaaaaaaaa"}
    write(results, local)
    page = leaderboard.write_leaderboard("toy", results, out).read_text()
    assert "28.50" in page and "29.80 (tok_a)" not in page  # the newest record wins

    assert leaderboard.publish(results, out) == [out / "records" / "toy" / "records" / "tok_a-aaaaaaaaaaaa.json"]
    assert leaderboard.publish(results, out) == []  # already there
