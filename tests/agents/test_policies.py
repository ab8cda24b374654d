"""AlignAtt, EDAtt and local agreement: their decision rules on hand-made attention vectors
(the papers' definitions), the attention the decoder hands them, and the agent running each
policy on random-weight models the way SimulEval drives it."""
from __future__ import annotations

from argparse import Namespace

import pytest
import torch
from agent_testing import make_loaded, simulate, speechlike
from test_policy import offline_greedy

from fairseq_mgcm.agents.policies import (
    PolicyOptions,
    agreed_prefix,
    alignatt_writes,
    edatt_writes,
)
from fairseq_mgcm.agents.waitk_agent import WaitkAgent
from fairseq_mgcm.errors import BadValue


def _attention(*values: float) -> torch.Tensor:
    return torch.tensor(values)


# ---------------------------------------------------------------- the rules


def test_alignatt_waits_while_the_aligned_state_is_among_the_last_f() -> None:
    # five states; f = 2 marks states 3 and 4 as "the newest audio"
    assert alignatt_writes(_attention(0.1, 0.6, 0.1, 0.1, 0.1), frames=2)  # aligned to 1
    assert alignatt_writes(_attention(0.1, 0.1, 0.5, 0.2, 0.1), frames=2)  # 2: just before
    assert not alignatt_writes(_attention(0.1, 0.1, 0.2, 0.5, 0.1), frames=2)  # 3: among them
    assert not alignatt_writes(_attention(0.0, 0.0, 0.0, 0.1, 0.9), frames=2)
    assert not alignatt_writes(_attention(0.9, 0.1), frames=2)  # every state is new
    assert alignatt_writes(_attention(0.1, 0.1, 0.2, 0.5, 0.1), frames=1)  # a smaller f writes
    with pytest.raises(ValueError, match="frames"):
        alignatt_writes(_attention(1.0), frames=0)


def test_edatt_writes_while_the_newest_states_hold_less_than_alpha() -> None:
    attention = _attention(0.5, 0.3, 0.15, 0.05)
    assert edatt_writes(attention, frames=2, alpha=0.3)  # 0.2 < 0.3
    assert not edatt_writes(attention, frames=2, alpha=0.2)  # 0.2 is not below 0.2
    assert not edatt_writes(attention, frames=3, alpha=0.3)  # 0.5
    assert edatt_writes(attention, frames=1, alpha=0.1)  # 0.05
    assert not edatt_writes(attention, frames=10, alpha=0.99)  # all of it: 1.0
    with pytest.raises(ValueError, match="frames"):
        edatt_writes(attention, frames=0, alpha=0.5)


def test_local_agreement_writes_the_common_prefix() -> None:
    assert agreed_prefix([[5, 6, 7], [5, 6, 8]]) == [5, 6]
    assert agreed_prefix([[5, 6], [5, 6, 7, 8]]) == [5, 6]  # a shorter one bounds it
    assert agreed_prefix([[5, 6, 7], [5, 6, 7], [5, 9]]) == [5]  # LA-3: all three
    assert agreed_prefix([[4], [5]]) == [] and agreed_prefix([]) == []


def test_options_are_checked_with_the_flag_named() -> None:
    for kwargs, flag in [({"name": "wait-if-diff"}, "--policy"),
                         ({"alignatt_frames": 0}, "--alignatt-frames"),
                         ({"edatt_frames": 0}, "--edatt-frames"),
                         ({"edatt_alpha": 0.0}, "--edatt-alpha"),
                         ({"edatt_alpha": 1.5}, "--edatt-alpha"),
                         ({"agreement": 1}, "--la-agreement")]:
        with pytest.raises(BadValue, match=f"^{flag} "):
            PolicyOptions(**kwargs)
    assert [PolicyOptions().layer(n) for n in (1, 2, 3, 6, 12)] == [0, 0, 1, 3, 7]
    assert PolicyOptions(attention_layer=1).layer(2) == 1
    with pytest.raises(BadValue, match="--attention-layer 2: .* layers 0-1"):
        PolicyOptions(attention_layer=2).layer(2)


# ---------------------------------------------------------------- the decoder's attention


