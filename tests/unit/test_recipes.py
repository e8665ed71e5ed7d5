"""Recipes are configuration the one trainer runs: every recipe file composes and validates; the
schedule, gradient accumulation and mixed precision do what they say; bad recipes fail in one line."""

from __future__ import annotations

import contextlib
import copy
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from bench.config import compose, validate_recipe
from bench.data.tensors import ImageTensors
from bench.errors import BenchError
from bench.objective import Objective
from bench.train import Budget, lr_factor, train
from implementations import create_tokenizer

RECIPES = sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "bench" / "conf" / "recipe").glob("*.yaml"))


@pytest.mark.parametrize("name", RECIPES)
def test_every_recipe_composes_and_validates(name):
    recipe = compose(["tokenizer=vqvae_tiny_vq_d4", f"recipe@tokenizer.recipe={name}"]).tokenizer.recipe
    validate_recipe(recipe)
    assert recipe.name == name and recipe.source and recipe.steps > 0


def test_warmup_then_cosine_to_the_final_ratio():
    schedule = compose(["tokenizer=vqvae_tiny_vq_d4", "tokenizer.recipe.schedule.kind=cosine", "tokenizer.recipe.schedule.warmup_steps=10",
                        "tokenizer.recipe.schedule.final_lr_ratio=0.1"]).tokenizer.recipe.schedule  # fmt: skip
    factor = lr_factor(schedule, steps=110)
    assert [factor(s) for s in (0, 4, 9)] == [0.1, 0.5, 1.0]
    assert factor(10) == 1.0 and math.isclose(factor(60), 0.55) and math.isclose(factor(110), 0.1)


