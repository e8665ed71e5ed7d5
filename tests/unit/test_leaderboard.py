"""Leaderboards from hand-made records: deterministic bytes, references with verdicts, seeds as
mean ± std, provenance and protocol deviations, figures from the table's own records, --check."""

from __future__ import annotations

import io
import json
import shutil
import statistics
import subprocess
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from bench import leaderboard
from bench.config import compose
from bench.errors import BenchError
from bench.records import config_hash

CLEAN_SHA = "0123456789abcdef0123456789abcdef01234567"
REFERENCE = {
    "tokenizer": "Paper VQ",
    "source": "Some et al. 2024, Table 1",
    "compares_with": "tok_a",
    "metrics": {"psnr": 30.0, "rfid": 10.0},
    "protocol": {"split": "val", "num_items": 50000, "resolution": 32},
}


def make_record(name: str, psnr: float, created: str = "2026-01-01T00:00:00+00:00", references=(REFERENCE,), config=None, seed=0) -> dict:
    """A record of the unconfigured suite ``toy`` (no protocol to compare with), or of ``config``."""
    config = config or {"suite": {"name": "toy", "description": "a toy suite", "references": list(references)}, "tokenizer": {"id": name}, "seed": seed}
    return {
        "suite": config["suite"]["name"],
        "tokenizer": name,
        "arch": "vqvae_simplecnn",
        "config_hash": config_hash(config),
        "git_sha": CLEAN_SHA,
        "seed": config["seed"],
        "split": "test",
        "num_items": 10,
        "metrics": {"psnr": psnr, "ssim": 0.5, "usage": 0.25, "usage_queue": 0.25, "perplexity": 3.0},
        "unavailable": {"rfid": "weights missing"},
        "protocol": {"split": "test", "num_items": 10, "input_shape": [3, 32, 32], "preprocessing": "none", "metrics": {"psnr": "per image"}},
        "rate": {"token_grid": [8, 8], "tokens": 64, "codebook_size": 512, "num_codebooks": 1, "bits_per_token": 9.0, "bits_per_pixel": 0.5625},
        "model": {},
        "checkpoint_sha256": None,
        "train": {"steps": 600},
        "wall_time_s": 1.0,
        "hardware": {"device": "cpu", "cpu": "some cpu", "torch": "2.x", "threads": 2},
        "config": config,
        "created": created,
    }


def builtin_record(tokenizer: str, psnr: float, *overrides: str, seed: int = 0, created: str = "2026-01-01T00:00:00+00:00") -> dict:
    """A record of the built-in suite whose config is what ``bench.run`` composes with ``overrides``."""
    config = OmegaConf.to_container(compose([f"tokenizer={tokenizer}", f"seed={seed}", *overrides]), resolve=True)
    return make_record(tokenizer, psnr, created=created, config=config)


def write(folder: Path, record: dict, samples: np.ndarray | None = None) -> None:
    base = folder / record["suite"]
    (base / "records").mkdir(parents=True, exist_ok=True)
    stem = f"{record['tokenizer']}-{record['config_hash']}"
    (base / "records" / f"{stem}.json").write_text(json.dumps(record))
    if samples is not None:
        (base / "samples").mkdir(exist_ok=True)
        buffer = io.BytesIO()
        np.savez(buffer, indices=np.arange(len(samples)), originals=samples, reconstructions=samples)
        (base / "samples" / f"{stem}.npz").write_bytes(buffer.getvalue())


def table_line(page: str, tokenizer: str) -> list[str]:
    """The table rows of ``tokenizer`` (its name in the first or, after the rank, second column)."""
    return [line for line in page.splitlines() if line.startswith("| ") and tokenizer in [cell.strip() for cell in line.split("|")[1:3]]]


