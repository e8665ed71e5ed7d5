"""Pictures beside the leaderboard tables (matplotlib, Agg, PNG without timestamps so the same
records give the same bytes): rate-distortion curves and reconstruction grids."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from .files import atomic_write_bytes  # noqa: E402

# (metric key, axis label, lower is better)
DISTORTIONS = [("psnr", "PSNR (dB) ↑", False), ("rfid", "rFID ↓", True), ("ssim", "SSIM ↑", False), ("mel_distance", "mel distance ↓", True),
               ("si_sdr", "SI-SDR (dB) ↑", False), ("pesq", "PESQ ↑", False)]


def _save(figure, path: Path) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())


def rate_distortion(points: list[dict[str, Any]], rate_label: str, path: Path) -> bool:
    """One panel per distortion metric present: rate on x, metric on y, a labelled point per row with
    an error bar of one standard deviation over seeds. Each point is ``{"label", "rate", "metrics":
    {key: (mean, std or None)}}``."""
    panels = [d for d in DISTORTIONS if any(p["metrics"].get(d[0], (None,))[0] is not None for p in points)]
    if not panels:
        return False
    figure, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False)
    for axis, (key, label, _) in zip(axes[0], panels):
        present = sorted((p["rate"], *p["metrics"][key], p["label"]) for p in points if p["metrics"].get(key, (None,))[0] is not None)
        axis.errorbar(
            [x for x, *_ in present], [mean for _, mean, *_ in present], yerr=[std or 0.0 for _, _, std, _ in present],
            fmt="o", color="tab:blue", ecolor="tab:gray", capsize=3,
        )  # fmt: skip
        for x, mean, _, name in present:
            axis.annotate(name, (x, mean), fontsize=7, xytext=(3, 3), textcoords="offset points")
        axis.set_xlabel(rate_label)
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    _save(figure, path)
    return True


def spectrograms(rows: list[tuple[str, np.ndarray]], sample_rate: int, path: Path) -> None:
    """Log-magnitude spectrograms (Hann 1024, hop 256, dB) of waveforms ``(channels, samples)``, one
    panel per row (the first channel), the original first."""
    figure, axes = plt.subplots(len(rows), 1, figsize=(7, 1.5 * len(rows)), squeeze=False, sharex=True)
    for axis, (name, waveform) in zip(axes[:, 0], rows):
        x = torch.from_numpy(np.asarray(waveform, dtype=np.float32)[0])
        magnitude = torch.stft(x, 1024, 256, window=torch.hann_window(1024), return_complex=True).abs()
        decibels = 20 * torch.log10(magnitude.clamp_min(1e-5))
        axis.imshow(decibels.numpy(), origin="lower", aspect="auto", cmap="magma", vmin=-100, vmax=float(decibels.max()),
                    extent=(0, x.numel() / sample_rate, 0, sample_rate / 2000))  # fmt: skip
        axis.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=7)
        axis.set_yticks([0, sample_rate / 4000, sample_rate / 2000])
        axis.tick_params(labelsize=6)
    axes[-1, 0].set_xlabel("seconds (y: kHz)")
    _save(figure, path)


def reconstruction_grid(originals: np.ndarray, rows: list[tuple[str, np.ndarray]], path: Path) -> None:
    """``originals`` and each row's images are uint8 ``(N, H, W, 3)``; originals on top."""
    all_rows = [("original", originals), *rows]
    count = originals.shape[0]
    figure, axes = plt.subplots(len(all_rows), count, figsize=(1.2 * count + 1.6, 1.2 * len(all_rows)), squeeze=False)
    for r, (name, images) in enumerate(all_rows):
        for c in range(count):
            axis = axes[r][c]
            axis.imshow(images[c], interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
        axes[r][0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=7)
    figure.subplots_adjust(wspace=0.03, hspace=0.03)
    _save(figure, path)
