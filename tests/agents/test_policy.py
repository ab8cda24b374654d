"""The wait-k policy, driven the way SimulEval 1.1.4 drives it, on random-weight models."""
from __future__ import annotations

import math
from argparse import Namespace

import pytest
import torch
import torchaudio.functional as AF
from agent_testing import make_loaded, simulate, speechlike
from fairseq.sequence_generator import SequenceGenerator
from torch import nn

from fairseq_mgcm.agents.online_fbank import OnlineFbank
from fairseq_mgcm.agents.waitk_agent import WaitkAgent

MODELS = pytest.mark.parametrize("chunk_size", [4, 0], ids=["chunk-causal", "bidirectional"])


def make_agent(chunk_size: int, waitk: int | None = None, a: float = 0.2, b: int = 10):
    args = Namespace(waitk=waitk, max_len_a=a, max_len_b=b)
    return WaitkAgent(args, loaded=make_loaded(chunk_size))


def offline_greedy(agent: WaitkAgent, audio: torch.Tensor, a: float, b: int) -> str:
    """fairseq's SequenceGenerator, beam 1, on the whole utterance (as fairseq-generate)."""
    model, dictionary = agent.loaded.model, agent.loaded.tgt_dict
    feats = OnlineFbank().push(audio)
    generator = SequenceGenerator([model], dictionary, beam_size=1, max_len_a=a, max_len_b=b)
    sample = {"net_input": {"src_tokens": feats[None], "src_lengths": torch.tensor([len(feats)])}}
    with torch.inference_mode():
        hypo = generator.generate([model], sample)[0][0]
    text = dictionary.string(hypo["tokens"])
    return text.replace(" ", "").replace("\u2581", " ").strip()


@MODELS
@pytest.mark.parametrize("segment_ms", [320, 170])
def test_large_k_equals_offline_greedy(chunk_size: int, segment_ms: int) -> None:
    audio = speechlike(1.5)
    agent = make_agent(chunk_size, waitk=1000, a=0.05, b=4)
    writes = simulate(agent, audio, 16000, segment_ms)
    source_ms = audio.numel() / 16
    assert [w.delay_ms for w in writes] == [source_ms]  # everything written at the end
    assert writes[-1].finished
    assert writes[-1].text == offline_greedy(agent, audio, a=0.05, b=4)
    assert writes[-1].text  # the random model does write something


def available_states(n_samples: int, chunk_size: int) -> int:
    """Encoder states a streaming encoder can have after ``n_samples`` samples (not finished)."""
    fbank = OnlineFbank().n_frames_for(n_samples)
    states = math.ceil(math.ceil(fbank / 2) / 2) if fbank else 0
    return states // chunk_size * chunk_size if chunk_size else states


@MODELS
@pytest.mark.parametrize("k", [1, 3])
def test_delays_non_decreasing_first_write_after_k_steps(chunk_size: int, k: int) -> None:
    audio = speechlike(2.0, seed=3)
    agent = make_agent(chunk_size, waitk=k)
    writes = simulate(agent, audio, 16000, 160)
    delays = [w.delay_ms for w in writes]
    assert delays == sorted(delays)
    assert [w.finished for w in writes] == [False] * (len(writes) - 1) + [True]
    first = writes[0].delay_ms
    source_ms = audio.numel() / 16
    assert first == source_ms or available_states(int(first * 16), chunk_size) >= k * agent.ratio
    assert len(writes) > 2  # it did write before the end


def test_default_k_is_training_k() -> None:
    assert make_agent(4).lagging == 3


@MODELS
def test_empty_and_too_short_audio_finish_with_nothing(chunk_size: int) -> None:
    agent = make_agent(chunk_size, waitk=1)
    for n in (0, 1, 399, 700):  # < 1 fbank frame, or too few for an encoder state... or one
        writes = simulate(agent, torch.zeros(n), 16000, 320)
        assert writes[-1].finished
        if n < 400:
            assert [(w.text, w.finished) for w in writes] == [("", True)]


def test_other_sample_rate_is_resampled() -> None:
    audio16 = speechlike(1.2, seed=5)
    audio8 = AF.resample(audio16, 16000, 8000)
    agent = make_agent(4, waitk=1000)
    expected = simulate(agent, AF.resample(audio8, 8000, 16000), 16000, 320)[-1].text
    assert simulate(agent, audio8, 8000, 320)[-1].text == expected


def test_runaway_output_is_capped() -> None:
    agent = make_agent(4, waitk=1, a=0.0, b=3)
    writes = simulate(agent, speechlike(1.5), 16000, 320)
    assert sum(len(w.text.split()) for w in writes) <= 3
    assert agent.states.decoder.n_written <= 3


class EosUntil(nn.Module):
    """Wraps a decoder: end-of-sentence wins while fewer than ``n`` encoder states exist."""

    def __init__(self, decoder: nn.Module, n: int) -> None:
        super().__init__()
        self.inner, self.n = decoder, n
        self.calls = 0

    def forward(self, prev, encoder_out, **kwargs):
        self.calls += 1
        logits, extra = self.inner(prev, encoder_out, **kwargs)
        if encoder_out["encoder_out"][0].shape[0] < self.n:
            logits = logits.clone()
            logits[..., self.inner.dictionary.eos()] = 1e4
        return logits, extra


def test_early_end_of_sentence_reads_on() -> None:
    agent = make_agent(4, waitk=1)
    agent.states.decoder.decoder = EosUntil(agent.loaded.model.decoder, n=24)
    audio = speechlike(2.0, seed=7)
    writes = simulate(agent, audio, 16000, 160)
    assert writes[-1].finished and all(not w.finished for w in writes[:-1])
    assert any(w.text for w in writes)
    tokens = agent.states.decoder.tokens
    assert agent.loaded.tgt_dict.eos() not in tokens[1:]
    # Nothing past the first token (EOS is banned there) before 24 states existed.
    early = [w for w in writes if available_states(int(w.delay_ms * 16), 4) < 24]
    assert sum(len(w.text.split()) for w in early) <= 1