def test_same_records_same_bytes_and_new_record_changes_only_its_row(tmp_path):
    results, out = tmp_path / "results", tmp_path / "lb"
    write(results, make_record("tok_a", 29.8))
    page = leaderboard.write_leaderboard("toy", results, out).read_text()
    assert leaderboard.write_leaderboard("toy", results, out).read_text() == page

    write(results, make_record("tok_b", 25.0))
    new_page = leaderboard.write_leaderboard("toy", results, out).read_text()
    added = [line for line in new_page.splitlines() if line not in page.splitlines() and not line.startswith(("Rows are ranked", "The 2 runs"))]
    assert len(added) == 1 and added[0].startswith("| 2 ") and "| tok_b " in added[0] and "25.00" in added[0]
    assert "| [toy](toy.md) | a toy suite | 2 | 1 |" in (out / "README.md").read_text()


def test_a_rerun_replaces_its_earlier_record(tmp_path):
    results = tmp_path / "results"
    write(results, make_record("tok_a", 20.0, created="2026-01-01T00:00:00+00:00"))
    rerun = make_record("tok_a", 21.0, created="2026-02-01T00:00:00+00:00")
    (results / "toy" / "records" / f"tok_a-{rerun['config_hash']}.json").write_text(json.dumps(rerun))
    page = leaderboard.write_leaderboard("toy", results, tmp_path / "lb").read_text()
    assert "21.00" in page and "20.00" not in page


def test_seeds_are_one_row_with_mean_and_sample_std(tmp_path):
    results = tmp_path / "results"
    psnrs = [24.0, 25.0, 27.0]
    for seed, psnr in enumerate(psnrs):
        write(results, builtin_record("vqvae_tiny_vq_d4", psnr, seed=seed))
    page = leaderboard.write_leaderboard("builtin", results, tmp_path / "lb").read_text()
    (line,) = table_line(page, "vqvae_tiny_vq_d4")
    assert f"{statistics.fmean(psnrs):.2f} ± {statistics.stdev(psnrs):.2f}" in line  # 25.33 ± 1.53
    assert "| 0,1,2 " in line and "local · 600 steps" in line and "protocol differs" not in line
    assert "mean ± sample standard deviation over the seeds" in page
    assert "fixed to 2 CPU threads" in page and "bit-exact" in page


def test_rows_are_ranked_and_neighbours_the_seeds_cannot_tell_apart_share_a_rank(tmp_path):
    results = tmp_path / "results"
    for tokenizer, psnrs in {"vqvae_tiny_vq_d4": [24.0, 24.2], "vqvae_tiny_ema_d64": [24.3, 24.5], "vqvae_tiny_fsq_8555": [26.0, 26.1], "vqvae_tiny_lfq_12": [20.0, 20.1]}.items():
        for seed, psnr in enumerate(psnrs):
            write(results, builtin_record(tokenizer, psnr, seed=seed))
    page = leaderboard.write_leaderboard("builtin", results, tmp_path / "lb").read_text()
    ranks = {name: table_line(page, name)[0].split("|")[1].strip() for name in ("vqvae_tiny_fsq_8555", "vqvae_tiny_ema_d64", "vqvae_tiny_vq_d4", "vqvae_tiny_lfq_12")}
    # ema 24.4 ± 0.14 and vq_d4 24.1 ± 0.14: a gap of 0.3 is larger than 0.28, so separated
    assert ranks == {"vqvae_tiny_fsq_8555": "1", "vqvae_tiny_ema_d64": "2", "vqvae_tiny_vq_d4": "3", "vqvae_tiny_lfq_12": "4"}
    write(results, builtin_record("vqvae_tiny_vq_d4", 24.4, seed=2))  # vq_d4: 24.2 ± 0.2, now within reach of ema
    page = leaderboard.write_leaderboard("builtin", results, tmp_path / "lb").read_text()
    assert [table_line(page, name)[0].split("|")[1].strip() for name in ("vqvae_tiny_ema_d64", "vqvae_tiny_vq_d4")] == ["2–3", "2–3"]
    assert "ranked by mean PSNR" in page and "not separated" in page
    lines = page.splitlines()
    assert lines.index(table_line(page, "vqvae_tiny_fsq_8555")[0]) < lines.index(table_line(page, "vqvae_tiny_lfq_12")[0])


