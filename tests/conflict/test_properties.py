"""Properties every method must have (the torchjd way: one check, run against each method)."""
from __future__ import annotations

import math

import pytest
import torch
from conflict_testing import DEVICE, assert_grads_close, grads_of, toy_losses, toy_model
from torch import nn

from fairseq_mgcm.conflict import ConflictEngine, partition

METHODS = ["none", "mgcm", "discard", "pcgrad"]
MODULAR = ["mgcm", "discard"]
GRANULARITIES = ["parameter", "module", "layer", "model"]
DECODER = ("decoder_layer.", "embed_tokens.", "output_projection.")


def _primary_grads(model: nn.Module, loss: torch.Tensor) -> dict[str, torch.Tensor | None]:
    names, params = zip(*model.named_parameters())
    return dict(zip(names, torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)))


def _group_dot(group, a: dict, b: dict) -> float:
    return sum(float((a[n] * b[n]).sum()) for n, _ in group.params
               if a[n] is not None and b[n] is not None)


@pytest.mark.parametrize("aux_mode", ["separate", "combined"])
@pytest.mark.parametrize("granularity", GRANULARITIES)
@pytest.mark.parametrize("method", MODULAR)
def test_update_does_not_conflict_with_primary_on_any_group(method, granularity, aux_mode) -> None:
    """``<p_m + sum_t g_t,m', p_m> >= ||p_m||^2`` on every group: each projected (or dropped)
    auxiliary gradient has a non-negative cosine with the primary one."""
    model = toy_model(0)
    losses = toy_losses(model, 0, anti=2.0)
    p = _primary_grads(model, losses()["st"])
    ConflictEngine(model, method, granularity, aux_mode).backward(losses(), "st")
    update = grads_of(model)
    aux_part = {n: None if update[n] is None else update[n] - (p[n] if p[n] is not None else 0)
                for n in update}
    for group in partition(model, granularity):
        tolerance = 1e-9 * max(1.0, _group_dot(group, p, p))
        assert _group_dot(group, aux_part, p) >= -tolerance, group.name


@pytest.mark.parametrize("anti", [0.5, 2.0])
def test_pcgrad_update_does_not_conflict_with_either_task(anti: float) -> None:
    """With two tasks the PCGrad update has a non-negative inner product with both."""
    model = toy_model(1)
    losses = toy_losses(model, 1, tasks=("st", "ctc"), anti=anti)
    per_task = {t: _primary_grads(model, loss) for t, loss in losses().items()}
    ConflictEngine(model, "pcgrad").backward(losses(), "st")
    update = grads_of(model)
    everything = partition(model, "model")[0]
    for task, grads in per_task.items():
        assert _group_dot(everything, update, grads) >= -1e-9, task


def _flat(group, grads: dict) -> torch.Tensor:
    return torch.cat([grads[n].reshape(-1) if grads[n] is not None
                      else torch.zeros(p.numel(), dtype=p.dtype, device=p.device)
                      for n, p in group.params])


