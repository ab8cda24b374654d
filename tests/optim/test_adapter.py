"""ConflictAwareBackward with fairseq's fp32 Adam: engine result, telemetry, errors."""
from __future__ import annotations

import copy

import pytest
import torch
from fairseq.logging import metrics
from optim_testing import ThreeTaskModel, adam, batch, fairseq_cfg, grads
from torch import nn

from fairseq_mgcm.conflict import ConflictEngine
from fairseq_mgcm.conflict.telemetry import read_windows
from fairseq_mgcm.errors import BadValue
from fairseq_mgcm.optim import ConflictAwareBackward


@pytest.mark.parametrize("method", ["none", "mgcm", "pcgrad", "discard"])
def test_fp32_adam_gets_the_engine_gradient_and_steps(method: str) -> None:
    torch.manual_seed(0)
    model = ThreeTaskModel()
    twin = copy.deepcopy(model)
    x, targets = batch(0)
    optimizer = adam(model.parameters())
    ConflictAwareBackward(method, seed=3)(optimizer, model, model(x, targets), primary="st")
    ConflictEngine(twin, method, seed=3).backward(twin(x, targets), "st")
    for (name, got), want in zip(grads(model).items(), grads(twin).values()):
        torch.testing.assert_close(got, want, msg=name)
    before = model.layer.fc1.weight.detach().clone()
    optimizer.clip_grad_norm(0.5)
    optimizer.step()
    assert not torch.equal(before, model.layer.fc1.weight)


def test_update_freq_accumulates_across_calls() -> None:
    torch.manual_seed(0)
    model = ThreeTaskModel()
    twin = copy.deepcopy(model)
    backward = ConflictAwareBackward("mgcm")
    optimizer = adam(model.parameters())
    for seed in (1, 2):
        x, targets = batch(seed)
        backward(optimizer, model, model(x, targets))
    engine = ConflictEngine(twin, "mgcm")
    for seed in (1, 2):
        x, targets = batch(seed)
        engine.backward(twin(x, targets), "st")
    for got, want in zip(grads(model).values(), grads(twin).values()):
        torch.testing.assert_close(got, want)


def test_telemetry_metrics_and_jsonl(tmp_path) -> None:
    torch.manual_seed(0)
    model = ThreeTaskModel()
    path = tmp_path / "conflicts.jsonl"
    backward = ConflictAwareBackward("mgcm", telemetry_jsonl=str(path), telemetry_interval=2)
    optimizer = adam(model.parameters())
    with metrics.aggregate(new_root=True) as agg:
        for step in range(3):
            optimizer.zero_grad()
            x, targets = batch(step)
            backward(optimizer, model, model(x, targets, anti=3.0), update_num=step)
        values = agg.get_smoothed_values()
    assert values["conflict_rate_ctc_attention"] == 1.0
    assert "cosine_asr_ffn" in values and "conflict_rate_asr" in values
    backward.flush_telemetry()
    windows = list(read_windows(path))
    assert [(w.first_step, w.last_step, w.calls) for w in windows] == [(0, 1, 2), (2, 2, 1)]
    modules = {m.module for m in windows[0].modules}
    assert modules >= {"layer.attn", "layer.norm", "layer.{fc1,fc2}"}
    [attn] = [m for m in windows[0].modules if m.module == "layer.attn" and m.pair == "ctc"]
    assert (attn.n, attn.conflicts) == (2, 2)


def test_ignored_batch_gives_zero_gradients() -> None:
    model = ThreeTaskModel()
    x, targets = batch(0)
    losses = {name: loss * 0 for name, loss in model(x, targets).items()}
    ConflictAwareBackward("mgcm")(adam(model.parameters()), model, losses)
    assert all(torch.equal(g, torch.zeros_like(g)) for g in grads(model).values())


def test_engine_is_built_for_the_unwrapped_model() -> None:
    class Wrapper(nn.Module):
        def __init__(self, module: nn.Module) -> None:
            super().__init__()
            self.module = module

    model = ThreeTaskModel()
    backward = ConflictAwareBackward("mgcm", granularity="module")
    engine = backward.engine(Wrapper(Wrapper(model)))
    assert "module." not in engine.describe_partition()
    assert engine is backward.engine(Wrapper(model))


def test_unknown_optimizer_wrapper_is_refused() -> None:
    from fairseq.optim.adam import FairseqAdam

    class Custom(FairseqAdam):
        def backward(self, loss):
            (loss * 2).backward()

    model = ThreeTaskModel()
    x, targets = batch(0)
    optimizer = Custom(fairseq_cfg().optimizer, list(model.parameters()))
    with pytest.raises(NotImplementedError, match="Custom"):
        ConflictAwareBackward("mgcm")(optimizer, model, model(x, targets))


def test_bad_options_fail_at_construction() -> None:
    with pytest.raises(ValueError, match="method"):
        ConflictAwareBackward("mgmc")
    with pytest.raises(ValueError, match="aux_mode"):
        ConflictAwareBackward("mgcm", aux_mode="both")
    with pytest.raises(ValueError, match="memory"):
        ConflictAwareBackward("mgcm", memory="offload")


def test_recompute_refuses_losses_without_their_forward() -> None:
    """A train_step that hands over losses cannot be recomputed: one line naming the flag,
    before any gradient is written."""
    model = ThreeTaskModel()
    x, targets = batch(0)
    with pytest.raises(BadValue, match=r"^--conflict-memory recompute .* not its forward"):
        ConflictAwareBackward("mgcm", memory="recompute")(adam(model.parameters()), model,
                                                          model(x, targets))
    assert all(p.grad is None for p in model.parameters())


def test_method_none_writes_no_telemetry(tmp_path) -> None:
    model = ThreeTaskModel()
    path = tmp_path / "conflicts.jsonl"
    x, targets = batch(0)
    ConflictAwareBackward("none", telemetry_jsonl=str(path))(adam(model.parameters()), model,
                                                             model(x, targets))
    assert not path.exists()