def test_incremental_attention_equals_the_full_forwards() -> None:
    """The attention the agent reads, one token at a time with the decoder's caches, is the
    attention of a full (non-incremental) forward over the same tokens: a distribution over
    the states (the hidden left context getting none)."""
    model = make_loaded(4, waitk=1000).model  # k = 1000: the full forward masks nothing
    torch.manual_seed(1)
    enc = torch.randn(12, 1, 64)
    tokens = torch.tensor([[2, 5, 7, 9, 6]])
    encoder_out = {"encoder_out": [enc], "encoder_padding_mask": []}
    with torch.inference_mode():
        _, extra = model.decoder(tokens, encoder_out, attention_layer=1)
        full = extra["attn"][0][0]  # [5, 12]
        state: dict = {}
        for i in range(1, tokens.shape[1] + 1):
            _, step = model.decoder(tokens[:, :i], encoder_out, incremental_state=state,
                                    attention_layer=-1)
            torch.testing.assert_close(step["attn"][0][0, -1], full[i - 1])
    torch.testing.assert_close(full.sum(-1), torch.ones(5))
    with pytest.raises(ValueError, match="attention_layer 2"):
        model.decoder(tokens, encoder_out, attention_layer=2)


# ---------------------------------------------------------------- the agent


def make_agent(policy: str, **options) -> WaitkAgent:
    args = Namespace(waitk=3, max_len_a=0.2, max_len_b=10, policy=policy, **options)
    return WaitkAgent(args, loaded=make_loaded(4))


STRICT = [  # settings under which nothing can be written before the source ends
    ("alignatt", {"alignatt_frames": 100_000}),
    ("edatt", {"edatt_frames": 100_000, "edatt_alpha": 0.5}),  # all attention is recent
    ("local-agreement", {"la_agreement": 100_000}),
]


@pytest.mark.parametrize("policy,options", STRICT, ids=[p for p, _ in STRICT])
def test_a_policy_that_never_writes_early_gives_offline_greedy(policy, options) -> None:
    audio = speechlike(1.5)
    agent = make_agent(policy, **options)
    writes = simulate(agent, audio, 16000, 160)
    assert [w.delay_ms for w in writes] == [audio.numel() / 16]
    assert writes[-1].finished and writes[-1].text
    assert writes[-1].text == offline_greedy(agent, audio, a=0.2, b=10)


PERMISSIVE = [
    ("alignatt", {"alignatt_frames": 1}),
    ("edatt", {"edatt_frames": 1, "edatt_alpha": 1.0}),
    ("local-agreement", {"la_agreement": 2}),
]


@pytest.mark.parametrize("policy,options", PERMISSIVE, ids=[p for p, _ in PERMISSIVE])
def test_a_permissive_policy_writes_while_reading(policy, options) -> None:
    audio = speechlike(3.0, seed=3)
    agent = make_agent(policy, **options)
    writes = simulate(agent, audio, 16000, 160)
    delays = [w.delay_ms for w in writes]
    assert delays == sorted(delays)
    assert [w.finished for w in writes] == [False] * (len(writes) - 1) + [True]
    assert delays[0] < audio.numel() / 16  # something written before the end


@pytest.mark.parametrize("policy", ["alignatt", "edatt"])
def test_every_early_token_passed_the_rule_on_its_attention(policy, monkeypatch) -> None:
    """Each token written before the source ended had the rule say 'write' on the attention of
    the prediction that produced it; each refusal was followed by a read."""
    decisions = []
    original = PolicyOptions.writes

    def recording(self, attention):
        decision = original(self, attention)
        decisions.append((attention.clone(), decision))
        return decision

    monkeypatch.setattr(PolicyOptions, "writes", recording)
    options = {"alignatt_frames": 2} if policy == "alignatt" else {"edatt_frames": 2,
                                                                    "edatt_alpha": 0.1}
    agent = make_agent(policy, **options)
    audio = speechlike(3.0, seed=5)
    simulate(agent, audio, 16000, 160)
    assert any(d for _, d in decisions) and not all(d for _, d in decisions)
    for attention, decision in decisions:
        assert abs(float(attention.sum()) - 1) < 1e-4
        if policy == "alignatt":
            assert decision == (int(attention.argmax()) < attention.numel() - 2)
        else:
            assert decision == (float(attention[-2:].sum()) < 0.1)
