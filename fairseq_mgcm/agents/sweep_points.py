"""The settings a sweep evaluates: each policy with the values of its latency knob.

``--policies waitk alignatt:2,4,8 edatt:0.4,0.2 local-agreement:2,3`` (with ``--k 1 3 5``)
becomes one :class:`SweepPoint` per run: the agent's flags for it, its run folder and its
label. Each policy has one knob that trades quality for latency: wait-k's ``k``, AlignAtt's
``f`` (frames), EDAtt's ``alpha`` (its ``lambda`` stays an agent flag) and local agreement's
number of agreeing hypotheses ``n``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fairseq_mgcm.agents.policies import POLICIES, PolicyOptions
from fairseq_mgcm.errors import BadValue

KNOBS = {  # policy -> (agent flag, folder prefix, label name, value type)
    "waitk": ("--waitk", "k", "k", int),
    "alignatt": ("--alignatt-frames", "alignatt_f", "f", int),
    "edatt": ("--edatt-alpha", "edatt_a", "alpha", float),
    "local-agreement": ("--la-agreement", "local-agreement_n", "n", int),
}


@dataclass(frozen=True)
class SweepPoint:
    """One policy at one value of its knob."""

    policy: str
    value: int | float

    def agent_flags(self) -> list[str]:
        flag = KNOBS[self.policy][0]
        if self.policy == "waitk":
            return [flag, str(self.value)]
        return ["--policy", self.policy, flag, str(self.value)]

    @property
    def folder(self) -> str:
        """The run folder's prefix (wait-k's ``k3`` as before policies existed)."""
        return f"{KNOBS[self.policy][1]}{self.value:g}"

    @property
    def label(self) -> str:
        name = KNOBS[self.policy][2]
        return f"{self.policy} {name}={self.value:g}"


def _values(policy: str, text: str, spec: str) -> list[int | float]:
    kind = KNOBS[policy][3]
    values: list[int | float] = []
    for word in text.split(","):
        try:
            values.append(kind(word))
        except ValueError:
            wanted = "an integer" if kind is int else "a number"
            raise BadValue(f"--policies {spec}: {word!r} is not {wanted}") from None
    return values


def sweep_points(specs: Sequence[str], k_values: Sequence[int] | None) -> list[SweepPoint]:
    """The points of ``--policies`` in order (a bare ``waitk`` takes ``k_values``); each value
    is checked as the agent would check its flag, before any run."""
    points: list[SweepPoint] = []
    for spec in specs:
        policy, _, text = spec.partition(":")
        if policy not in POLICIES:
            raise BadValue(f"--policies {spec}: unknown policy {policy!r}; choose from "
                           f"{', '.join(POLICIES)}")
        if not text and policy != "waitk":
            raise BadValue(f"--policies {spec}: give {policy}'s {KNOBS[policy][2]} values, e.g. "
                           f"{policy}:{'0.4,0.2' if policy == 'edatt' else '2,4'}")
        if not text and not k_values:
            raise BadValue("--policies waitk: give the wait-k values with --k (or waitk:1,3,5)")
        values = _values(policy, text, spec) if text else list(k_values or [])
        for value in values:
            if policy == "waitk" and value < 1:
                raise BadValue(f"--policies {spec}: k {value} must be >= 1")
            _check(policy, value)
            point = SweepPoint(policy, value)
            if point in points:
                raise BadValue(f"--policies {spec}: {point.label} is given twice")
            points.append(point)
    return points


def _check(policy: str, value: int | float) -> None:
    """The agent's own checks of the value (``PolicyOptions``), with the sweep's flag named."""
    options = {"alignatt": "alignatt_frames", "edatt": "edatt_alpha",
               "local-agreement": "agreement"}
    if policy in options:
        try:
            PolicyOptions(name=policy, **{options[policy]: value})
        except BadValue as error:
            raise BadValue(f"--policies {policy}: {error}") from None
