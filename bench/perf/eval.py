"""Evaluation-pass speed: the whole pass in images/s and the share of it outside the tokenizer's
forward; SSIM ours against torchmetrics; JPEG decode + ADM crop against torchvision's decoder.

* ``pass``: `bench.evaluate.evaluate` over a folder of JPEGs written from scikit-image's
  photographs (ImageNet-like sizes), through the real loader (decode, ``adm_center_crop`` to
  ``--resolution``), the tokenizer (``--tokenizer``, default taming's architecture at reduced width on
  CPU; pass ``vqgan_taming_f16_1024`` on a GPU), and every metric that runs here: PSNR, SSIM,
  LPIPS-free (its weights are not on this machine), rFID with a randomly initialised Inception
  (speed does not depend on the values), usage, and the data account. The tokenizer's
  ``encode`` + ``decode`` are timed inside the pass (CUDA-synchronised); the rest is the overhead.
* ``ssim``: per-image SSIM of 256x256 pairs, ours (float64, separable gaussian) against
  torchmetrics' ``structural_similarity_index_measure`` (float32, 2-D window); ``ratio`` =
  torchmetrics ms / ours ms, and the largest difference of the per-image values.
* ``decode``: JPEG files to 256x256 crops: PIL decode + ADM ``center_crop_arr`` (ours) against
  ``torchvision.io.decode_jpeg`` + antialiased bicubic resize + center crop (not the same pixels as
  ADM: the throughput of the native decoder path, for scale).

``ssim`` and ``decode`` time both sides alike: one warm-up call each, then the same number of calls
each, interleaved (`measure.interleaved`).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from skimage import data as skimage_data
from tabulate import tabulate
from torchmetrics.functional.image import structural_similarity_index_measure
from torchvision.io import decode_jpeg, read_file
from torchvision.transforms import InterpolationMode

from bench.data.images import ImageFiles, list_images, read_rgb
from bench.data.items import DataAccount
from bench.data.transforms import adm_center_crop, to_tensor
from bench.evaluate import evaluate
from bench.metrics import build_metrics
from bench.metrics.reconstruction import SSIM, SSIM_OPTIONS
from implementations import create_tokenizer

from .measure import interleaved

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "cat", "immunohistochemistry", "colorwheel", "hubble_deep_field")


def write_photos(folder: Path, count: int) -> list[Path]:
    """``count`` JPEGs (quality 90) of ImageNet-like sizes (shorter side 375-500) from scikit-image's photographs."""
    for i in range(count):
        photo = Image.fromarray(getattr(skimage_data, PHOTOS[i % len(PHOTOS)])())
        scale = (375 + 125 * (i % 3) / 2) / min(photo.size)
        photo.resize((round(photo.size[0] * scale), round(photo.size[1] * scale)), Image.BICUBIC).save(folder / f"{i:04d}.JPEG", quality=90)
    return list_images(folder)


def random_inception(folder: Path) -> str:
    """torch-fidelity's Inception with random weights, saved where the rFID metric can be pointed at it."""
    from torch_fidelity import feature_extractor_inceptionv3 as tfi

    fetch, load = tfi.load_state_dict_from_url, tfi.FeatureExtractorInceptionV3.load_state_dict
    tfi.load_state_dict_from_url, tfi.FeatureExtractorInceptionV3.load_state_dict = (lambda *a, **k: {}), (lambda self, *a, **k: None)
    try:
        net = tfi.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    finally:
        tfi.load_state_dict_from_url, tfi.FeatureExtractorInceptionV3.load_state_dict = fetch, load
    path = folder / "inception-random.pth"
    torch.save(net.state_dict(), path)
    return str(path)


class TimedTokenizer(torch.nn.Module):
    """Forwards ``encode`` / ``decode`` to ``model`` and adds up their wall time (synchronised on CUDA)."""

    def __init__(self, model, device: torch.device) -> None:
        super().__init__()
        self.model, self.device, self.seconds = model, device, 0.0

    def _timed(self, call, x):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        out = call(x)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds += time.perf_counter() - start
        return out

    def encode(self, x):
        return self._timed(self.model.encode, x)

    def decode(self, codes):
        return self._timed(self.model.decode, codes)


