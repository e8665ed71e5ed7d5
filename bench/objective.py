"""The training objective a recipe declares (`bench.config.RecipeConfig`), assembled once from the
shared losses of `implementations.losses` for any modality.

Generator side, per (micro-)batch: weighted reconstruction terms (``l1``, ``l2``, ``perceptual``
LPIPS-VGG, audio ``mel`` and ``stft``), then from ``adversarial.start_step`` on the GAN term (times
taming's adaptive weight when asked) and feature matching, plus ``quantizer_weight`` times the
quantizer's own loss. With EnCodec's balancer the balanced terms reach the model through their
gradients at its output, rescaled (`implementations.losses.balancer`); the rest backpropagates as
usual. Discriminator side: the GAN loss on real and reconstructed inputs, LeCAM and R1.

What must survive a resume (discriminator weights and BatchNorm statistics, LeCAM anchors, the
balancer's gradient-norm EMAs) is `Objective.resumable_state` (the frozen LPIPS network is not).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from implementations import Tokenizer, create_discriminator, list_discriminators
from implementations.checkpoints import CorruptWeightsError, MissingWeightsError
from implementations.losses.adversarial import LeCAM, adaptive_weight, discriminator_loss, feature_matching, generator_loss, r1_penalty
from implementations.losses.perceptual import LPIPS
from implementations.registry import discriminator_class

from .errors import BenchError

RECONSTRUCTION_TERMS = ("l1", "l2", "perceptual", "mel", "stft")


class Objective(nn.Module):
    def __init__(self, recipe, tokenizer: Tokenizer):
        super().__init__()
        self.recipe = recipe
        self.weights = {
            "l1": recipe.l1_weight,
            "l2": recipe.l2_weight,
            "perceptual": recipe.perceptual.weight,
            "mel": recipe.spectral.mel_weight,
            "stft": recipe.spectral.stft_weight,
            "adversarial": recipe.adversarial.weight,
            "feature_matching": recipe.adversarial.feature_matching_weight,
        }
        if not any(self.weights[term] for term in RECONSTRUCTION_TERMS):
            raise BenchError(f"recipe {recipe.name or '(none)'} has no reconstruction loss: set l1_weight, l2_weight, perceptual, or spectral weights")
        self.perceptual = _perceptual(recipe.perceptual) if recipe.perceptual.weight else None
        self.mel, self.stft = _spectral(recipe.spectral, tokenizer)
        adversarial = recipe.adversarial
        self.discriminator = _discriminator(adversarial, tokenizer) if adversarial.weight else None
        self.lecam = LeCAM(adversarial.lecam_ema_decay) if adversarial.weight and adversarial.lecam_weight else None
        self.balancer = _balancer(recipe) if recipe.balancer.enabled else None

    def resumable_state(self) -> dict[str, Tensor]:
        """What a resumed run needs: everything but the frozen LPIPS network (loaded from its files)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("perceptual.")}

    def load_resumable_state(self, state: dict[str, Tensor]) -> None:
        missing, unexpected = self.load_state_dict(state, strict=False)
        if unexpected or any(not key.startswith("perceptual.") for key in missing):
            raise BenchError(f"training state does not fit the recipe's objective: missing {missing[:3]}, unexpected {unexpected[:3]}")

    # ---------------------------------------------------------------- generator

    def gan_active(self, step: int) -> bool:
        return self.discriminator is not None and step >= self.recipe.adversarial.start_step

    def generator_backward(self, x: Tensor, out, step: int, last_layer: Tensor, scale: float, backward) -> dict[str, Tensor]:
        """Compute the generator's loss for the batch ``x`` and its reconstruction ``out.recon``, and
        backpropagate it (times ``scale``, the 1 / micro-batches factor) through ``backward`` (which
        applies a gradient scaler when there is one). Returns the detached terms for the log."""
        recon = out.recon
        terms: dict[str, Tensor] = {}
        if self.weights["l1"]:
            terms["l1"] = F.l1_loss(recon, x)
        if self.weights["l2"]:
            terms["l2"] = F.mse_loss(recon, x)
        if self.perceptual is not None:
            terms["perceptual"] = self.perceptual(recon.float(), x.float()).mean()
        if self.mel is not None:
            terms["mel"] = self.mel(recon.float(), x.float())
        if self.stft is not None:
            terms["stft"] = self.stft(recon.float(), x.float())
        if self.gan_active(step):
            self.discriminator.requires_grad_(False)
            fake = self.discriminator(recon)
            terms["adversarial"] = generator_loss(self.recipe.adversarial.generator_loss or self.recipe.adversarial.loss, fake.logits)
            if self.weights["feature_matching"]:
                with torch.no_grad():
                    real = self.discriminator(x)
                terms["feature_matching"] = feature_matching(real.features, fake.features, self.recipe.adversarial.feature_matching_relative)
        quantizer = self.recipe.quantizer_weight * out.loss
        logs = {name: value.detach() for name, value in terms.items()}
        if self.balancer is not None:
            balanced = {name: value for name, value in terms.items() if name in self.balancer.weights}
            rest = sum((self.weights[name] * value for name, value in terms.items() if name not in balanced), quantizer)
            backward(rest * scale, retain_graph=True)  # first: the balancer's backward frees the shared graph
            logs.update({f"balancer_{k}": torch.as_tensor(v) for k, v in self.balancer.backward(balanced, recon, scale=scale).items()})
            return logs
        reconstruction = sum(self.weights[name] * terms[name] for name in RECONSTRUCTION_TERMS if name in terms)
        loss = reconstruction
        if "adversarial" in terms:
            weight = self.weights["adversarial"]
            if self.recipe.adversarial.adaptive_weight:
                ratio = adaptive_weight(reconstruction, terms["adversarial"], last_layer, self.recipe.adversarial.adaptive_weight_max)
                logs["adaptive_weight"] = ratio
                weight = weight * ratio
            loss = loss + weight * terms["adversarial"]
        if "feature_matching" in terms:
            loss = loss + self.weights["feature_matching"] * terms["feature_matching"]
        loss = loss + quantizer
        logs["loss"] = loss.detach()
        backward(loss * scale if scale != 1 else loss)
        return logs

    # ---------------------------------------------------------------- discriminator

    def discriminator_backward(self, x: Tensor, recon: Tensor, scale: float, backward, autocast, parallel: nn.Module | None = None) -> dict[str, Tensor]:
        """The discriminator's loss on real ``x`` and reconstructed ``recon`` (detached), backpropagated
        (through ``parallel``, the discriminator's DDP wrapper, under torch.distributed)."""
        adversarial = self.recipe.adversarial
        self.discriminator.requires_grad_(True)
        discriminator = parallel or self.discriminator
        with autocast():
            real = discriminator(x.detach())
            fake = discriminator(recon.detach())
            loss = discriminator_loss(adversarial.loss, real.logits, fake.logits)
        logs = {
            "d_loss": loss.detach(),
            "logits_real": torch.stack([v.detach().float().mean() for v in real.logits]).mean(),
            "logits_fake": torch.stack([v.detach().float().mean() for v in fake.logits]).mean(),
        }
        if self.lecam is not None:
            lecam = self.lecam([v.float() for v in real.logits], [v.float() for v in fake.logits])
            logs["lecam"] = lecam.detach()
            loss = loss + adversarial.lecam_weight * lecam
        if adversarial.r1_weight:
            r1 = r1_penalty(self.discriminator, x, adversarial.r1_weight)
            logs["r1"] = r1.detach()
            loss = loss + r1
        backward(loss * scale if scale != 1 else loss)
        return logs