def test_a_deviating_run_never_replaces_the_protocol_row(tmp_path):
    """The newcomer's path: the suite's row, then a shortened rerun of the same tokenizer."""
    results, out = tmp_path / "results", tmp_path / "lb"
    write(results, builtin_record("vqvae_tiny_fsq_8555", 25.98))
    shortened = builtin_record("vqvae_tiny_fsq_8555", 16.74, "suite.train.steps=30", created="2026-06-01T00:00:00+00:00")
    shortened["data"] = {"skipped": 2, "upsampled": 0, "padded": 0, "skipped_files": ["a.png", "b.png"]}
    write(results, shortened)
    write(results, builtin_record("vqvae_tiny_vq_d4", 24.0, seed=7))  # a seed the suite does not list

    page = leaderboard.write_leaderboard("builtin", results, out).read_text()
    (line,) = table_line(page, "vqvae_tiny_fsq_8555")
    assert "25.98" in line and "16.74" not in page.split("Not shown")[0]
    assert "Not shown: 2 runs whose protocol differs" in page and "--include-deviating" in page
    assert "- vqvae_tiny_fsq_8555 (seeds 0): train.steps 30 vs 700 (2 skipped images: `a.png`, `b.png`)\n" in page  # its skipped files too
    assert "- vqvae_tiny_vq_d4 (seeds 7): seed 7 not among the suite's seeds 0,1,2" in page
    assert not table_line(page, "vqvae_tiny_vq_d4")

    page = leaderboard.write_leaderboard("builtin", results, out, include_deviating=True).read_text()
    first, second = table_line(page, "vqvae_tiny_fsq_8555")
    assert "25.98" in first and "protocol differs" not in first
    assert "16.74" in second and "**protocol differs: train.steps 30 vs 700**" in second


def test_an_unknown_tokenizer_and_changed_kwargs_are_deviations(tmp_path):
    results = tmp_path / "results"
    write(results, builtin_record("vqvae_tiny_vq_d4", 24.0, "tokenizer.kwargs.codebook_dim=8"))
    renamed = builtin_record("vqvae_tiny_vq_d4", 23.0, "tokenizer.id=my_own")
    renamed["tokenizer"] = "my_own"
    write(results, renamed)
    page = leaderboard.write_leaderboard("builtin", results, tmp_path / "lb").read_text()
    assert "tokenizer.kwargs.codebook_dim 8 vs 4" in page
    assert "tokenizer my_own has no config in bench/conf/tokenizer" in page


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

    write(results, make_record("tok_a", 28.0, created="2026-03-01T00:00:00+00:00", seed=1))
    page = leaderboard.write_leaderboard("toy", results, tmp_path / "lb").read_text()
    assert "28.90 ± 1.27 (tok_a)" in page and "differs (tol 0.3)" in page  # the mean over seeds is compared


def test_check_detects_stale_pages_and_dirty_records(tmp_path):
    out = tmp_path / "lb"
    write(out / "records", make_record("tok_a", 29.8))
    leaderboard.write_all(None, out)  # the configured suites' reference-only pages too
    assert leaderboard.check(out) == []
    imagenet = (out / "imagenet256.md").read_text()
    assert "No run records yet" in imagenet and "not measured" in imagenet and "split=val" in imagenet
    write(out / "records", make_record("tok_b", 25.0))
    assert any(str(out / "toy.md") in problem for problem in leaderboard.check(out))
    leaderboard.write_all(None, out)
    write(out / "records", make_record("tok_b", 25.0) | {"git_sha": CLEAN_SHA + "-dirty"})
    leaderboard.write_all(None, out)
    (problem,) = leaderboard.check(out)
    assert problem.startswith("not from a clean commit") and "-dirty" in problem