def measure_pass(folder: Path, args, device: torch.device) -> dict:
    model = create_tokenizer(args.tokenizer, **({} if args.tokenizer != "vqgan_taming_tiny" else {"resolution": args.resolution})).eval()
    timed = TimedTokenizer(model, device)
    dataset = ImageFiles(write_photos(folder, args.images), args.resolution, "adm_center_crop")
    metrics, unavailable = build_metrics(["psnr", "ssim", "ssim_llamagen", "lpips", "rfid", "usage"], codebook_size=model.codebook_size,
                                         num_codebooks=model.num_codebooks, fid_weights={"rfid": random_inception(folder)})  # fmt: skip
    metrics["data"] = DataAccount()
    start = time.perf_counter()
    evaluate(timed, dataset, metrics, batch_size=args.batch_size, device=device, num_workers=args.workers, precision=args.precision)
    total = time.perf_counter() - start
    return {"what": f"eval pass: {args.tokenizer} at {args.resolution}, batch {args.batch_size}, {args.workers} workers, {args.precision}",
            "images/s": round(len(dataset) / total, 2), "forward share": round(timed.seconds / total, 3),
            "outside forward": round(1 - timed.seconds / total, 3), "metrics": ",".join(metrics), "unavailable": ",".join(unavailable)}  # fmt: skip


def measure_ssim(repeats: int, pairs: int = 8) -> dict:
    real = torch.stack([to_tensor(np.asarray(adm_center_crop(Image.fromarray(getattr(skimage_data, PHOTOS[i % 8])()), 256))) for i in range(pairs)])
    real = (real + 1) / 2
    fake = (real + torch.randn(real.shape, generator=torch.Generator().manual_seed(0)) * 0.05).clamp(0, 1)
    fake = (fake * 255).round() / 255
    ours = SSIM()
    timings = interleaved({"ours": lambda: ours.per_image(real.double(), fake.double()),
                           "torchmetrics": lambda: structural_similarity_index_measure(fake, real, reduction="none", **SSIM_OPTIONS)}, repeats=repeats)  # fmt: skip
    ours_ms, theirs_ms = timings.median("ours"), timings.median("torchmetrics")
    values = ours.per_image(real.double(), fake.double())
    reference = structural_similarity_index_measure(fake.double(), real.double(), reduction="none", **SSIM_OPTIONS)
    float32 = structural_similarity_index_measure(fake, real, reduction="none", **SSIM_OPTIONS)
    return {"what": f"SSIM, {pairs} pairs 256x256", "ours ms": round(ours_ms, 1), "torchmetrics ms": round(theirs_ms, 1), "ratio": round(theirs_ms / ours_ms, 2),
            "max |ours - tm float64|": f"{(values - reference).abs().max():.1e}", "max |ours - tm float32|": f"{(values - float32.double()).abs().max():.1e}"}  # fmt: skip


def measure_decode(paths: list[Path], repeats: int, size: int = 256) -> dict:
    def ours():
        for path in paths:
            to_tensor(np.asarray(adm_center_crop(read_rgb(path), size)))

    def native():
        for path in paths:
            image = decode_jpeg(read_file(str(path)))
            TF.center_crop(TF.resize(image, size, InterpolationMode.BICUBIC, antialias=True), size).float().div(127.5).sub(1)

    timings = interleaved({"ours": ours, "torchvision": native}, repeats=repeats)
    ours_ms, native_ms = timings.median("ours"), timings.median("torchvision")
    return {"what": f"JPEG -> {size}x{size} crop, {len(paths)} files", "ours images/s": round(len(paths) / ours_ms * 1e3, 1),
            "torchvision images/s": round(len(paths) / native_ms * 1e3, 1), "ratio": round(native_ms / ours_ms, 2)}  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="16 images, 2 repeats")
    parser.add_argument("--tokenizer", default="vqgan_taming_tiny", help="registered tokenizer of the pass (GPU: vqgan_taming_f16_1024)")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--images", type=int, default=None, help="JPEGs in the pass (default 64, --quick 16)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--json", action="store_true")


def main(args: argparse.Namespace) -> int:
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else "cpu" if args.device == "auto" else args.device)
    args.images = args.images or (16 if args.quick else 64)
    repeats = 2 if args.quick else 5
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure_pass(Path(tmp), args, device)]
        rows += [measure_ssim(repeats), measure_decode(list_images(Path(tmp)), repeats)]
    machine = {"device": str(device), "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None, "threads": torch.get_num_threads()}
    if args.json:
        print(json.dumps({"machine": machine, "rows": rows}, indent=2))
    else:
        print(f"device {machine['device']}{' (' + machine['gpu'] + ')' if machine['gpu'] else ''}, {machine['threads']} threads")
        for row in rows:
            print(tabulate([row], headers="keys", tablefmt="github"), end="\n\n")
    return 0
