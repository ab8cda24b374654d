"""When to write: the decision rules of the simultaneous policies, on plain tensors and lists.

The agent (``waitk_agent.py``) runs one of four policies on the same checkpoint; the rules here
are the papers' definitions, kept free of any model so that each is tested on hand-made
attention matrices (``tests/agents/test_policies.py``):

* ``waitk`` (Ma et al. 2019): target token i is written once ``(k + i) * r`` encoder states
  exist (the agent's :meth:`~fairseq_mgcm.agents.waitk_agent.WaitkAgent.frames_needed`);
* ``alignatt`` (Papi, Turchi and Negri, Interspeech 2023): a candidate token is written
  unless the encoder state it attends to most, in one decoder layer (head mean), is among the
  last ``f`` states received: it is then aligned to audio that may not be complete yet;
* ``edatt`` (Papi, Negri and Turchi, ACL 2023): a candidate token is written when the attention
  it puts on the last ``lambda`` states sums to less than ``alpha``: it does not depend on the
  newest audio much yet;
* ``local-agreement`` (Liu et al. 2020; Polak et al., IWSLT 2022, "LA-n"): after each read step
  the whole hypothesis is decoded on the source so far, and the prefix that the last ``n``
  hypotheses agree on is written.

Attention rules see one vector per candidate token: its encoder attention over the states of
the current sentence (left context excluded).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fairseq_mgcm.errors import BadValue

if TYPE_CHECKING:  # the recipe checks --policies without importing torch
    from torch import Tensor

POLICIES = ("waitk", "alignatt", "edatt", "local-agreement")
"""The ``--policy`` choices."""


def alignatt_writes(attention: Tensor, frames: int) -> bool:
    """AlignAtt: True (write) when the most attended state lies before the last ``frames``.

    ``attention`` is ``[T]``, the candidate token's attention over the ``T`` states so far. With
    ``T <= frames`` every state is among the last ``frames``: nothing is written yet.
    """
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    n = attention.shape[-1]
    return n > frames and int(attention.argmax()) < n - frames


def edatt_writes(attention: Tensor, frames: int, alpha: float) -> bool:
    """EDAtt: True (write) when the attention on the last ``frames`` states sums below
    ``alpha``. ``attention`` is ``[T]`` and sums to 1 over the states so far."""
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    return float(attention[-frames:].sum()) < alpha


def agreed_prefix(hypotheses: Sequence[Sequence[int]]) -> list[int]:
    """The longest common prefix of ``hypotheses`` (the last ``n`` of local agreement)."""
    if not hypotheses:
        return []
    prefix: list[int] = []
    for tokens in zip(*hypotheses):
        if any(token != tokens[0] for token in tokens[1:]):
            break
        prefix.append(tokens[0])
    return prefix


FLAGS = {"policy": "name", "attention_layer": "attention_layer",
         "alignatt_frames": "alignatt_frames", "edatt_frames": "edatt_frames",
         "edatt_alpha": "edatt_alpha", "la_agreement": "agreement"}
"""The agent's flag (argparse ``dest``) of each :class:`PolicyOptions` field."""


@dataclass(frozen=True)
class PolicyOptions:
    """A policy and its parameters, as the agent's flags give them (checked here, once)."""

    name: str = "waitk"
    attention_layer: int | None = None
    alignatt_frames: int = 4
    edatt_frames: int = 2
    edatt_alpha: float = 0.4
    agreement: int = 2

    def __post_init__(self) -> None:
        if self.name not in POLICIES:
            raise BadValue(f"--policy {self.name}: choose one of {', '.join(POLICIES)}")
        if self.alignatt_frames < 1:
            raise BadValue(f"--alignatt-frames {self.alignatt_frames}: must be >= 1")
        if self.edatt_frames < 1:
            raise BadValue(f"--edatt-frames {self.edatt_frames}: must be >= 1")
        if not 0 < self.edatt_alpha <= 1:
            raise BadValue(f"--edatt-alpha {self.edatt_alpha}: must be in (0, 1]")
        if self.agreement < 2:
            raise BadValue(f"--la-agreement {self.agreement}: local agreement compares at "
                           "least 2 hypotheses")

    @classmethod
    def from_args(cls, args: object) -> PolicyOptions:
        """The options from the agent's flags; a flag the namespace lacks (an agent built by
        hand) keeps the default here, the one ``add_args`` gives its flag too."""
        given = {field: getattr(args, flag) for flag, field in FLAGS.items() if hasattr(args, flag)}
        return cls(**given)

    @property
    def reads_attention(self) -> bool:
        return self.name in ("alignatt", "edatt")

    def layer(self, n_layers: int) -> int:
        """The decoder layer whose attention the rule reads (0-based): ``--attention-layer``,
        else the one two thirds up the stack (AlignAtt and EDAtt found the upper-middle layers
        best: layer 4 of 6)."""
        if self.attention_layer is None:
            return max(0, round(2 * n_layers / 3) - 1)
        if not 0 <= self.attention_layer < n_layers:
            raise BadValue(f"--attention-layer {self.attention_layer}: the checkpoint's decoder "
                           f"has layers 0-{n_layers - 1}")
        return self.attention_layer

    def writes(self, attention: Tensor) -> bool:
        """The attention rule's decision for one candidate token."""
        if self.name == "alignatt":
            return alignatt_writes(attention, self.alignatt_frames)
        if self.name == "edatt":
            return edatt_writes(attention, self.edatt_frames, self.edatt_alpha)
        raise ValueError(f"policy {self.name} does not read attention")

    def describe(self) -> str:
        """The policy and its parameters, for logs and output folders."""
        if self.name == "alignatt":
            return f"alignatt f={self.alignatt_frames}"
        if self.name == "edatt":
            return f"edatt lambda={self.edatt_frames} alpha={self.edatt_alpha:g}"
        if self.name == "local-agreement":
            return f"local-agreement n={self.agreement}"
        return "waitk"
