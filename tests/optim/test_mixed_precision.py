"""fairseq's fp16 and AMP wrappers around the engine, on what a CPU can run: FP16Optimizer and
MemoryEfficientFP16Optimizer with a half-precision model, FP16Optimizer's flattened fp32 copy
(what ``--fp16`` runs on GPUs; on CPU with fairseq's CUDA device lookup patched, and on CUDA
when there is a GPU), and AMPOptimizer with bf16 autocast (its CUDA GradScaler is off on
CPU)."""
from __future__ import annotations

import copy
import math

import pytest
import torch
from fairseq.optim.amp_optimizer import AMPOptimizer
from fairseq.optim.fp16_optimizer import FP16Optimizer, MemoryEfficientFP16Optimizer
from optim_testing import ThreeTaskModel, adam, batch, fairseq_cfg, grads

from fairseq_mgcm.conflict import ConflictEngine
from fairseq_mgcm.optim import ConflictAwareBackward

FP16_WRAPPERS = [FP16Optimizer, MemoryEfficientFP16Optimizer]


@pytest.mark.parametrize("method", ["mgcm", "pcgrad"])
@pytest.mark.parametrize("wrapper", FP16_WRAPPERS, ids=lambda w: w.__name__)
def test_fp16_losses_are_scaled_and_flags_set(wrapper, method: str) -> None:
    torch.manual_seed(0)
    model = ThreeTaskModel().half()
    twin = copy.deepcopy(model)
    cfg = fairseq_cfg(fp16_init_scale=2.0**10)
    optimizer = wrapper.build_optimizer(cfg, list(model.parameters()))
    x, targets = batch(0, dtype=torch.half)
    stats = ConflictAwareBackward(method, seed=2)(optimizer, model, model(x, targets))
    scale = optimizer.scaler.loss_scale
    ConflictEngine(twin, method, seed=2).backward(
        {name: scale * loss for name, loss in twin(x, targets).items()}, "st")
    for (name, got), want in zip(grads(model).items(), grads(twin).values()):
        assert got.dtype == torch.half
        torch.testing.assert_close(got, want, msg=name)
    assert all(math.isfinite(r.cosine) for r in stats.records)  # fp32 dots: no fp16 overflow
    if wrapper is FP16Optimizer:
        assert optimizer._needs_sync
    optimizer.multiply_grads(1.0 / 4)
    optimizer.clip_grad_norm(1.0)
    before = model.layer.fc1.weight.detach().clone()
    optimizer.step()
    assert not torch.equal(before, model.layer.fc1.weight)


@pytest.mark.parametrize("wrapper", FP16_WRAPPERS, ids=lambda w: w.__name__)
def test_fp16_overflow_skips_the_step_and_lowers_the_scale(wrapper) -> None:
    """Non-finite gradients pass through the engine; the wrapper's overflow check then raises
    OverflowError, which fairseq's trainer turns into a skipped update."""
    torch.manual_seed(0)
    model = ThreeTaskModel().half()
    cfg = fairseq_cfg(fp16_init_scale=2.0**10)
    optimizer = wrapper.build_optimizer(cfg, list(model.parameters()))
    x, targets = batch(0, dtype=torch.half)
    losses = model(x, targets)
    losses["ctc"] = losses["ctc"] * math.inf
    ConflictAwareBackward("mgcm")(optimizer, model, losses)
    with pytest.raises(OverflowError):
        optimizer.clip_grad_norm(1.0)
    assert optimizer.scaler.loss_scale < 2.0**10