def _perceptual(cfg) -> LPIPS:
    lpips = LPIPS(dropout=cfg.dropout)
    try:
        lpips.load_released(cfg.backbone_weights, cfg.linear_weights)
    except (MissingWeightsError, CorruptWeightsError) as error:
        raise BenchError(f"the recipe's perceptual loss (LPIPS-VGG): {error}") from error
    return lpips


def _spectral(cfg, tokenizer: Tokenizer) -> tuple[nn.Module | None, nn.Module | None]:
    if not (cfg.mel_weight or cfg.stft_weight):
        return None, None
    if tokenizer.modality != "audio":
        raise BenchError(f"the recipe's spectral losses need an audio tokenizer; {type(tokenizer).__name__} is {tokenizer.modality}")
    from implementations.losses.spectral import MultiResolutionSTFTLoss, MultiScaleMelLoss

    mel = MultiScaleMelLoss(sample_rate=tokenizer.sample_rate) if cfg.mel_weight else None
    return mel, MultiResolutionSTFTLoss() if cfg.stft_weight else None


def _discriminator(cfg, tokenizer: Tokenizer) -> nn.Module:
    if cfg.discriminator not in list_discriminators():
        raise BenchError(f"adversarial.discriminator={cfg.discriminator!r}: choose one of {', '.join(list_discriminators())}")
    kwargs: dict[str, Any] = dict(cfg.discriminator_kwargs)
    try:
        discriminator = create_discriminator(cfg.discriminator, **kwargs)
    except (TypeError, ValueError) as error:
        raise BenchError(f"discriminator {cfg.discriminator} rejects {kwargs}: {error}") from error
    modality = getattr(discriminator, "modality", discriminator_class(cfg.discriminator).modality)
    if modality != tokenizer.modality:
        raise BenchError(f"discriminator {cfg.discriminator} takes {modality} inputs, but {type(tokenizer).__name__} tokenizes {tokenizer.modality}")
    return discriminator


def _balancer(recipe) -> nn.Module:
    from implementations.losses.balancer import Balancer

    if recipe.precision == "fp16":
        raise BenchError("the loss balancer with precision fp16 is not supported (its output gradients would bypass the gradient scaler): use bf16")
    if recipe.adversarial.adaptive_weight:
        raise BenchError("the loss balancer and taming's adaptive weight both set the GAN weight: choose one")
    return Balancer(dict(recipe.balancer.weights), total_norm=recipe.balancer.total_norm, ema_decay=recipe.balancer.ema_decay)
