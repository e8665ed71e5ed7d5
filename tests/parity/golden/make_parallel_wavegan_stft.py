"""Make ``parallel_wavegan_stft.safetensors``: Parallel WaveGAN's multi-resolution STFT loss (its
default resolutions) on two pairs of clips (the golden file of tests/parity/test_parallel_wavegan_stft.py).

From a checkout of kan-bayashi/ParallelWaveGAN at 86740373ec609cb9fb192d472d2aea125041491a (only
``parallel_wavegan/losses/stft_loss.py`` is imported); torch 2.14.1, CPU::

    python tests/parity/golden/make_parallel_wavegan_stft.py ParallelWaveGAN tests/parity/golden/parallel_wavegan_stft.safetensors
"""

from __future__ import annotations

import torch
from official import arguments, module_from_file
from safetensors.torch import save_file


def make(official, out) -> None:
    stft_loss = module_from_file(official / "parallel_wavegan" / "losses" / "stft_loss.py", "stft_loss")
    generator = torch.Generator().manual_seed(0)
    tensors = {}
    for dtype in (torch.float32, torch.float64):
        prediction, target = (torch.rand(2, 1, 8_000, generator=generator, dtype=dtype) * 2 - 1 for _ in range(2))
        with torch.no_grad():
            spectral_convergence, magnitude = stft_loss.MultiResolutionSTFTLoss().to(dtype)(prediction, target)
        name = str(dtype).removeprefix("torch.")
        tensors.update({f"{name}.prediction": prediction, f"{name}.target": target, f"{name}.loss": spectral_convergence + magnitude})
    save_file(tensors, str(out))


if __name__ == "__main__":
    args = arguments(__doc__, "kan-bayashi/ParallelWaveGAN checkout at 8674037")
    make(args.official, args.out)
