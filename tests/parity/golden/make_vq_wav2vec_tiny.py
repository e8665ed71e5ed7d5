"""Make ``vq_wav2vec_tiny.safetensors``: fairseq's own ``Wav2VecModel`` at reduced width, four option
sets, random weights, outputs on two clips (the golden file of tests/parity/test_vq_wav2vec.py).

The official code is imported from a source tree given on the command line, never copied here: the
fairseq-fixed 0.12.3.1 sdist unpacked (PyPI; fairseq 0.12 with Python 3.11 fixes; its
``fairseq/models/wav2vec/wav2vec.py`` and quantizers are facebookresearch/fairseq's at 3d262bb). It
does not install on this torch without building its C++ extensions, so it is put on ``sys.path`` as
it is; importing it needs ``bitarray``, ``sacrebleu``, ``portalocker`` and ``colorama`` besides the
test extra. torch 2.14.1, CPU::

    # the sdist (sha256 c607577a54ab30e2ee0f0b0a754ea5cdbc6ad0a9f99a1726638a2201445bc1cc), from https://pypi.org/simple/fairseq-fixed/
    tar xzf fairseq_fixed-0.12.3.1.tar.gz
    pip install --target fairseq-deps --no-deps bitarray sacrebleu portalocker colorama
    PYTHONPATH=fairseq-deps python tests/parity/golden/make_vq_wav2vec_tiny.py fairseq_fixed-0.12.3.1 \
        tests/parity/golden/vq_wav2vec_tiny.safetensors

Every weight is perturbed (non-trivial norms and biases), and the quantizer is spread over the
features of the clips so that their codes vary: Gumbel's last projection is scaled so that its
logits follow the features, k-means' codebook is drawn per group from the mean and spread of the
projected features.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from official import arguments
from safetensors.torch import save_file

FEAT = "[(32, 10, 5), (32, 8, 4), (32, 4, 2), (32, 4, 2), (32, 4, 2), (32, 1, 1), (32, 1, 1), (32, 1, 1)]"
AGG = "[(32, 2, 1), (32, 3, 1), (48, 4, 1)]"  # the last block changes width: residual_proj
VARIANTS = {
    "gumbel": dict(vq_type="gumbel", activation="gelu", log_compression=False, skip_connections_feat=False, combine_groups=False),
    "gumbel_combined": dict(vq_type="gumbel", activation="relu", log_compression=False, skip_connections_feat=False, combine_groups=True),
    "kmeans": dict(vq_type="kmeans", activation="gelu", log_compression=False, skip_connections_feat=False, combine_groups=False),
    "kmeans_combined": dict(vq_type="kmeans", activation="gelu", log_compression=True, skip_connections_feat=True, combine_groups=True),
}
SHARED = dict(skip_connections_agg=True, residual_scale=0.5, vq_vars=16, vq_groups=2, vq_depth=2, vq_temp=(2.0, 0.5, 0.999995), vq_gamma=0.25,
              prediction_steps=3, num_negatives=2, offset="auto", infonce=False)  # fmt: skip
# The released models' sizes (fairseq's examples/wav2vec/README.md flags, 12 prediction steps)
FULL_FEAT = "[(512, 10, 5), (512, 8, 4), (512, 4, 2), (512, 4, 2), (512, 4, 2), (512, 1, 1), (512, 1, 1), (512, 1, 1)]"
FULL_AGG = "[" + ", ".join(f"(512, {k}, 1)" for k in range(2, 14)) + "]"
FULL = dict(conv_feature_layers=FULL_FEAT, conv_aggregator_layers=FULL_AGG, activation="gelu", skip_connections_agg=True, residual_scale=0.5,
            vq_groups=2, vq_depth=2, vq_vars=320, prediction_steps=12, offset="auto")  # fmt: skip


def clips() -> torch.Tensor:
    """A chirp from 100 Hz to 6 kHz, and noise bursts of changing loudness over a 1.3 kHz tone: features that change with time."""
    t = torch.arange(8000) / 16000
    chirp = 0.5 * torch.sin(2 * torch.pi * (100 * t + (6000 - 100) * t**2 / (2 * t[-1])))
    noise = torch.randn(2, 8000, generator=torch.Generator().manual_seed(1))
    bursts = 0.3 * torch.sin(2 * torch.pi * 1300 * t) + noise[1] * torch.linspace(0, 1, 16).repeat_interleave(500)
    return torch.stack([chirp, bursts]) + 0.05 * noise[0]


def spread_quantizer(model, z: torch.Tensor) -> None:
    """Make the quantizer's codes follow the features ``z`` (B, C, T): each code is drawn from a frame."""
    quantizer = model.vector_quantizer
    if hasattr(quantizer, "weight_proj"):  # Gumbel: each logit is the likeness of a frame's hidden vector to a drawn one's
        last = quantizer.weight_proj[-1]
        hidden = quantizer.weight_proj[:-1](z.transpose(1, 2).reshape(-1, z.shape[1]))
        centred = hidden - hidden.mean(dim=0)
        drawn = centred[torch.randint(len(centred), (last.out_features,))]
        last.weight.copy_(drawn / drawn.norm(dim=1, keepdim=True) * 5 / centred.norm(dim=1).mean())
        last.bias.copy_(-last.weight @ hidden.mean(dim=0))
    else:  # k-means: each group's codebook (one for all groups when combined) drawn from its projected features
        ze = quantizer.projection(z).transpose(1, 2).reshape(-1, quantizer.embedding.shape[1], quantizer.var_dim)
        drawn = ze[torch.randint(len(ze), (quantizer.embedding.shape[0],))]
        quantizer.embedding.copy_(drawn + 0.1 * ze.std(dim=0) * torch.randn_like(drawn))


def make(fairseq_root: Path, out: Path) -> None:
    sys.path.insert(0, str(fairseq_root))
    from fairseq.models.wav2vec.wav2vec import Wav2VecConfig, Wav2VecModel

    tensors = {}
    for name, options in VARIANTS.items():
        torch.manual_seed(0)
        model = Wav2VecModel(Wav2VecConfig(conv_feature_layers=FEAT, conv_aggregator_layers=AGG, **SHARED, **options))
        x = clips()
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.05)  # non-trivial norms and biases
            spread_quantizer(model, model.feature_extractor(x))
        model.eval()
        with torch.no_grad():
            z = model.feature_extractor(x)
            res = model.vector_quantizer(z, produce_targets=True)
            context = model.feature_aggregator(res["x"])
            model.train()
            torch.manual_seed(3)
            train = model.vector_quantizer(z, produce_targets=True)
        outputs = {"input": x, "features": z, "quantized": res["x"], "codes": res["targets"], "context": context,
                   "train_quantized": train["x"], "train_codes": train["targets"]}  # fmt: skip
        if options["vq_type"] == "kmeans":
            outputs["kmeans_loss"] = res["kmeans_loss"]
        tensors.update({f"{name}.model.{key}": value for key, value in model.state_dict().items()})
        tensors.update({f"{name}.{key}": value for key, value in outputs.items()})
    shapes = {}
    for vq_type in ("gumbel", "kmeans"):
        with torch.device("meta"):
            full = Wav2VecModel(Wav2VecConfig(vq_type=vq_type, **FULL))
        shapes[vq_type] = {key: list(value.shape) for key, value in full.state_dict().items()}
    save_file({key: value.contiguous() for key, value in tensors.items()}, str(out), metadata={"full_size_shapes": json.dumps(shapes)})


if __name__ == "__main__":
    args = arguments(__doc__, "fairseq source tree (the folder holding fairseq/)")
    make(args.official, args.out)
