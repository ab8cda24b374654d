"""Split a model's parameters into the modules that MGCM projects on, from the module tree alone.

The rule (``granularity="module"``), applied top-down from the root:

1. A module recognised by its class takes all of its parameters as one group, and the walk does
   not descend into it:

   ========== =====================================================================
   attention  class name contains "Attention", or has ``q_proj``/``k_proj``/``v_proj``
              children (torch's and fairseq's ``MultiheadAttention`` both match)
   layernorm  class name contains "Norm" (LayerNorm, RMSNorm, GroupNorm, BatchNorm)
   embedding  an ``nn.Embedding`` or a class name containing "Embedding"
   subsampler class name contains "Subsampl" (fairseq's ``Conv1dSubsampler``)
   ffn        class name contains "FeedForward", "FFN" or "MLP"
   ========== =====================================================================

2. Any other module is a container. Its children that contain modules are walked in turn. Its
   *leftovers* (direct parameters and parameter-holding leaf children such as ``nn.Linear``)
   become groups too:

   * in a *layer*, a container with an attention block among its direct children, the
     leftovers form one ``ffn`` group (fairseq's transformer layers keep ``fc1`` and ``fc2`` as
     direct children), named ``<layer>.{fc1,fc2}``;
   * elsewhere each leftover child is its own group: a ``head`` when it is a linear map whose
     name says so (``output_projection``, ``ctc_proj``, ... : "proj", "head", "output", "ctc",
     "classifier", "logit"), a ``subsampler`` when it is a convolution, ``other`` otherwise; the
     container's direct parameters form one ``other`` group.

A parameter shared between modules (tied input/output embeddings) belongs to the first group
that reaches it, in registration order; a group left empty is dropped. Parameters that do not
require gradients are left out.

``granularity="layer"`` merges every group that lies inside one element of a module list
(``encoder.layers.3``) into one ``layer`` group and keeps the others; ``"parameter"`` makes
each parameter tensor its own group (of its module's kind); ``"model"`` is one group.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from torch import nn

GRANULARITIES = ("parameter", "module", "layer", "model")
KINDS = ("attention", "ffn", "layernorm", "embedding", "subsampler", "head", "other")

_HEAD_NAME = re.compile(r"proj|head|output|ctc|classifier|logit", re.IGNORECASE)
_CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass(frozen=True)
class Group:
    """Parameters projected together: ``name`` is a module path, ``kind`` one of ``KINDS``
    (or ``"layer"`` / ``"model"`` at those granularities)."""

    name: str
    kind: str
    params: tuple[tuple[str, nn.Parameter], ...]

    @property
    def numel(self) -> int:
        return sum(p.numel() for _, p in self.params)


def partition(model: nn.Module, granularity: str = "module") -> tuple[Group, ...]:
    """Groups covering every parameter of ``model`` that requires a gradient, each once."""
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
    if granularity == "model":
        params = tuple((n, p) for n, p in model.named_parameters() if p.requires_grad)
        return (Group("<model>", "model", params),) if params else ()
    groups = _Walker(model).groups
    if granularity == "parameter":
        return tuple(Group(name, g.kind, ((name, p),)) for g in groups for name, p in g.params)
    if granularity == "layer":
        return _merge_layers(groups)
    return groups


def describe(groups: tuple[Group, ...]) -> str:
    """A table of the groups: name, kind, tensors, elements; then totals per kind."""
    width = max((len(g.name) for g in groups), default=5)
    lines = [f"{'group':<{width}}  {'kind':<10}  tensors  elements"]
    totals: dict[str, list[int]] = {}
    for g in groups:
        lines.append(f"{g.name:<{width}}  {g.kind:<10}  {len(g.params):>7}  {g.numel:>8}")
        total = totals.setdefault(g.kind, [0, 0])
        total[0] += 1
        total[1] += g.numel
    lines.append("")
    lines.extend(f"{kind}: {n} groups, {numel} elements" for kind, (n, numel) in totals.items())
    return "\n".join(lines)


def _special_kind(module: nn.Module) -> str | None:
    name = type(module).__name__.lower()
    if "attention" in name or all(hasattr(module, a) for a in ("q_proj", "k_proj", "v_proj")):
        return "attention"
    if "norm" in name:
        return "layernorm"
    if isinstance(module, nn.Embedding) or "embedding" in name:
        return "embedding"
    if "subsampl" in name:
        return "subsampler"
    if "feedforward" in name or "ffn" in name or "mlp" in name:
        return "ffn"
    return None


def _leaf_kind(child_name: str, child: nn.Module) -> str:
    if isinstance(child, _CONV_TYPES):
        return "subsampler"
    if isinstance(child, nn.Linear) and _HEAD_NAME.search(child_name):
        return "head"
    return "other"


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


class _Walker:
    """One top-down walk of the module tree, emitting groups in registration order."""

    def __init__(self, model: nn.Module) -> None:
        self._seen: set[int] = set()
        self._groups: list[Group] = []
        self._visit(model, "")
        self.groups = tuple(self._groups)

    def _claim(self, module: nn.Module, path: str, recurse: bool) -> list[tuple[str, nn.Parameter]]:
        claimed = []
        for name, p in module.named_parameters(recurse=recurse):
            if p.requires_grad and id(p) not in self._seen:
                self._seen.add(id(p))
                claimed.append((_join(path, name), p))
        return claimed

    def _emit(self, name: str, kind: str, params: list[tuple[str, nn.Parameter]]) -> None:
        if params:
            self._groups.append(Group(name or "<root>", kind, tuple(params)))

    def _visit(self, module: nn.Module, path: str) -> None:
        kind = _special_kind(module)
        if kind is not None:
            self._emit(path, kind, self._claim(module, path, recurse=True))
            return
        leftovers: list[tuple[str, nn.Module]] = []
        is_layer = False
        for child_name, child in module.named_children():
            child_path = _join(path, child_name)
            is_layer = is_layer or _special_kind(child) == "attention"
            if _special_kind(child) is not None or any(True for _ in child.children()):
                self._visit(child, child_path)
            elif any(True for _ in child.parameters()):
                leftovers.append((child_name, child))
        own = self._claim(module, path, recurse=False)
        if is_layer:
            params = own + [q for n, c in leftovers for q in self._claim(c, _join(path, n), True)]
            names = [n for n, _ in leftovers] + [n.rsplit(".", 1)[-1] for n, _ in own]
            self._emit(_join(path, "{" + ",".join(names) + "}"), "ffn", params)
            return
        for child_name, child in leftovers:
            child_path = _join(path, child_name)
            params = self._claim(child, child_path, recurse=True)
            self._emit(child_path, _leaf_kind(child_name, child), params)
        self._emit(path, "other", own)


def _layer_key(group: Group) -> str | None:
    parts = group.name.split(".")
    for i, part in enumerate(parts[:-1]):
        if part.isdigit():
            return ".".join(parts[: i + 1])
    return None


def _merge_layers(groups: tuple[Group, ...]) -> tuple[Group, ...]:
    merged: dict[str, Group] = {}
    for g in groups:
        key = _layer_key(g)
        if key is None:
            merged[g.name] = g
        elif key in merged:
            merged[key] = Group(key, "layer", merged[key].params + g.params)
        else:
            merged[key] = Group(key, "layer", g.params)
    return tuple(merged.values())
