"""The multi-resolution STFT loss (`implementations.losses.spectral.MultiResolutionSTFTLoss`, Parallel
WaveGAN's default resolutions, eps 1e-7) against golden outputs of Parallel WaveGAN's own
``stft_loss.py`` (``sc_loss + mag_loss``), in float32 and float64 (its windows stay float32).

``golden/parallel_wavegan_stft.safetensors`` was made by ``golden/make_parallel_wavegan_stft.py`` from
kan-bayashi/ParallelWaveGAN at 86740373ec609cb9fb192d472d2aea125041491a (the command is in the script's
docstring).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from implementations.losses.spectral import MultiResolutionSTFTLoss

GOLDEN = Path(__file__).parent / "golden" / "parallel_wavegan_stft.safetensors"
REFERENCE = dict(family="multi-resolution STFT loss (a recipe term, weight 0 in the shipped recipes)", reference="kan-bayashi/ParallelWaveGAN", version="8674037",
                 golden=f"tests/parity/golden/{GOLDEN.name}")  # fmt: skip


@pytest.mark.parametrize(("dtype", "tolerance"), [(torch.float32, 1e-6), (torch.float64, 1e-8)], ids=["float32", "float64"])
def test_loss_equals_parallel_wavegans(parity, dtype, tolerance):
    name = str(dtype).removeprefix("torch.")
    case = parity.case(name, tokenizers=[], setup=f"resolutions (1024, 120, 600), (2048, 240, 1200), (512, 50, 240); 2 clips of 8000 samples, {name}",
                       **REFERENCE)  # fmt: skip
    golden = load_file(GOLDEN)
    with torch.no_grad():
        loss = MultiResolutionSTFTLoss().to(dtype)(golden[f"{name}.prediction"], golden[f"{name}.target"])
    case.compare("loss", loss, golden[f"{name}.loss"], tolerance=tolerance)
