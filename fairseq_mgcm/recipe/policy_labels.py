"""How the report names a simultaneous policy and its latency knob.

The sweep's ``results.tsv`` gives each row a ``policy`` (the agent's ``--policy``) and a
``value``: the one number that trades quality for latency under that policy. A reader of
results.md or the BLEU-AL plot should see the knob under the name the policy's paper gives it
(``k=5``, ``f=4``, ``alpha=0.4``, ``n=2``), not a bare number whose meaning depends on the row,
and every table lists the policies in one order: that of the agent's ``POLICIES``.
"""
from __future__ import annotations

from fairseq_mgcm.agents.policies import POLICIES

__all__ = ["PARAMETER", "decoding_name", "point_label", "policy_rank", "value_text"]

# policy -> the name of its latency knob (waitk's k, AlignAtt's f frames, EDAtt's alpha,
# local agreement's n hypotheses).
PARAMETER = {"waitk": "k", "alignatt": "f", "edatt": "alpha", "local-agreement": "n"}
# policy -> its name in prose (decoding names of the comparison).
_PROSE = {"waitk": "wait-k", "alignatt": "alignatt", "edatt": "edatt",
          "local-agreement": "local agreement"}
FULL_SOURCE = "agent, full source"  # wait-k with a k beyond any source (inf in the table)


def policy_rank(policy: str) -> int:
    """Where ``policy`` goes in a table: the agent's order of ``--policy`` choices."""
    return POLICIES.index(policy)


def value_text(value: float) -> str:
    """``5`` for 5.0, ``0.4`` for 0.4, ``inf`` for the full-source k."""
    return f"{value:.0f}" if value.is_integer() else f"{value:g}"


def point_label(policy: str, value: float) -> str:
    """``k=5``, ``f=4``, ``alpha=0.4``, ``n=2``."""
    return f"{PARAMETER[policy]}={value_text(value)}"


def decoding_name(policy: str, value: float) -> str:
    """``wait-k k=5``, ``alignatt f=4``, ``edatt alpha=0.4``, ``local agreement n=2``; the
    wait-k agent that reads all the source first is ``agent, full source``."""
    if policy == "waitk" and value == float("inf"):
        return FULL_SOURCE
    return f"{_PROSE[policy]} {point_label(policy, value)}"
