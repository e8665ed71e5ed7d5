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
    assert (len(train), len(test)) == (1605, 690)  # half-crop stride: four alignments per photograph
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


# Pixel formats: each converted as scikit-image / PIL read the same file (real photographs re-encoded).


def _read_back(path):
    from bench.data.images import read_rgb

    return np.asarray(read_rgb(path))


def test_16_bit_grayscale_keeps_its_high_byte_as_skimage_does(tmp_path):
    from skimage.io import imread
    from skimage.util import img_as_ubyte

    camera16 = skimage_data.camera().astype(np.uint16) * 257 + 128  # full 16-bit range, real content
    Image.fromarray(camera16).save(tmp_path / "gray16.png")
    assert Image.open(tmp_path / "gray16.png").mode.startswith("I")
    ours = _read_back(tmp_path / "gray16.png")
    expected = img_as_ubyte(imread(tmp_path / "gray16.png"))
    assert ours.shape == (*camera16.shape, 3) and np.array_equal(ours[..., 0], expected) and np.array_equal(ours[..., 2], expected)
    assert 0 < ours.mean() < 250  # PIL's convert("RGB") alone makes it white


def test_16_bit_rgb_palette_alpha_cmyk_and_grayscale(tmp_path):
    cv2 = pytest.importorskip("cv2")
    from skimage.io import imread
    from skimage.util import img_as_ubyte

    photo = skimage_data.astronaut()[::4, ::4]
    cv2.imwrite(str(tmp_path / "rgb16.png"), (photo.astype(np.uint16) * 257)[..., ::-1])  # 48-bit PNG
    assert np.array_equal(_read_back(tmp_path / "rgb16.png"), img_as_ubyte(imread(tmp_path / "rgb16.png")))

    palette = Image.fromarray(photo).quantize(64)
    palette.save(tmp_path / "palette.png")
    assert np.array_equal(_read_back(tmp_path / "palette.png"), np.asarray(palette.convert("RGB")))

    rgba = np.dstack([photo, np.full(photo.shape[:2], 90, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "alpha.png")
    assert np.array_equal(_read_back(tmp_path / "alpha.png"), photo)  # alpha dropped, as the papers' loaders do

    Image.fromarray(photo).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=100)
    assert np.abs(_read_back(tmp_path / "cmyk.jpg").astype(int) - photo).mean() < 3

    Image.fromarray(skimage_data.camera()).save(tmp_path / "gray.png")
    assert np.array_equal(_read_back(tmp_path / "gray.png"), np.repeat(skimage_data.camera()[..., None], 3, axis=2))


def test_preprocessing_modes_match_their_references():
    import torchvision.transforms as T
    from bench.data.transforms import smallest_side_bilinear

    cv2 = pytest.importorskip("cv2")
    image = Image.fromarray(skimage_data.coffee())  # 600x400
    torchvision_way = T.Compose([T.Resize(100, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(100)])(image)
    assert np.array_equal(np.asarray(resize_center_crop(image, 100)), np.asarray(torchvision_way))
    # taming: albumentations SmallestMaxSize (cv2 INTER_LINEAR, rounded sides) + CenterCrop
    for size in (100, 256, 500):  # down, down, up
        scale = size / 400
        resized = cv2.resize(skimage_data.coffee(), (round(600 * scale), round(400 * scale)), interpolation=cv2.INTER_LINEAR)
        top, left = (resized.shape[0] - size) // 2, (resized.shape[1] - size) // 2
        expected = resized[top : top + size, left : left + size].astype(int)
        ours = np.asarray(smallest_side_bilinear(image, size)).astype(int)
        assert np.abs(ours - expected).max() <= 1 and np.abs(ours - expected).mean() < 0.3


def test_small_images_are_noted(tmp_path):
    from bench.data.items import Noted

    folder = tmp_path / "val" / "a"
    folder.mkdir(parents=True)
    Image.fromarray(skimage_data.astronaut()[:20, :24]).save(folder / "small.png")
    Image.fromarray(skimage_data.astronaut()[:100, :80]).save(folder / "face.png")
    dataset = build_dataset(dataset_cfg(root=str(tmp_path), resolution=32, preprocessing="adm_center_crop"), "val")
    assert isinstance(dataset[1], Noted) and dataset[1].note == "upsampled" and dataset[1].x.shape == (3, 32, 32)
    assert isinstance(dataset[0], torch.Tensor)
    cropped = build_dataset(dataset_cfg(root=str(tmp_path), resolution=32, center_crop=90), "val")
    assert cropped[0].note == "padded"  # 80 wide < 90: black bars, as torchvision's CenterCrop pads


def test_unreadable_files_are_skipped_with_the_reason(tmp_path):
    from bench.data.items import Skipped, collate

    folder = tmp_path / "val" / "a"
    folder.mkdir(parents=True)
    Image.fromarray(skimage_data.chelsea()).save(folder / "a_good.jpg")
    (folder / "b_truncated.jpg").write_bytes((folder / "a_good.jpg").read_bytes()[:3000])
    (folder / "c_empty.png").write_bytes(b"")
    dataset = build_dataset(dataset_cfg(root=str(tmp_path)), "val")
    items = [dataset[i] for i in range(3)]
    assert [type(item).__name__ for item in items] == ["Tensor", "Skipped", "Skipped"]
    assert "truncated" in items[1].reason.lower() and items[1].source.endswith("b_truncated.jpg")
    batch = collate(items)
    assert batch.x.shape == (1, 3, 64, 64) and [s.index for s in batch.skipped] == [1, 2]
    assert isinstance(batch.skipped[0], Skipped)


def _shards(folder_root, shard_root, per_shard: int = 3) -> None:
    """Write the images of ``folder_root/val`` as webdataset shards ``shard_root/val/000000.tar``, ..."""
    import tarfile

    files = sorted((folder_root / "val").rglob("*.*"))
    (shard_root / "val").mkdir(parents=True)
    for start in range(0, len(files), per_shard):
        with tarfile.open(shard_root / "val" / f"{start // per_shard:06d}.tar", "w") as archive:
            for path in files[start : start + per_shard]:
                key = f"{path.parent.name}_{path.stem}"
                archive.add(path, arcname=f"{key}{path.suffix}")
                label = path.parent / f"{path.stem}.cls.txt"
                label.write_text(path.parent.name)
                archive.add(label, arcname=f"{key}.cls")
                label.unlink()


def test_webdataset_shards_give_the_folder_images(tmp_path):
    folder = tmp_path / "folder" / "val"
    for k, name in enumerate(("astronaut", "chelsea", "coffee", "rocket", "cat")):
        (folder / f"n0{k % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(getattr(skimage_data, name)()).save(folder / f"n0{k % 2}" / f"{name}.JPEG", quality=90)
    (folder / "n00" / "zz_broken.JPEG").write_bytes((folder / "n00" / "astronaut.JPEG").read_bytes()[:4000])
    _shards(tmp_path / "folder", tmp_path / "shards")
    images = build_dataset(dataset_cfg(root=str(tmp_path / "folder"), preprocessing="adm_center_crop"), "val")
    shards = build_dataset(dataset_cfg(kind="webdataset", root=str(tmp_path / "shards"), preprocessing="adm_center_crop"), "val")
    assert len(shards) == len(images) == 6
    for i in range(6):  # same order (class folder, then name), same pixels; the cut JPEG skipped in both
        a, b = images[i], shards[i]
        assert type(a) is type(b)
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b)
    assert shards[3].source.endswith("000001.tar:n00_zz_broken.JPEG") and "truncated" in shards[3].reason.lower()

    # a shard cut short keeps the samples before the damage
    last = sorted((tmp_path / "shards" / "val").glob("*.tar"))[-1]
    last.write_bytes(last.read_bytes()[:1500])
    assert len(build_dataset(dataset_cfg(kind="webdataset", root=str(tmp_path / "shards")), "val")) < 6
    with pytest.raises(BenchError, match="no webdataset shards"):
        build_dataset(dataset_cfg(kind="webdataset", root=str(tmp_path / "folder")), "train")