@MODELS
def test_half_precision_runs(chunk_size: int) -> None:
    """SimulEval's ``--fp16`` calls ``agent.to(device, fp16=True)``; the agent keeps working."""
    agent = make_agent(chunk_size, waitk=2)
    expected = simulate(agent, speechlike(1.5), 16000, 320)[-1].text
    agent.to("cpu", fp16=True)
    assert next(agent.loaded.model.parameters()).dtype == torch.float16
    writes = simulate(agent, speechlike(1.5), 16000, 320)
    assert writes[-1].finished and writes[-1].text.split()[:3] == expected.split()[:3]


@MODELS
def test_after_an_early_end_of_sentence_no_prediction_until_a_new_read_step(
    chunk_size: int,
) -> None:
    """With 10 ms segments (SimulEval's default is 1 ms) the agent is called 8 times per read
    step of this model (r = 2, 80 ms); a decoder that always ends the sentence early is asked
    once per read step, not once per call."""
    agent = make_agent(chunk_size, waitk=1)
    eos = EosUntil(agent.loaded.model.decoder, n=10**9)
    agent.states.decoder.decoder = eos
    audio = speechlike(2.0, seed=7)
    writes = simulate(agent, audio, 16000, 10)
    assert writes[-1].finished
    read_steps = audio.numel() // 16 // agent.read_step_ms
    # one prediction per read step until the end, then the end's: a first token (end of
    # sentence is banned there) and the end of sentence after it
    assert eos.calls <= read_steps + 2, (eos.calls, read_steps)


def test_read_step_is_ratio_times_40_ms() -> None:
    assert make_agent(4).read_step_ms == 2 * 10 * 4  # r = 2, 10 ms frames, two stride-2 convs


def test_tiny_segments_are_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    args = Namespace(waitk=2, max_len_a=0.2, max_len_b=10, source_segment_size=1)
    with caplog.at_level("WARNING", logger="fairseq_mgcm.agents.waitk"):
        WaitkAgent(args, loaded=make_loaded(4))
    assert "--source-segment-size 80" in caplog.text
    caplog.clear()
    args.source_segment_size = 80
    with caplog.at_level("WARNING", logger="fairseq_mgcm.agents.waitk"):
        WaitkAgent(args, loaded=make_loaded(4))
    assert "read step" not in caplog.text


class FramesSeen(nn.Module):
    """Wraps a decoder: records how many encoder states each prediction was given."""

    def __init__(self, decoder: nn.Module) -> None:
        super().__init__()
        self.inner, self.seen = decoder, []

    def forward(self, prev, encoder_out, **kwargs):
        self.seen.append(encoder_out["encoder_out"][0].shape[0])
        return self.inner(prev, encoder_out, **kwargs)


@MODELS
@pytest.mark.parametrize("k", [1, 2, 4])
def test_token_i_is_committed_only_once_k_plus_i_read_steps_exist(chunk_size: int, k: int) -> None:
    """Issue 9's policy test: at each commit, ``encoder.n_frames`` (and the states the decoder
    was given) is at least ``(k + i) * r``, on the real tiny model; the first token comes at
    the first call that has ``k * r`` states."""
    # The length guard (0.1 x fbank frames + 10 tokens) stays above the wait-k schedule while the
    # source streams (at most frames / (4 x r) tokens), and stops the random model soon after.
    agent = make_agent(chunk_size, waitk=k, a=0.1, b=10)
    seen = FramesSeen(agent.loaded.model.decoder)
    agent.states.decoder.decoder = seen
    states, commits, calls = agent.states, [], []
    original_commit, original_policy = states.commit, agent.policy

    def commit(token: int) -> str:
        commits.append((states.decoder.n_written, states.encoder.n_frames, seen.seen[-1],
                        states.source_finished, len(calls)))  # fmt: skip
        return original_commit(token)

    def policy():
        action = original_policy()
        calls.append(states.encoder.n_frames)
        return action

    states.commit, agent.policy = commit, policy
    simulate(agent, speechlike(2.0, seed=11), 16000, 40)
    during = [c for c in commits if not c[3]]  # commits before the source ended
    assert len(during) >= 5
    r = agent.ratio
    for i, n_frames, given, _, _ in during:
        assert n_frames >= (k + i) * r, f"token {i} committed with {n_frames} states"
        assert given == n_frames  # the decoder attends to exactly the states read so far
    first_call = during[0][4]
    assert during[0][0] == 0 and calls[first_call] >= k * r
    assert first_call == 0 or calls[first_call - 1] < k * r  # not later than the rule allows


@MODELS
def test_warm_up_runs_the_model_on_silence_and_leaves_it_as_it_was(chunk_size: int) -> None:
    """agents/warm_up.py (run at load on CUDA): the model's weights and the agent's output on
    a wav are the same after it."""
    from fairseq_mgcm.agents.warm_up import warm_up

    agent = make_agent(chunk_size, waitk=2)
    audio = speechlike(1.5, seed=3)
    before = simulate(agent, audio, 16000, 160)
    weights = {n: p.clone() for n, p in agent.loaded.model.state_dict().items()}
    warm_up(agent.loaded.model, agent.loaded.tgt_dict, agent.loaded.num_mel_bins)
    assert all(torch.equal(weights[n], p) for n, p in agent.loaded.model.state_dict().items())
    assert simulate(agent, audio, 16000, 160) == before
