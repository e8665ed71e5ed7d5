"""``python -m bench.perf train``: taming's step follows our recipe's choices, on a network small enough for a test."""

from __future__ import annotations

import pytest
import torch

from bench.perf import train

pytest.importorskip("taming")

TINY = train.Size("tiny", {"ch": 32, "out_ch": 3, "ch_mult": (1, 2), "num_res_blocks": 1, "attn_resolutions": (), "dropout": 0.0, "in_channels": 3,
                           "resolution": 32, "z_channels": 8, "double_z": False}, 16, 8, 32, 1, 1)  # fmt: skip


def forwards_per_step(module: torch.nn.Module, step) -> int:
    calls = []
    handle = module.register_forward_hook(lambda *_: calls.append(1))
    step()
    handle.remove()
    return len(calls)


@pytest.mark.parametrize("discriminator_input", ["reuse", "recompute"])
def test_both_sides_follow_the_recipes_discriminator_input(tmp_path, discriminator_input):
    recipe = train.compose_recipe("taming_vqgan")
    recipe.adversarial.discriminator_input = discriminator_input
    ours, theirs = train.build(TINY, torch.device("cpu"), tmp_path, recipe)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    expected = 2 if discriminator_input == "recompute" else 1
    assert forwards_per_step(ours["tokenizer"], lambda: train.ours_step(ours, x, None)) == expected
    assert forwards_per_step(theirs["network"], lambda: train.taming_step(theirs, x, None)) == expected
    assert theirs["loss"].perceptual_loss.training is recipe.perceptual.dropout  # taming's recipe: on


def test_the_peer_takes_the_recipes_values_and_refuses_what_taming_cannot_do():
    recipe = train.compose_recipe("taming_vqgan")
    kwargs = train.taming_loss_kwargs(recipe)
    assert (kwargs["disc_weight"], kwargs["disc_start"], kwargs["perceptual_weight"]) == (recipe.adversarial.weight, recipe.adversarial.start_step, 1.0)
    recipe.l2_weight = 1.0
    with pytest.raises(ValueError, match="l2_weight 0"):
        train.taming_loss_kwargs(recipe)