def test_local_runs_write_their_own_pages_and_leave_the_committed_ones(tmp_path):
    """A local record and a failed run change the pages among the results, never the committed ones,
    which `check` judges by the published records alone; no page names the home folder."""
    results, out = tmp_path / "results", tmp_path / "lb"
    write(out / "records", make_record("tok_a", 29.8))
    leaderboard.write_all(None, out)
    committed = {path: path.read_bytes() for path in out.glob("*.md")}
    write(results, make_record("tok_b", 25.0))
    note = results / "toy" / "not_run" / "tok_c.json"
    note.parent.mkdir(parents=True)
    note.write_text(json.dumps({"tokenizer": "tok_c", "seed": 0, "error": "x.ckpt is not on this machine: put it at /home/me/.cache/torch/x.ckpt"}))
    page = leaderboard.write_leaderboard("toy", results, out, pages_dir=results / "leaderboards").read_text()
    assert table_line(page, "tok_a") and table_line(page, "tok_b") and "put it at ~/.cache/torch/x.ckpt" in page and "/home/me" not in page
    assert {path: path.read_bytes() for path in out.glob("*.md")} == committed and leaderboard.check(out) == []


def test_local_records_replace_published_rows_and_publish_copies_them(tmp_path):
    results, out = tmp_path / "results", tmp_path / "lb"
    write(out / "records", make_record("tok_a", 29.8))  # published
    leaderboard.write_all(results, out)
    page = (out / "toy.md").read_text()
    assert "29.80" in page and "published · 600 steps" in page and leaderboard.check(out) == []

    local = make_record("tok_a", 28.5, created="2026-05-01T00:00:00+00:00")  # a rerun of the same config
    write(results, local)
    page = leaderboard.write_leaderboard("toy", results, out).read_text()
    assert "28.50" in page and "29.80 (tok_a)" not in page and "local · 600 steps" in page

    target = out / "records" / "toy" / "records" / f"tok_a-{local['config_hash']}.json"
    assert leaderboard.publish(results, out) == [target]
    assert json.loads(target.read_text())["metrics"]["psnr"] == 28.5
    assert leaderboard.publish(results, out) == []  # already there

    write(results, make_record("tok_c", 20.0) | {"git_sha": CLEAN_SHA + "-dirty"})
    with pytest.raises(BenchError, match="uncommitted code: tok_c"):
        leaderboard.publish(results, out)


def test_figures_come_from_the_records_the_table_shows(tmp_path, monkeypatch):
    """A published record and a newer local rerun of the same config each have samples: the grid
    takes the local one's, as the table does; a hidden deviating run is not drawn."""
    results, out = tmp_path / "results", tmp_path / "lb"
    black, white, grey = (np.full((2, 32, 32, 3), v, dtype=np.uint8) for v in (0, 255, 128))
    write(out / "records", builtin_record("vqvae_tiny_vq_d4", 24.0), black)
    write(results, builtin_record("vqvae_tiny_vq_d4", 25.0, created="2026-02-01T00:00:00+00:00"), white)
    write(results, builtin_record("vqvae_tiny_vq_d64", 20.0, "suite.train.steps=30"), grey)
    drawn = {}
    monkeypatch.setattr(leaderboard.plots, "reconstruction_grid", lambda originals, rows, path, columns: drawn.update(rows))
    monkeypatch.setattr(leaderboard.plots, "rate_distortion", lambda points, label, path: drawn.update(points=points))
    leaderboard.write_leaderboard("builtin", results, out)
    assert set(drawn) == {"vqvae_tiny_vq_d4", "points"}
    assert (drawn["vqvae_tiny_vq_d4"] == 255).all()
    assert [p["label"] for p in drawn["points"]] == ["vqvae_tiny_vq_d4"] and drawn["points"][0]["metrics"]["psnr"] == (25.0, None)