def test_amp_bf16_on_cpu() -> None:
    torch.manual_seed(0)
    model = ThreeTaskModel()
    twin = copy.deepcopy(model)
    optimizer = AMPOptimizer.build_optimizer(fairseq_cfg(), list(model.parameters()))
    x, targets = batch(0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = model(x, targets)
        twin_losses = twin(x, targets)
    ConflictAwareBackward("mgcm")(optimizer, model, losses)
    assert not optimizer._grad_scaler.is_enabled()  # CUDA's GradScaler is off on CPU
    ConflictEngine(twin, "mgcm").backward(twin_losses, "st")
    for got, want in zip(grads(model).values(), grads(twin).values()):
        torch.testing.assert_close(got, want)
    optimizer.clip_grad_norm(1.0)
    optimizer.step()


def test_amp_with_an_active_grad_scaler() -> None:
    """AMPOptimizer with a GradScaler that really scales (torch's CPU scaler, enabled): the
    engine projects the scaled losses, and after fairseq's unscale and clip the gradient is the
    fp32 engine gradient, clipped. (fairseq's ``AMPOptimizer.step`` then unscales a second
    time, ``GradScaler.step`` being given the fairseq optimizer rather than the torch one that
    ``clip_grad_norm`` unscaled; Adam hardly notices. That is fairseq's, left alone.)"""
    torch.manual_seed(0)
    model = ThreeTaskModel()
    twin = copy.deepcopy(model)
    optimizer = AMPOptimizer.build_optimizer(fairseq_cfg(), list(model.parameters()))
    optimizer._grad_scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
    assert optimizer._grad_scaler.is_enabled()
    x, targets = batch(0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = model(x, targets, anti=2.0)
        twin_losses = twin(x, targets, anti=2.0)
    stats = ConflictAwareBackward("mgcm")(optimizer, model, losses)
    assert any(r.conflict for r in stats.records)
    ConflictEngine(twin, "mgcm").backward(twin_losses, "st")
    for (name, got), want in zip(grads(model).items(), grads(twin).values()):
        torch.testing.assert_close(got, 2.0**12 * want, msg=name)  # scaled by the scaler
    twin_optimizer = adam(twin.parameters())
    norm = optimizer.clip_grad_norm(1.0)  # unscales, then clips
    torch.testing.assert_close(norm, twin_optimizer.clip_grad_norm(1.0))
    for (name, got), want in zip(grads(model).items(), grads(twin).values()):
        torch.testing.assert_close(got, want, msg=name)
    before = model.layer.fc1.weight.detach().clone()
    optimizer.step()
    assert not torch.equal(before, model.layer.fc1.weight)
    assert optimizer._grad_scaler.get_scale() == 2.0**12  # finite: no back-off


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU"))]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("method", ["mgcm", "discard"])
def test_fp16_flat_fp32_gradient_equals_the_fp32_projection(device, method, monkeypatch):
    """What configs/hardware/1gpu.args runs: --fp16 with fairseq's flattened fp32 master
    gradient. The engine's fp32 0-dim coefficients meet fp16 gradients; the flat fp32 gradient
    the step reads must equal the same projection done in fp32 (times the loss scale), up to
    fp16 rounding, and the step must reach the fp16 model."""
    if device == "cpu":  # fairseq keys the flat copy by CUDA device; its tensors follow the
        # parameters', and a CPU parameter's device index is None
        monkeypatch.setattr(torch.cuda, "current_device", lambda: None)
    torch.manual_seed(0)
    reference = ThreeTaskModel().to(device)
    model = copy.deepcopy(reference).half()
    cfg = fairseq_cfg(fp16_init_scale=2.0**7)
    cfg.common.fp16_no_flatten_grads = False
    optimizer = FP16Optimizer.build_optimizer(cfg, list(model.parameters()))
    assert optimizer.has_flat_params
    x, targets = batch(0, dtype=torch.half)
    x, targets = x.to(device), {name: t.to(device) for name, t in targets.items()}

    stats = ConflictAwareBackward(method)(optimizer, model, model(x, targets))
    want = ConflictEngine(reference, method).backward(reference(x.float(), targets), "st")
    assert [r.conflict for r in stats.records] == [r.conflict for r in want.records]
    assert any(r.conflict for r in stats.records)  # the coefficient path ran
    optimizer._sync_fp16_grads_to_fp32()  # what clip_grad_norm and step do first
    [flat] = optimizer.fp32_params.values()
    expected = optimizer.scaler.loss_scale * torch.cat(
        [p.grad.reshape(-1) for p in reference.parameters()])
    assert flat.grad.dtype == torch.float32
    error = (flat.grad - expected).norm() / expected.norm()
    assert error < 5e-3, error

    before = model.layer.fc1.weight.detach().clone()
    optimizer.clip_grad_norm(10.0)
    optimizer.step()
    assert not torch.equal(before, model.layer.fc1.weight)
    master = _flat_slice(model, flat, "layer.fc1.weight")  # the stepped fp32 copy, in fp16
    torch.testing.assert_close(model.layer.fc1.weight.reshape(-1), master.half(), rtol=0, atol=0)


def _flat_slice(model: torch.nn.Module, flat: torch.Tensor, name: str) -> torch.Tensor:
    """``name``'s slice of fairseq's flat fp32 copy (parameters concatenated in order)."""
    offset = 0
    for param_name, param in model.named_parameters():
        if param_name == name:
            return flat.detach()[offset: offset + param.numel()]
        offset += param.numel()
    raise KeyError(name)


def _amp_with_scaler(params) -> AMPOptimizer:
    optimizer = AMPOptimizer.build_optimizer(fairseq_cfg(), list(params))
    optimizer._grad_scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
    return optimizer


RECOMPUTE_WRAPPERS = {  # name -> (model dtype, autocast, build the wrapper)
    "FP16Optimizer": (torch.half, False, lambda params: FP16Optimizer.build_optimizer(
        fairseq_cfg(fp16_init_scale=2.0**10), list(params))),
    "MemoryEfficientFP16Optimizer": (torch.half, False, lambda params: (
        MemoryEfficientFP16Optimizer.build_optimizer(fairseq_cfg(fp16_init_scale=2.0**10),
                                                     list(params)))),
    "AMPOptimizer": (torch.float32, True, _amp_with_scaler),
}


@pytest.mark.parametrize("method", ["mgcm", "pcgrad"])
@pytest.mark.parametrize("wrapper", RECOMPUTE_WRAPPERS)
def test_recompute_under_fp16_and_amp_gives_retains_gradients(wrapper: str, method: str) -> None:
    """The forward handed over (dropout and, for AMP, bf16 autocast inside it) is re-run per
    pass and scaled as the wrapper scales: the same scaled gradients as ``retain``."""
    dtype, autocast, build = RECOMPUTE_WRAPPERS[wrapper]
    torch.manual_seed(0)
    models = {"retain": ThreeTaskModel().to(dtype)}
    models["recompute"] = copy.deepcopy(models["retain"])
    x, targets = batch(0, dtype=dtype)
    for memory, model in models.items():
        optimizer = build(model.parameters())

        def forward(model=model) -> dict[str, torch.Tensor]:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                return model(torch.nn.functional.dropout(x, 0.3), targets, anti=2.0)

        torch.manual_seed(1)
        stats = ConflictAwareBackward(method, seed=2, memory=memory)(optimizer, model, forward)
        assert stats.forwards == (stats.passes if memory == "recompute" else 1)
    for (name, got), want in zip(grads(models["recompute"]).items(),
                                 grads(models["retain"]).values()):
        torch.testing.assert_close(got, want, rtol=0, atol=0, msg=name)