@pytest.mark.parametrize("aux_mode", ["separate", "combined"])
@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_primary_gradient_is_never_changed(granularity: str, aux_mode: str) -> None:
    """MGCM changes only the auxiliary gradients, and only along the primary one: on every
    group, shared ones included, ``update - p - g`` (``g`` the sum of the auxiliary gradients)
    is ``c p_m`` with ``c >= 0`` (zero where nothing conflicts or no auxiliary reaches)."""
    model = toy_model(2)
    losses = toy_losses(model, 2, anti=2.0)
    per_task = {t: _primary_grads(model, loss) for t, loss in losses().items()}
    stats = ConflictEngine(model, "mgcm", granularity, aux_mode).backward(losses(), "st")
    assert any(r.conflict for r in stats.records)
    update = grads_of(model)
    moved = 0
    for group in partition(model, granularity):
        p = _flat(group, per_task["st"])
        rest = _flat(group, update) - sum(_flat(group, per_task[t]) for t in per_task)
        scale = max(1.0, float(rest.norm()), float(p.norm()))
        if float(p.norm()) == 0:
            torch.testing.assert_close(rest, torch.zeros_like(rest), rtol=0, atol=1e-12)
            continue
        c = float(torch.dot(rest, p) / torch.dot(p, p))
        torch.testing.assert_close(rest, c * p, rtol=0, atol=1e-10 * scale, msg=group.name)
        assert c >= -1e-12, group.name
        moved += c > 1e-9
    assert moved, "some group must have been projected"
    model.zero_grad(set_to_none=True)  # and the auxiliaries' share vanishes with them
    zeroed = {name: loss * 0 if name != "st" else loss for name, loss in losses().items()}
    ConflictEngine(model, "mgcm", granularity, aux_mode).backward(zeroed, "st")
    for name, grad in grads_of(model).items():
        if per_task["st"][name] is not None:
            torch.testing.assert_close(grad, per_task["st"][name], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_discard_keeps_or_drops_each_auxiliary_whole(granularity: str) -> None:
    """Discard: on every group ``update - p`` is the sum of a subset of the auxiliary
    gradients (each kept whole or dropped), and the primary gradient is never changed."""
    model = toy_model(2)
    losses = toy_losses(model, 2, anti=2.0)
    per_task = {t: _primary_grads(model, loss) for t, loss in losses().items()}
    ConflictEngine(model, "discard", granularity).backward(losses(), "st")
    update = grads_of(model)
    aux = [t for t in per_task if t != "st"]
    dropped = 0
    for group in partition(model, granularity):
        rest = _flat(group, update) - _flat(group, per_task["st"])
        subsets = [[t for i, t in enumerate(aux) if mask >> i & 1] for mask in range(2**len(aux))]
        matches = [subset for subset in subsets if torch.allclose(
            rest, sum((_flat(group, per_task[t]) for t in subset), torch.zeros_like(rest)),
            rtol=1e-9, atol=1e-11)]
        assert matches, group.name
        dropped += len(matches[-1]) < len(aux)
    assert dropped, "some auxiliary gradient must have been dropped"


@pytest.mark.parametrize("granularity", GRANULARITIES)
@pytest.mark.parametrize("method", METHODS)
def test_equals_plain_sum_when_nothing_conflicts(method: str, granularity: str) -> None:
    """Auxiliaries that are positive multiples of the primary never conflict: every method then
    gives exactly what ``none`` gives."""
    model = toy_model(3)
    losses = toy_losses(model, 3, tasks=("st",))

    def aligned() -> dict[str, torch.Tensor]:
        return {"st": losses()["st"], "ctc": 0.5 * losses()["st"], "asr": 2.0 * losses()["st"]}

    ConflictEngine(model, "none").backward(aligned(), "st")
    plain = grads_of(model)
    model.zero_grad(set_to_none=True)
    stats = ConflictEngine(model, method, granularity).backward(aligned(), "st")
    assert not any(r.conflict for r in stats.records)
    assert_grads_close(grads_of(model), plain)


@pytest.mark.parametrize("method", METHODS)
def test_linear_under_positive_scaling(method: str) -> None:
    """Scaling every loss by s > 0 scales the update by s (why fp16 loss scaling is harmless)."""
    model = toy_model(4)
    losses = toy_losses(model, 4, anti=1.5)
    ConflictEngine(model, method, seed=1).backward(losses(), "st")
    unscaled = grads_of(model)
    model.zero_grad(set_to_none=True)
    scaled = {name: 1024.0 * loss for name, loss in losses().items()}
    ConflictEngine(model, method, seed=1).backward(scaled, "st")
    expected = {n: None if g is None else 1024.0 * g for n, g in unscaled.items()}
    assert_grads_close(grads_of(model), expected)


@pytest.mark.parametrize("aux_mode", ["separate", "combined"])
@pytest.mark.parametrize("method", ["none", "mgcm", "discard"])
def test_order_of_auxiliaries_does_not_matter(method: str, aux_mode: str) -> None:
    model = toy_model(5)
    losses = toy_losses(model, 5, anti=1.0)
    ConflictEngine(model, method, aux_mode=aux_mode).backward(losses(), "st")
    forward = grads_of(model)
    model.zero_grad(set_to_none=True)
    reverse = dict(reversed(list(losses().items())))
    ConflictEngine(model, method, aux_mode=aux_mode).backward(reverse, "st")
    assert_grads_close(grads_of(model), forward)


def test_pcgrad_with_two_tasks_is_symmetric() -> None:
    model = toy_model(6)
    losses = toy_losses(model, 6, tasks=("st", "ctc"), anti=2.0)
    ConflictEngine(model, "pcgrad").backward(losses(), "st")
    first = grads_of(model)
    model.zero_grad(set_to_none=True)
    ConflictEngine(model, "pcgrad", seed=9).backward(losses(), "ctc")
    assert_grads_close(grads_of(model), first)


@pytest.mark.parametrize("method", MODULAR)
def test_absent_task_is_not_a_conflict(method: str) -> None:
    """A task that does not reach a group has no record there and leaves it alone; parameters
    nobody reaches keep ``.grad`` None, as after ``backward()``."""
    model = toy_model(7)
    losses = toy_losses(model, 7, anti=2.0)
    stats = ConflictEngine(model, method).backward(losses(), "st")
    by_pair: dict[str, set[str]] = {}
    for record in stats.records:
        by_pair.setdefault(record.tasks[1], set()).add(record.module)
    assert not any(m.startswith(DECODER) for m in by_pair["ctc"])
    assert not any(m.startswith(("layers.1.", "asr_proj", "ctc_proj")) for m in by_pair["asr"])
    assert "output_projection" in by_pair["asr"]  # reached through its weight only
    assert model.unused.weight.grad is None


class _TwoStage(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(3, 3)
        self.second = nn.Linear(3, 3)


@pytest.mark.parametrize("method", MODULAR)
def test_zero_primary_gradient_means_no_projection(method: str) -> None:
    """The primary reaches ``second`` but its gradient there is exactly zero: no division by
    zero, no projection, the auxiliary gradient is kept, the cosine is NaN, no conflict."""
    model = _TwoStage().double().to(DEVICE)
    x = torch.randn(4, 3, dtype=torch.float64, device=DEVICE)

    def losses() -> dict[str, torch.Tensor]:
        h = model.first(x)
        return {"st": (h * 1.5).sum() + 0.0 * model.second(h).sum(),
                "ctc": -(model.second(h) ** 2).sum() - 3 * h.sum()}

    aux = _primary_grads(model, losses()["ctc"])
    stats = ConflictEngine(model, method).backward(losses(), "st")
    torch.testing.assert_close(model.second.weight.grad, aux["second.weight"])
    [second] = [r for r in stats.records if r.module == "second"]
    assert math.isnan(second.cosine) and not second.conflict
    [first] = [r for r in stats.records if r.module == "first"]
    assert first.conflict


@pytest.mark.parametrize("aux_mode", ["separate", "combined"])
@pytest.mark.parametrize("method", ["mgcm", "discard", "pcgrad"])
def test_non_finite_gradients_pass_through(method: str, aux_mode: str) -> None:
    """An overflowing auxiliary leaves non-finite values in ``.grad`` (fairseq then skips the
    update) and is never counted as a conflict."""
    model = toy_model(8)
    losses = toy_losses(model, 8)
    broken = {name: loss * math.inf if name == "ctc" else loss for name, loss in losses().items()}
    stats = ConflictEngine(model, method, aux_mode=aux_mode).backward(broken, "st")
    assert not torch.isfinite(model.ctc_proj.bias.grad).all()
    assert not torch.isfinite(model.layers[1].fc1.weight.grad).all()
    assert not any(r.conflict for r in stats.records if "ctc" in r.tasks[1] or "ctc" in r.tasks)


def test_losses_without_graph_are_absent() -> None:
    model = toy_model(9)
    losses = toy_losses(model, 9, tasks=("st",))
    constant = {"st": losses()["st"], "ctc": torch.tensor(3.0, dtype=torch.float64)}
    ConflictEngine(model, "mgcm").backward(constant, "st")
    expected = _primary_grads(model, losses()["st"])
    assert_grads_close(grads_of(model), expected)


def test_bad_arguments_fail_clearly() -> None:
    model = toy_model(0)
    with pytest.raises(ValueError, match="method"):
        ConflictEngine(model, method="gradnorm")
    with pytest.raises(ValueError, match="granularity"):
        ConflictEngine(model, granularity="block")
    with pytest.raises(ValueError, match="aux_mode"):
        ConflictEngine(model, aux_mode="mixed")
    losses = toy_losses(model, 0)()
    with pytest.raises(KeyError, match="primary"):
        ConflictEngine(model).backward(losses, "mt")
    with pytest.raises(ValueError, match="scalar"):
        ConflictEngine(model).backward({"st": torch.ones(2, requires_grad=True)}, "st")


def test_methods_are_classes_on_one_base() -> None:
    """The four methods share one base whose ``__call__`` checks the inputs; a method object
    gives the same update as its name; a rule's (alpha, beta) is applied as given, and a rule
    that does not declare ``scales_auxiliary`` may not return alpha != 1."""
    from fairseq_mgcm.conflict import (
        METHODS,
        MGCM,
        ConflictMethod,
        Discard,
        GroupProjection,
        PCGrad,
        PlainSum,
        make_method,
    )

    assert [type(make_method(name)) for name in METHODS] == [PlainSum, MGCM, PCGrad, Discard]
    assert all(isinstance(make_method(name), ConflictMethod) for name in METHODS)
    model = toy_model(8)
    losses = toy_losses(model, 8, anti=2.0)
    groups = partition(model)
    for method in (PlainSum(), MGCM(), Discard(), PCGrad()):
        with pytest.raises(KeyError, match="primary"):
            method(groups, losses(), "mt")
        with pytest.raises(ValueError, match="scalar"):
            method(groups, {"st": torch.ones(2, requires_grad=True)}, "st")
    ConflictEngine(model, "mgcm", aux_mode="combined").backward(losses(), "st")
    by_name = grads_of(model)
    model.zero_grad(set_to_none=True)
    ConflictEngine(model, MGCM(aux_mode="combined")).backward(losses(), "st")
    assert_grads_close(grads_of(model), by_name)

    class Halving(GroupProjection):  # alpha = 1/2 everywhere, but says it never scales
        name = "halving"

        def _coefficients(self, dot, primary_sq, conflict):
            return 0.5, 0.0

    model.zero_grad(set_to_none=True)
    with pytest.raises(ValueError, match="scales_auxiliary"):
        ConflictEngine(model, Halving()).backward(losses(), "st")
    Halving.scales_auxiliary = True
    model.zero_grad(set_to_none=True)
    ConflictEngine(model, Halving(), granularity="model").backward(losses(), "st")
    per_task = {t: _primary_grads(model, loss) for t, loss in losses().items()}
    for name, grad in grads_of(model).items():  # p + (g_ctc + g_asr) / 2, as given
        parts = [(1.0 if t == "st" else 0.5) * g[name] for t, g in per_task.items()
                 if g[name] is not None]
        if parts:
            torch.testing.assert_close(grad, sum(parts), rtol=1e-9, atol=1e-11)
