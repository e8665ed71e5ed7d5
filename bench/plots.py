"""Pictures beside the leaderboard tables (matplotlib, Agg, PNG without timestamps so the same
records give the same bytes): rate-distortion curves and reconstruction grids."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from .files import atomic_write_bytes  # noqa: E402

# (metric key, axis label, lower is better, fixed axis range or None: the metric's whole scale, where
# noise at its floor would otherwise fill the panel)
DISTORTIONS = [("psnr", "PSNR (dB) ↑", False, None), ("rfid", "rFID ↓", True, None), ("ssim", "SSIM ↑", False, None),
               ("mel_distance", "mel distance ↓", True, None), ("si_sdr", "SI-SDR (dB) ↑", False, None), ("pesq", "PESQ ↑", False, (1.0, 4.5))]
MARKERS = "osD^vP*Xhp<>"


def _save(figure, path: Path) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())


def rate_distortion(points: list[dict[str, Any]], rate_label: str, path: Path) -> bool:
    """One panel per distortion metric present: rate on x, metric on y, a point per row (its own colour
    and marker, named in the legend) with an error bar of one standard deviation over seeds. Rows at
    one rate are spread a little sideways so none hides another. Each point is ``{"label", "rate",
    "metrics": {key: (mean, std or None)}}``."""
    panels = [d for d in DISTORTIONS if any(p["metrics"].get(d[0], (None,))[0] is not None for p in points)]
    if not panels:
        return False
    rates = sorted({p["rate"] for p in points})
    span = rates[-1] - rates[0] or 0.1 * abs(rates[0]) or 1.0
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    handles = {}
    for axis, (key, label, _, limits) in zip(axes[0], panels):
        for i, point in enumerate(points):
            mean, std = point["metrics"].get(key, (None, None))
            if mean is None:
                continue
            same_rate = [q["label"] for q in points if q["rate"] == point["rate"]]
            dodge = (same_rate.index(point["label"]) - (len(same_rate) - 1) / 2) * 0.025 * span
            handles[point["label"]] = axis.errorbar(
                point["rate"] + dodge, mean, yerr=std or 0.0, fmt=MARKERS[i % len(MARKERS)], color=f"C{i % 10}", ecolor=f"C{i % 10}",
                elinewidth=1, capsize=3, markersize=6,
            )  # fmt: skip
        axis.set_xlim(rates[0] - 0.15 * span, rates[-1] + 0.15 * span)
        if len(rates) <= 6:
            axis.set_xticks(rates, [f"{r:.3g}" for r in rates])
        if limits:
            axis.set_ylim(*limits)
        axis.set_xlabel(rate_label)
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    figure.suptitle(f"Rate-distortion: mean over seeds, error bars ±1 standard deviation ({rate_label})", fontsize=10)
    figure.legend(list(handles.values()), list(handles), loc="lower center", ncol=min(len(handles), 3), fontsize=8, frameon=False,
                  bbox_to_anchor=(0.5, -0.02 - 0.045 * math.ceil(len(handles) / 3)))  # fmt: skip
    figure.tight_layout()
    _save(figure, path)
    return True


def spectrograms(rows: list[tuple[str, np.ndarray]], sample_rate: int, path: Path) -> None:
    """Log-magnitude spectrograms (Hann 1024, hop 256, dB) of waveforms ``(channels, samples)``, one
    panel per row (the first channel), the original first, on one colour scale (its bar on the right)."""
    decibels = []
    for _, waveform in rows:
        x = torch.from_numpy(np.asarray(waveform, dtype=np.float32)[0])
        magnitude = torch.stft(x, 1024, 256, window=torch.hann_window(1024), return_complex=True).abs()
        decibels.append((20 * torch.log10(magnitude.clamp_min(1e-5))).numpy())
    top = max(float(d.max()) for d in decibels)
    figure, axes = plt.subplots(len(rows), 1, figsize=(7, 1.5 * len(rows) + 0.4), squeeze=False, sharex=True)
    for axis, (name, _), values, (_, waveform) in zip(axes[:, 0], rows, decibels, rows):
        seconds = np.asarray(waveform).shape[-1] / sample_rate
        image = axis.imshow(values, origin="lower", aspect="auto", cmap="magma", vmin=-100, vmax=top,
                            extent=(0, seconds, 0, sample_rate / 2000))  # fmt: skip
        axis.set_title(name, fontsize=8, loc="left")
        axis.set_ylabel("kHz", fontsize=7)
        axis.set_yticks([0, sample_rate / 4000, sample_rate / 2000])
        axis.tick_params(labelsize=6)
    axes[-1, 0].set_xlabel("time (s)", fontsize=8)
    figure.subplots_adjust(hspace=0.35)
    bar = figure.colorbar(image, ax=axes[:, 0], fraction=0.03, pad=0.02)
    bar.set_label("magnitude (dB)", fontsize=7)
    bar.ax.tick_params(labelsize=6)
    _save(figure, path)


def reconstruction_grid(originals: np.ndarray, rows: list[tuple[str, np.ndarray]], path: Path, columns: list[str]) -> None:
    """``originals`` and each row's images are uint8 ``(N, H, W, 3)``; originals on top, each row named
    on its left, each column by ``columns`` (which item it shows)."""
    all_rows = [("original", originals), *rows]
    count = originals.shape[0]
    figure, axes = plt.subplots(len(all_rows), count, figsize=(1.2 * count + 1.6, 1.2 * len(all_rows) + 0.3), squeeze=False)
    for r, (name, images) in enumerate(all_rows):
        for c in range(count):
            axis = axes[r][c]
            axis.imshow(images[c], interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
        axes[r][0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=7)
    for c, column in enumerate(columns):
        axes[0][c].set_title(column, fontsize=7)
    figure.subplots_adjust(wspace=0.03, hspace=0.03)
    _save(figure, path)
