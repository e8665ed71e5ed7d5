"""The whole path on the built-in suite, shrunk: train, evaluate, record, leaderboard, rerun, kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench.leaderboard import write_leaderboard
from bench.run import run_one
from implementations.checkpoints import sha256_of
from tests.conftest import TINY

REPO = Path(__file__).resolve().parents[2]


def test_run_writes_record_and_leaderboard(compose_run, tmp_path):
    cfg = compose_run("tokenizer=vqvae_tiny_vq_d4", *TINY)
    path = run_one(cfg)
    record = json.loads(path.read_text())
    assert record["tokenizer"] == "vqvae_tiny_vq_d4" and record["num_items"] == 16
    assert 5 < record["metrics"]["psnr"] < 40
    assert 0 < record["metrics"]["usage"] <= 1
    assert record["rate"]["token_grid"] == [8, 8] and record["rate"]["bits_per_token"] == 9
    assert set(record["protocol"]["metrics"]) >= {"psnr", "ssim", "usage"}
    assert record["train"]["steps"] == 4 and len(record["checkpoint_sha256"]) == 64

    board = write_leaderboard("builtin", tmp_path / "results", tmp_path / "leaderboards").read_text()
    assert board.startswith("<!-- Generated") and "| vqvae_tiny_vq_d4" not in board  # shrunk: not the suite's protocol
    assert "- vqvae_tiny_vq_d4 (seeds 0): dataset.max_items 16 vs None; train.batch_size 8 vs 32; train.steps 4 vs 700" in board
    board = write_leaderboard("builtin", tmp_path / "results", tmp_path / "leaderboards", include_deviating=True).read_text()
    (row,) = [line for line in board.splitlines() if line.startswith("| ") and "| vqvae_tiny_vq_d4 " in line]
    assert f"{record['metrics']['psnr']:.2f}" in row and "local · 4 steps" in row and "**protocol differs:" in row

    # A rerun of the same config finds the record and does nothing.
    stamp = path.stat().st_mtime_ns
    assert run_one(cfg) == path and path.stat().st_mtime_ns == stamp


def test_redo_retrains_and_reevaluate_reuses_the_weights(compose_run):
    path = run_one(compose_run("tokenizer=vqvae_tiny_vq_d4", *TINY))
    weights = path.parent.parent / "checkpoints" / path.name.replace(".json", ".pt")
    first_weights, first_record = weights.stat().st_mtime_ns, path.stat().st_mtime_ns

    run_one(compose_run("tokenizer=vqvae_tiny_vq_d4", *TINY, "reevaluate=true"))
    assert weights.stat().st_mtime_ns == first_weights and path.stat().st_mtime_ns != first_record

    train_state = weights.with_suffix(".train.pt")
    redone = json.loads(run_one(compose_run("tokenizer=vqvae_tiny_vq_d4", *TINY, "redo=true")).read_text())
    assert weights.stat().st_mtime_ns != first_weights and train_state.exists()
    assert redone["train"]["steps"] == 4 and "wall_time_s" in redone["train"]  # trained in this run, not loaded


def test_rerun_after_eval_reuses_trained_weights(compose_run):
    cfg = compose_run("tokenizer=vqvae_tiny_ema_d64", *TINY)
    path = run_one(cfg)
    weights = next((path.parent.parent / "checkpoints").glob("vqvae_tiny_ema_d64-*[0-9a-f].pt"))
    first = json.loads(path.read_text())
    path.unlink()  # as if the evaluation had been killed
    stamp = weights.stat().st_mtime_ns
    second = json.loads(run_one(cfg).read_text())
    assert weights.stat().st_mtime_ns == stamp  # not retrained
    assert second["metrics"]["psnr"] == first["metrics"]["psnr"]
    assert second["checkpoint_sha256"] == first["checkpoint_sha256"]
    assert second["train"]["wall_time_s"] == first["train"]["wall_time_s"] > 0  # the training's, kept in its state


def bench_run(tmp_path, *overrides, **popen):
    command = [sys.executable, "-m", "bench.run", f"output_dir={tmp_path / 'results'}", f"leaderboard_dir={tmp_path / 'lb'}", *overrides]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def test_killed_run_leaves_no_record_and_rerun_completes(tmp_path):
    overrides = ("tokenizer=vqvae_tiny_vq_d64", "seed=0", "suite.train.steps=400", "suite.train.checkpoint_every=5", "suite.train.batch_size=8", "suite.dataset.max_items=16")
    process = bench_run(tmp_path, *overrides)
    checkpoints = tmp_path / "results" / "builtin" / "checkpoints"
    deadline = time.time() + 120
    while not list(checkpoints.glob("*.train.pt")) and time.time() < deadline:
        time.sleep(0.2)
    assert list(checkpoints.glob("*.train.pt")), "training never checkpointed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    records = tmp_path / "results" / "builtin" / "records"
    assert not records.exists() or not list(records.iterdir())

    # The rerun resumes from the checkpoint (fewer than 400 steps left) and writes the record.
    done = bench_run(tmp_path, *overrides)
    _, err = done.communicate(timeout=600)
    assert done.returncode == 0, err
    resumed_from = int(err.split("train:")[1].split("/400")[0].split("|")[-1])
    assert resumed_from >= 5
    (record,) = list(records.glob("*.json"))
    assert json.loads(record.read_text())["train"]["steps"] == 400


def one_line_error(tmp_path, *overrides) -> str:
    process = bench_run(tmp_path, *overrides)
    _, err = process.communicate(timeout=300)
    assert process.returncode != 0
    assert "Traceback" not in err, err
    return err


def test_bad_config_value_is_one_clear_error(tmp_path):
    composition_errors = {  # Hydra's reports of these are 7 to 37 lines
        ("suite.train.steps=many",): "suite.train.steps: Value 'many' of type 'str' could not be converted to Integer",
        ("suite.train.stpes=3",): "unknown config key: suite.train.stpes (did you mean steps?)",
        ("suite=nonexistent",): "suite=nonexistent: no such suite in bench/conf/suite/ (choose from builtin, builtin_speech, celeba64, imagenet128, imagenet256)",
        ("suite=imagenet265",): "suite=imagenet265: no such suite in bench/conf/suite/ (did you mean imagenet256 or imagenet128?)",
        ("tokenizer=vqvae_tiny_vq_d5",): "tokenizer=vqvae_tiny_vq_d5: no such tokenizer in bench/conf/tokenizer/ (did you mean vqvae_tiny_vq_d4, vqvae_tiny_vq_d64 or vqvae_tiny_vq_d64_l2?)",
        ("tokenizer=vqvae_tiny_vq_d4", "recipe@tokenizer.recipe=tamming_vqgan"): "recipe=tamming_vqgan: no such recipe in bench/conf/recipe/ (did you mean taming_vqgan or maskgit_vqgan?)",
    }
    for overrides, line in composition_errors.items():
        assert one_line_error(tmp_path, *overrides) == f"error: {line}\n"
    # Hydra's own hint for a misspelt key is to add it with "+": still refused, in one line.
    err = one_line_error(tmp_path, "tokenizer=vqvae_tiny_vq_d4", "+suite.trian.steps=5")
    assert err.strip() == "error: unknown config key: suite.trian (did you mean train?)"
    assert "error: unknown config key: foo\n" in one_line_error(tmp_path, "+foo=1", "tokenizer=vqvae_tiny_vq_d4")
    assert "tokenizer.recipe.optimizer.name='sgd': choose one of adam, adamw" in one_line_error(tmp_path, "tokenizer=vqvae_tiny_vq_d4", "tokenizer.recipe.optimizer.name=sgd")
    assert "choose one of hinge, non_saturating" in one_line_error(tmp_path, "tokenizer=vqvae_tiny_vq_d4", "tokenizer.recipe.adversarial.loss=wgan")
    assert "could not be converted to Float" in one_line_error(tmp_path, "tokenizer=vqvae_tiny_vq_d4", "tokenizer.recipe.l1_weight=heavy")


def test_missing_dataset_folder_is_one_clear_error(tmp_path):
    err = one_line_error(tmp_path, "tokenizer=vqvae_tiny_vq_d4", "suite.dataset.kind=image_folder", f"suite.dataset.root={tmp_path / 'nowhere'}")
    assert f"dataset folder {tmp_path / 'nowhere' / 'test'} does not exist" in err


def test_bad_images_are_one_clear_error(tmp_path):
    test_split = tmp_path / "data" / "test"
    test_split.mkdir(parents=True)
    Image.fromarray(np.zeros((40, 48, 3), np.uint8)).save(test_split / "wide.png")
    unused = tmp_path / "unused.pt"  # never loaded: the data fails first
    unused.write_bytes(b"weights")
    common = ("tokenizer=vqvae_tiny_vq_d4", "seed=0", "suite.dataset.kind=image_folder", f"suite.dataset.root={tmp_path / 'data'}", "suite.train.steps=0", f"tokenizer.checkpoint={unused}")
    err = one_line_error(tmp_path, *common, "suite.dataset.preprocessing=none")
    assert "wide.png: image is 48x40, expected 32x32" in err

    (test_split / "wide.png").write_bytes(b"not a png at all")
    err = one_line_error(tmp_path, *common)
    assert "no readable item" in err and "wide.png (UnidentifiedImageError" in err

    Image.fromarray(np.zeros((30, 30, 3), np.uint8)).save(test_split / "wide.png")
    err = one_line_error(tmp_path, *common, "suite.dataset.resolution=30")
    assert "cannot tokenize the suite's items of shape (3, 30, 30)" in err


def test_fixed_threads_make_a_rerun_bit_exact_whatever_the_environment(tmp_path):
    """The built-in suite fixes 2 threads: OMP_NUM_THREADS=1 in the environment changes nothing.
    (Without the fix, 1 and 2 threads give different weights: checked by removing `cpu_threads`.)"""
    overrides = ("tokenizer=vqvae_tiny_vq_d4", *TINY, "suite.train.steps=20", "suite.dataset.max_items=64", "suite.train.batch_size=16")
    shas, errors = [], []
    for threads in ("1", "2"):
        process = bench_run(tmp_path / threads, *overrides, env={**os.environ, "OMP_NUM_THREADS": threads})
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        (record,) = (tmp_path / threads / "results" / "builtin" / "records").glob("*.json")
        record = json.loads(record.read_text())
        shas.append(record["checkpoint_sha256"])
        assert record["hardware"]["threads"] == 2 and record["protocol"]["threads"] == 2
        errors.append(err)
    assert shas[0] == shas[1]
    assert "\r" not in errors[0] and any(line.startswith("train: 100%") for line in errors[0].splitlines())  # a log line per update


def test_a_checkpoint_counts_by_its_content_not_its_path(compose_run, tmp_path):
    trained = run_one(compose_run("tokenizer=vqvae_tiny_vq_d4", *TINY))
    weights = trained.parent.parent / "checkpoints" / trained.name.replace(".json", ".pt")
    first = tmp_path / "a.pt"
    first.write_bytes(weights.read_bytes())
    evaluate = ("tokenizer=vqvae_tiny_vq_d4", *TINY)
    record = run_one(compose_run(*evaluate, f"tokenizer.checkpoint={first}"))
    moved = tmp_path / "elsewhere" / "b.pt"
    moved.parent.mkdir()
    first.rename(moved)
    assert run_one(compose_run(*evaluate, f"tokenizer.checkpoint={moved}")) == record  # same content: same record, skipped

    other = run_one(compose_run("tokenizer=vqvae_tiny_vq_d4", *TINY, "seed=1"))  # other weights, written over the same path
    moved.write_bytes((other.parent.parent / "checkpoints" / other.name.replace(".json", ".pt")).read_bytes())
    replaced = run_one(compose_run(*evaluate, f"tokenizer.checkpoint={moved}"))
    assert replaced != record and json.loads(replaced.read_text())["checkpoint_sha256"] == sha256_of(moved)


def test_a_tokenizer_whose_weights_are_missing_is_named_on_the_page(tmp_path):
    """The run goes on past it, and the page says which file is missing in its place."""
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "torch"), "HF_HOME": str(tmp_path / "hf")}
    process = bench_run(tmp_path, "suite.tokenizers=[vqvae_tiny_vq_d4,llamagen_vq_16]", *TINY, env=env)
    out, err = process.communicate(timeout=600)
    assert process.returncode == 2 and "run 2 of 2: llamagen_vq_16, seed 0: tokenizer llamagen_vq_16: vq_ds16_c2i.pt" in out
    assert err.splitlines()[-1] == f"error: 1 of 2 runs failed, each said why above; page {tmp_path / 'lb' / 'builtin.md'}"
    page = (tmp_path / "lb" / "builtin.md").read_text()
    assert "Not run here" in page and "- llamagen_vq_16: tokenizer llamagen_vq_16: vq_ds16_c2i.pt" in page
    assert "| vqvae_tiny_vq_d4 |" in page or "vqvae_tiny_vq_d4 (seeds 0)" in page  # shown, or listed as deviating (4 steps)
