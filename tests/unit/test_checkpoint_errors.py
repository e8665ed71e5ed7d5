"""Every way a weight file can be wrong ends in one line that says what is wrong with it."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from bench.checkpoints import load_weights
from bench.errors import BenchError
from implementations import create_tokenizer


@pytest.fixture
def model():
    return create_tokenizer("vqvae_simplecnn", hidden_dim=8, codebook_size=16, codebook_dim=4)


def one_line(model, path) -> str:
    with pytest.raises(BenchError) as error:
        load_weights(model, path)
    assert "\n" not in str(error.value) and str(path) in str(error.value)
    return str(error.value)


def test_wrong_contents(model, tmp_path):
    cases = {"tensor.pt": torch.zeros(3), "list.pt": [torch.zeros(3)], "empty_dict.pt": {}, "nested.pt": {"model": {"a": [1, 2]}}}
    for name, content in cases.items():
        torch.save(content, tmp_path / name)
    assert "holds a Tensor, not a state dict" in one_line(model, tmp_path / "tensor.pt")
    assert "holds a list, not a state dict" in one_line(model, tmp_path / "list.pt")
    assert "holds an empty dict" in one_line(model, tmp_path / "empty_dict.pt")
    assert "not a state dict of tensors (found list" in one_line(model, tmp_path / "nested.pt")


def test_broken_files(model, tmp_path):
    (tmp_path / "empty.pt").write_bytes(b"")
    assert "is empty (0 bytes)" in one_line(model, tmp_path / "empty.pt")
    (tmp_path / "garbage.pt").write_bytes(b"\x00not a checkpoint" * 10)
    assert "cannot load checkpoint" in one_line(model, tmp_path / "garbage.pt")
    save_file({"a": torch.zeros(4)}, tmp_path / "good.safetensors")
    (tmp_path / "cut.safetensors").write_bytes((tmp_path / "good.safetensors").read_bytes()[:-7])
    assert "cannot load checkpoint" in one_line(model, tmp_path / "cut.safetensors")
    (tmp_path / "empty.safetensors").write_bytes(b"")
    assert "is empty (0 bytes)" in one_line(model, tmp_path / "empty.safetensors")


def test_keys_that_do_not_fit_are_listed_with_counts(model, tmp_path):
    state = model.state_dict()
    wrong = {key: value for key, value in list(state.items())[2:]}  # two missing
    wrong["extra.weight"] = torch.zeros(1)
    key = next(k for k, v in wrong.items() if v.ndim == 4)
    wrong[key] = torch.zeros(1, 1, 1, 1)
    torch.save(wrong, tmp_path / "wrong.pt")
    message = one_line(model, tmp_path / "wrong.pt")
    missing = ", ".join(sorted(list(state)[:2]))
    assert f"2 missing ({missing})" in message and "1 unexpected (extra.weight)" in message
    assert f"1 of another shape, file vs model ({key} (1, 1, 1, 1) vs {tuple(state[key].shape)})" in message