def test_leaderboard_leaves_no_lock_among_the_pages(tmp_path):
    results, out = tmp_path / "results", tmp_path / "lb"
    write(results, make_record("tok_a", 29.8))
    leaderboard.write_all(results, out)
    assert not [p for p in out.rglob(".*")]


def test_queue_usage_is_shown_only_where_it_differs_from_usage(tmp_path):
    results, out = tmp_path / "results", tmp_path / "lb"
    write(results, make_record("tok_a", 29.8))
    page = leaderboard.write_leaderboard("toy", results, out).read_text()
    assert "usage (queue)" not in page.split("## Published numbers")[0].split("Metric conventions")[0]
    assert "| 8x8 (64) " in table_line(page, "tok_a")[0]
    differing = make_record("tok_b", 25.0)
    differing["metrics"]["usage_queue"] = 0.125
    write(results, differing)
    page = leaderboard.write_leaderboard("toy", results, out).read_text()
    assert "usage (queue) ↑" in page and "12.5%" in table_line(page, "tok_b")[0]


def test_unstated_protocol_fields_are_unknown_and_the_fid_backend_is_compared():
    record = make_record("tok_a", 29.8)  # test split, 10 items, 32 px, preprocessing none
    stated = {"tokenizer": "Paper", "source": "s", "metrics": {}, "protocol": {"split": "test", "num_items": 10, "resolution": 32, "fid_backend": "pytorch-fid"}}
    assert leaderboard.protocol_differences(stated, record, "psnr") == "unknown: preprocessing not stated"
    assert leaderboard.protocol_differences(stated, record, "rfid") == "fid_backend: paper pytorch-fid, here torch-fidelity; unknown: preprocessing not stated"
    stated["protocol"] |= {"preprocessing": "none", "num_items": 50000}
    assert leaderboard.protocol_differences(stated, record, "rfid_pytorch") == "num_items: paper 50000, here 10"
    stated["protocol"]["num_items"] = 10
    assert leaderboard.protocol_differences(stated, record, "rfid_pytorch") == "no"
    without_backend = {**stated, "protocol": {k: v for k, v in stated["protocol"].items() if k != "fid_backend"}}
    assert leaderboard.protocol_differences(without_backend, record, "rfid") == "unknown: fid_backend not stated"


def test_tolerances_list_only_the_metrics_of_the_reference_rows(tmp_path):
    results = tmp_path / "results"
    write(results, make_record("tok_a", 29.8))
    page = leaderboard.write_leaderboard("toy", results, tmp_path / "lb").read_text()
    assert "Tolerances: rFID ↓ 0.2 or 10%, PSNR ↑ 0.3." in page  # REFERENCE has psnr and rfid only


def git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@t", *args], check=True, capture_output=True, text=True).stdout.strip()


def test_check_verifies_published_commits_against_the_history(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    out = repo / "lb"
    out.mkdir(parents=True)
    git(repo, "init", "-q")
    git(repo, "commit", "-q", "--allow-empty", "-m", "first")
    head = git(repo, "rev-parse", "HEAD")
    write(out / "records", make_record("tok_a", 29.8) | {"git_sha": head})
    leaderboard.write_all(None, out)
    assert leaderboard.history_unavailable(out) is None and leaderboard.check(out) == []
    write(out / "records", make_record("tok_b", 25.0) | {"git_sha": CLEAN_SHA})  # clean-looking, but no such commit here
    leaderboard.write_all(None, out)
    (problem,) = leaderboard.check(out)
    assert problem.startswith("from a commit not in this history") and CLEAN_SHA in problem

    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "records")
    shallow = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{repo}", str(shallow)], check=True)
    assert leaderboard.history_unavailable(shallow / "lb") == "a shallow clone"
    assert leaderboard.check(shallow / "lb") == []  # cannot tell, so no failure
    assert "not in a git repository" in leaderboard.history_unavailable(tmp_path / "elsewhere")
