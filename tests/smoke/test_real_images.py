"""A folder of real photographs in ImageNet layout, with the files real data sets contain: truncated,
empty and foreign files, 16-bit, palette, alpha, CMYK and grayscale images, one smaller than the
target. The run skips, counts and names the bad ones, follows the suite's threshold, and shards merge."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skimage_data

from bench.errors import BenchError
from bench.config import compose
from bench.run import build_tokenizer, run_one

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "cat", "immunohistochemistry", "colorwheel", "hubble_deep_field")


@pytest.fixture(scope="module")
def imagenet_like(tmp_path_factory):
    """``root/val/<class>/<file>``: 8 colour photographs plus 5 odd formats, and 3 unreadable files."""
    root = tmp_path_factory.mktemp("imagenet")
    for k, name in enumerate(PHOTOS):
        folder = root / "val" / f"n0{k % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(getattr(skimage_data, name)()).save(folder / f"{name}.JPEG", quality=90)
    odd = root / "val" / "n09"
    odd.mkdir()
    Image.fromarray(skimage_data.camera().astype(np.uint16) * 257).save(odd / "gray16.png")
    Image.fromarray(skimage_data.astronaut()).quantize(32).save(odd / "palette.png")
    Image.fromarray(np.dstack([skimage_data.coffee(), np.full((400, 600), 200, np.uint8)])).save(odd / "alpha.png")
    Image.fromarray(skimage_data.chelsea()).convert("CMYK").save(odd / "cmyk.jpg")
    Image.fromarray(skimage_data.astronaut()[100:124, 200:220]).save(odd / "tiny.png")  # 20x24: upsampled
    (odd / "truncated.JPEG").write_bytes((root / "val" / "n00" / "astronaut.JPEG").read_bytes()[:5000])
    (odd / "empty.png").write_bytes(b"")
    (odd / "notes.jpg").write_text("an HTML error page saved as a .jpg\n")
    return root


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "vq_d4.pt"
    torch.save(build_tokenizer(compose(["tokenizer=vqvae_tiny_vq_d4"]).tokenizer).state_dict(), path)  # the config's model, untrained
    return path


def overrides(root, weights, *extra):
    return ("tokenizer=vqvae_tiny_vq_d4", "seed=0", "suite.dataset.kind=image_folder", f"suite.dataset.root={root}",
            "suite.dataset.eval_split=val", "suite.dataset.preprocessing=adm_center_crop", "suite.train.steps=0",
            f"tokenizer.checkpoint={weights}", "suite.eval.metrics=[psnr,ssim,usage]", "suite.eval.batch_size=4", *extra)  # fmt: skip


def test_bad_files_are_skipped_counted_and_named(compose_run, imagenet_like, weights):
    with pytest.raises(BenchError, match=r"more than 0.10% of the 16 items are unreadable .*empty.png"):
        run_one(compose_run(*overrides(imagenet_like, weights)))
    cfg = compose_run(*overrides(imagenet_like, weights, "suite.dataset.max_skipped=0.2", "suite.eval.num_workers=2"))
    path = run_one(cfg)
    record = json.loads(path.read_text())
    assert record["data"]["skipped"] == 3 and record["data"]["evaluated"] == 13 and record["data"]["listed"] == 16
    assert [name.rsplit("/", 1)[-1] for name in record["data"]["skipped_files"]] == ["empty.png", "notes.jpg", "truncated.JPEG"]
    assert record["data"]["upsampled"] == 1 and record["num_items"] == 13
    assert record["protocol"]["preprocessing"] == "adm_center_crop"
    # another loader worker count is the same measurement: the record is reused, not rerun
    assert run_one(compose_run(*overrides(imagenet_like, weights, "suite.dataset.max_skipped=0.2", "suite.eval.num_workers=0"))) == path


def test_sharded_evaluation_merges_to_the_single_pass(compose_run, imagenet_like, weights, tmp_path):
    options = overrides(imagenet_like, weights, "suite.dataset.max_skipped=0.2", "suite.eval.num_workers=0")
    single = json.loads(run_one(compose_run(*options)).read_text())
    sharded = json.loads(run_one(compose_run(*options, "eval_shards=3", f"output_dir={tmp_path / 'sharded'}")).read_text())
    assert sharded["data"] == single["data"]
    assert sharded["metrics"]["usage"] == single["metrics"]["usage"]
    for name in ("psnr", "ssim"):
        assert sharded["metrics"][name] == pytest.approx(single["metrics"][name], rel=1e-12)


@pytest.mark.slow  # Inception at 299 on the photographs, and 2048-d square roots
def test_a_second_run_reuses_the_reference_statistics(compose_run, imagenet_like, weights, random_inception, tmp_path, caplog):
    options = overrides(imagenet_like, weights, "suite.dataset.max_skipped=0.2", "suite.eval.num_workers=0", "suite.eval.metrics=[rfid,usage]",
                        f"+suite.eval.fid_weights.rfid={random_inception}")  # fmt: skip
    first = json.loads(run_one(compose_run(*options)).read_text())
    (cached,) = list((tmp_path / "results" / first["suite"] / "fid_reference").glob("rfid-*.pt"))
    with caplog.at_level("INFO", logger="bench.fid_reference"):
        second = json.loads(run_one(compose_run(*options, "seed=1")).read_text())  # another run of the same data
    assert f"real-image statistics from {cached}" in caplog.text
    assert "from the reference cache" in second["protocol"]["metrics"]["rfid"] and "cache" not in first["protocol"]["metrics"]["rfid"]
    assert second["metrics"]["rfid"] == pytest.approx(first["metrics"]["rfid"], rel=1e-9) and first["metrics"]["rfid"] > 0
