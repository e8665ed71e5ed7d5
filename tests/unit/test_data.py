"""Dataset loaders on real image files that the tests write (from scikit-image's photographs)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skimage_data

from bench.data import build_dataset
from bench.data.transforms import adm_center_crop, resize_center_crop
from bench.errors import BenchError


def dataset_cfg(**overrides):
    base = dict(kind="image_folder", root=None, resolution=64, preprocessing="resize_center_crop", center_crop=None, max_items=None)
    return SimpleNamespace(**{**base, **overrides})


def test_builtin_split_is_by_photograph_and_deterministic():
    cfg = dataset_cfg(kind="builtin_photos", resolution=32)
    train, test = build_dataset(cfg, "train"), build_dataset(cfg, "test")
    assert (len(train), len(test)) == (448, 192)
    assert torch.equal(build_dataset(cfg, "test").images, test.images)
    assert test.images.min() >= -1 and test.images.max() <= 1
    # no test crop appears in the training split
    assert not (test.images[:, None] == train.images[None]).flatten(2).all(-1).any()


def test_image_folder_reads_real_files(tmp_path):
    folder = tmp_path / "val" / "n01440764"
    folder.mkdir(parents=True)
    Image.fromarray(skimage_data.astronaut()).save(folder / "a.png")
    Image.fromarray(skimage_data.chelsea()).save(folder / "b.jpg", quality=95)
    Image.fromarray(skimage_data.camera()).save(folder / "c.png")  # grayscale -> RGB
    dataset = build_dataset(dataset_cfg(root=str(tmp_path)), "val")
    assert len(dataset) == 3
    x = dataset[1]
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32
    expected = np.asarray(resize_center_crop(Image.fromarray(skimage_data.chelsea()), 64), dtype=np.float32)
    assert abs(float(x.permute(1, 2, 0).add(1).mul(127.5).mean()) - expected.mean()) < 2.0  # JPEG round trip
    assert torch.equal(dataset[2][0], dataset[2][1])
    assert len(build_dataset(dataset_cfg(root=str(tmp_path), max_items=2), "val")) == 2


def test_preprocessing_resizes_and_crops_to_square():
    image = Image.fromarray(skimage_data.coffee())  # 600x400
    for transform in (resize_center_crop, adm_center_crop):
        assert transform(image, 100).size == (100, 100)
    # ADM halves with a box filter first, then resizes bicubically: not the same pixels as a direct resize
    assert not np.array_equal(np.asarray(adm_center_crop(image, 100)), np.asarray(resize_center_crop(image, 100)))


def test_celeba_partition(tmp_path):
    images = tmp_path / "img_align_celeba"
    images.mkdir()
    face = skimage_data.astronaut()[:218, :178]
    lines = []
    for i in range(5):
        name = f"{i + 1:06d}.jpg"
        Image.fromarray(np.roll(face, i * 7, axis=1)).save(images / name)
        lines.append(f"{name} {0 if i < 3 else 2}")
    (tmp_path / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    cfg = dataset_cfg(kind="celeba", root=str(tmp_path), center_crop=140)
    assert len(build_dataset(cfg, "train")) == 3
    test = build_dataset(cfg, "test")
    assert len(test) == 2 and test[0].shape == (3, 64, 64)


def test_missing_root_and_unknown_kind_are_clear():
    with pytest.raises(BenchError, match="suite.dataset.root is not set"):
        build_dataset(dataset_cfg(), "val")
    with pytest.raises(BenchError, match="unknown dataset kind"):
        build_dataset(dataset_cfg(kind="imagenet_tar"), "val")