def tiny_run(tmp_path, *overrides, steps=1, batch=8, seed=0):
    recipe = compose(["tokenizer=vqvae_tiny_vq_d4", *overrides]).tokenizer.recipe
    torch.manual_seed(seed)
    model = create_tokenizer("vqvae_simplecnn", hidden_dim=16, codebook_size=32, codebook_dim=4)
    images = torch.rand(16, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    result = train(model, ImageTensors(images), recipe, Budget(steps, batch, log_every=1), seed=seed, device=torch.device("cpu"),
                   state_path=tmp_path / f"state-{len(list(tmp_path.iterdir()))}.pt")  # fmt: skip
    return result.model.state_dict()


def test_gradient_accumulation_equals_the_whole_batch(tmp_path):
    """VQ loss and MSE are means over equal micro-batches: two halves give the whole batch's gradient
    (float32 rounding apart), so one Adam step lands on the same weights."""
    whole = tiny_run(tmp_path)
    halves = tiny_run(tmp_path, "tokenizer.recipe.grad_accumulation=2")
    for key, value in whole.items():
        torch.testing.assert_close(halves[key], value, rtol=1e-4, atol=1e-6, msg=key)
    quarters = tiny_run(tmp_path, "tokenizer.recipe.grad_accumulation=4", "tokenizer.recipe.optimizer.lr=1e-2")
    assert any(not torch.equal(quarters[k], whole[k]) for k in whole)  # the test sees a different update


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains(tmp_path, precision):
    weights = tiny_run(tmp_path, f"tokenizer.recipe.precision={precision}", "tokenizer.recipe.grad_clip=1.0", steps=3)
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
    log = next(tmp_path.glob("*.log.csv")).read_text()
    assert ",grad_norm," in log and ",l2," in log


def test_bad_recipes_fail_in_one_line(tmp_path, monkeypatch):
    tokenizer = create_tokenizer("vqvae_simplecnn", hidden_dim=16, codebook_size=32, codebook_dim=4)
    audio_disc = compose(["tokenizer=vqvae_tiny_vq_d4", "tokenizer.recipe.adversarial.weight=1", "tokenizer.recipe.adversarial.discriminator=ms_stft"])
    with pytest.raises(BenchError, match="discriminator ms_stft takes audio inputs, but VQVAE tokenizes image"):
        Objective(audio_disc.tokenizer.recipe, tokenizer)
    unknown = compose(["tokenizer=vqvae_tiny_vq_d4", "tokenizer.recipe.adversarial.weight=1", "tokenizer.recipe.adversarial.discriminator=nope"])
    with pytest.raises(BenchError, match="adversarial.discriminator='nope': choose one of"):
        Objective(unknown.tokenizer.recipe, tokenizer)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    perceptual = compose(["tokenizer=vqvae_tiny_vq_d4", "tokenizer.recipe.perceptual.weight=1"])
    with pytest.raises(BenchError) as missing:
        Objective(perceptual.tokenizer.recipe, tokenizer)
    message = str(missing.value)
    assert "\n" not in message and "vgg16-397923af.pth is not on this machine" in message and str(tmp_path / "hub" / "checkpoints") in message
    nothing = compose(["tokenizer=vqvae_tiny_vq_d4", "tokenizer.recipe.l2_weight=0"])
    with pytest.raises(BenchError, match="has no reconstruction loss"):
        Objective(nothing.tokenizer.recipe, tokenizer)


@pytest.mark.slow
def test_compiled_training_matches_eager(tmp_path):
    """``compile: true`` (torch.compile, ~30 s on 2 CPU cores) trains to the eager weights up to
    the compiler's float reordering."""
    eager = tiny_run(tmp_path, steps=3)
    compiled = tiny_run(tmp_path, "tokenizer.recipe.compile=true", steps=3)
    for key, value in eager.items():
        torch.testing.assert_close(compiled[key], value, rtol=1e-3, atol=1e-4, msg=key)


def test_the_encodec_recipe_balances_its_terms_on_audio():
    """EnCodec's recipe on a stand-in audio decoder: L1, multi-scale mel, MS-STFT GAN and relative
    feature matching go through the balancer, the quantizer loss beside it, in one step that reaches
    every parameter; the discriminator step follows."""
    recipe = compose(["tokenizer=vqvae_tiny_vq_d4", "recipe@tokenizer.recipe=encodec"]).tokenizer.recipe
    objective = Objective(recipe, SimpleNamespace(modality="audio", sample_rate=8000)).train()
    torch.manual_seed(0)
    decoder = torch.nn.Conv1d(4, 1, 5, padding=2)
    z = torch.randn(2, 4, 4000, requires_grad=True)
    x = torch.rand(2, 1, 4000) * 2 - 1
    out = SimpleNamespace(recon=torch.tanh(decoder(z)), loss=(z**2).mean())
    logs = objective.generator_backward(x, out, step=0, last_layer=None, scale=1.0, backward=lambda loss, **kw: loss.backward(**kw))
    assert {"balancer_ratio_l1", "balancer_ratio_mel", "balancer_ratio_adversarial", "balancer_ratio_feature_matching"} <= set(logs)
    assert decoder.weight.grad is not None and z.grad is not None and torch.isfinite(decoder.weight.grad).all()
    d_logs = objective.discriminator_backward(x, out.recon.detach(), 1.0, backward=lambda loss: loss.backward(), autocast=contextlib.nullcontext)
    assert torch.isfinite(d_logs["d_loss"]) and all(p.grad is not None for p in objective.discriminator.parameters() if p.requires_grad)


@pytest.mark.parametrize("discriminator_input", ["reuse", "recompute"])
def test_the_discriminator_sees_the_reconstructions_the_recipe_names(tmp_path, monkeypatch, discriminator_input):
    """reuse: those of the generator's step, from before its update; recompute: the updated generator's
    (taming under Lightning: training_step runs self(x) again for the discriminator's optimizer)."""
    prefix = "tokenizer.recipe.adversarial"
    recipe = compose(["tokenizer=vqvae_tiny_vq_d4", f"{prefix}.weight=0.5", f"{prefix}.discriminator_input={discriminator_input}",
                      f"+{prefix}.discriminator_kwargs.base_channels=8", f"+{prefix}.discriminator_kwargs.n_layers=2"]).tokenizer.recipe  # fmt: skip
    seen = []
    original = Objective.discriminator_backward
    monkeypatch.setattr(Objective, "discriminator_backward", lambda self, x, recon, *rest: seen.append((x, recon)) or original(self, x, recon, *rest))
    torch.manual_seed(0)
    model = create_tokenizer("vqvae_simplecnn", hidden_dim=16, codebook_size=32, codebook_dim=4)
    before = copy.deepcopy(model)
    train(model, ImageTensors(torch.rand(4, 3, 16, 16) * 2 - 1), recipe, Budget(1, 4), seed=0, device=torch.device("cpu"), state_path=tmp_path / "s.pt")
    ((x, recon),) = seen
    with torch.no_grad():
        old, new = before.train()(x).recon, model.train()(x).recon
    assert not torch.equal(old, new)
    assert torch.equal(recon, old if discriminator_input == "reuse" else new)
    wrong = compose(["tokenizer=vqvae_tiny_vq_d4", f"{prefix}.discriminator_input=both"]).tokenizer.recipe
    with pytest.raises(BenchError, match=r"^tokenizer.recipe.adversarial.discriminator_input='both': choose one of reuse, recompute$"):
        validate_recipe(wrong)


def test_recipe_fields_added_later_keep_earlier_hashes_at_their_default():
    """discriminator_input and perceptual.dropout at reuse / false measure what records made before them
    measured: the hash leaves them out; taming's recompute / true is another protocol."""
    from omegaconf import OmegaConf

    from bench.records import config_hash

    def with_and_without(*overrides):
        config = OmegaConf.to_container(compose(["tokenizer=vqvae_tiny_vq_d4", "seed=0", *overrides]), resolve=True)
        earlier = copy.deepcopy(config)
        del earlier["tokenizer"]["recipe"]["adversarial"]["discriminator_input"], earlier["tokenizer"]["recipe"]["perceptual"]["dropout"]
        return config_hash(config), config_hash(earlier)

    now, before = with_and_without()
    assert now == before
    now, before = with_and_without("recipe@tokenizer.recipe=taming_vqgan")
    assert now != before
