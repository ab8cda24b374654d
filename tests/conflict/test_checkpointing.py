"""Activation checkpointing and the engine (issue 22): a reentrant checkpoint hides the
parameters of its block from the graph the engine walks, so MGCM would silently sum their
gradients; it is refused. Non-reentrant checkpointing keeps them visible and gives MGCM's
result exactly."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.utils.checkpoint as checkpoint
from torch import Tensor, nn

from fairseq_mgcm.conflict import ConflictEngine
from fairseq_mgcm.errors import UserError

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no GPU"))]


class TwoTaskNet(nn.Module):
    """A shared block between an input layer and two heads whose losses pull the block apart
    (so MGCM projects there); ``mode`` says how the block is checkpointed."""

    def __init__(self, mode: str = "none") -> None:
        super().__init__()
        self.mode = mode
        self.inp = nn.Linear(6, 6)
        self.block = nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 6))
        self.main_head = nn.Linear(6, 1)
        self.aux_head = nn.Linear(6, 1)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        h = self.inp(x)
        if self.mode == "none":
            h = self.block(h)
        else:
            h = checkpoint.checkpoint(self.block, h, use_reentrant=self.mode == "reentrant")
        return {"main": self.main_head(h).pow(2).mean() + h.mean(),
                "aux": self.aux_head(h).pow(2).mean() - 3 * h.mean()}


def _grads(model: nn.Module) -> dict[str, Tensor]:
    return {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("device", DEVICES)
def test_non_reentrant_checkpointing_gives_mgcm_exactly(device):
    plain = TwoTaskNet().to(device)
    checkpointed = copy.deepcopy(plain)
    checkpointed.mode = "non-reentrant"
    x = torch.randn(16, 6, device=device)
    stats = ConflictEngine(plain, "mgcm").backward(plain(x), "main")
    assert any(r.conflict for r in stats.records)  # a projection happened
    ConflictEngine(checkpointed, "mgcm").backward(checkpointed(x), "main")
    for name, want in _grads(plain).items():
        torch.testing.assert_close(_grads(checkpointed)[name], want, msg=name)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("method", ["mgcm", "discard"])
def test_reentrant_checkpointing_is_refused_naming_the_flag(device, method):
    model = TwoTaskNet("reentrant").to(device)
    with pytest.raises(UserError, match="--checkpoint-activations.*use_reentrant=False"):
        ConflictEngine(model, method).backward(model(torch.randn(4, 6, device=device)), "main")


def test_fairseqs_checkpoint_wrapper_is_refused():
    """fairseq's --checkpoint-activations wraps layers with its own reentrant checkpoint."""
    from fairseq.modules.checkpoint_activations import checkpoint_wrapper

    model = TwoTaskNet()
    model.block = checkpoint_wrapper(model.block)
    with pytest.raises(UserError, match="--checkpoint-activations"):
        ConflictEngine(model, "mgcm").backward(model(torch.randn(4, 6)), "main")


def test_our_architectures_do_not_take_the_flag():
    """The flag itself: fairseq-train's parser refuses it for our architectures, naming it."""
    from fairseq_mgcm.recipe.train_flags import BadFlag, Flag, check_combination

    flags = ["--task", "speech_to_text_multitask", "--arch", "waitk_s2t_transformer_s",
             "--criterion", "st_ctc_asr", "--optimizer", "conflict_aware",
             "--conflict-method", "mgcm", "--checkpoint-activations"]
    with pytest.raises(BadFlag, match="--checkpoint-activations: unrecognized argument"):
        check_combination([Flag(token, "command line") for token in flags])
