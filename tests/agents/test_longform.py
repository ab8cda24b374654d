"""--longform: a whole talk through one agent, on random-weight models with scripted sentence ends.

The decoder is wrapped so that end-of-sentence comes exactly where a test wants it; everything
else (features, the streaming encoder, the greedy decoder, the wait-k schedule) is the agent's.
"""
from __future__ import annotations

from argparse import Namespace

import pytest
import torch
from agent_testing import Write, make_loaded, simulate, speechlike
from torch import nn

from fairseq_mgcm.agents.longform import FeatureTail, LongformPolicy
from fairseq_mgcm.agents.waitk_agent import WaitkAgent
from fairseq_mgcm.errors import UserError

RATE = 16000
SEGMENT_MS = 160  # 2,560 samples: 16 fbank frames, 4 encoder states, one chunk of 4
SAMPLES_PER_STATE = 4 * 160  # 4 fbank frames of 10 ms


def longform_agent(history: str = "reset", k: int = 2, **flags: int) -> WaitkAgent:
    args = Namespace(waitk=k, max_len_a=0.2, max_len_b=10, longform=True, history=history,
                     **flags)
    return WaitkAgent(args, loaded=make_loaded(chunk_size=4))


class EndSentences(nn.Module):
    """Wraps a decoder: end-of-sentence never wins, but once: the first time an encoder stream
    holds ``at`` states and a token has been written (``at`` None: never)."""

    def __init__(self, decoder: nn.Module, at: int | None = None) -> None:
        super().__init__()
        self.inner, self.at = decoder, at
        self.fired = 0
        self.padding_masks: list[torch.Tensor] = []

    def forward(self, prev, encoder_out, **kwargs):
        logits, extra = self.inner(prev, encoder_out, **kwargs)
        self.padding_masks.extend(encoder_out["encoder_padding_mask"])
        eos = self.inner.dictionary.eos()
        logits = logits.clone()
        logits[..., eos] = -1e4
        if self.at is not None and not self.fired and prev.shape[1] > 1 \
                and encoder_out["encoder_out"][0].shape[0] >= self.at:
            logits[..., eos] = 1e4
            self.fired += 1
        return logits, extra


def words_with_delays(writes: list[Write]) -> list[tuple[str, float]]:
    return [(word, w.delay_ms) for w in writes for word in w.text.split()]


def test_the_next_sentence_is_translated_as_if_its_audio_came_alone() -> None:
    """After an end-of-sentence, the rest of the talk is a fresh utterance: the words (and
    their delays, shifted by the boundary) equal a sentence-level agent's on that audio."""
    talk = speechlike(4.0, seed=3)
    agent = longform_agent()
    agent.states.decoder.decoder = wrapper = EndSentences(agent.loaded.model.decoder, at=24)
    writes = simulate(agent, talk, RATE, SEGMENT_MS)
    assert wrapper.fired == 1 and agent.states.n_sentences == 1
    assert writes[-1].finished and all(not w.finished for w in writes[:-1])

    # where the first sentence ended: 24 encoder states, on the chunk grid of the segments
    boundary_ms = 24 * SAMPLES_PER_STATE * 1000 / RATE
    first = [wd for wd in words_with_delays(writes) if wd[1] <= boundary_ms]
    second = [(word, delay - boundary_ms) for word, delay in words_with_delays(writes)
              if delay > boundary_ms]
    assert first and second

    alone = WaitkAgent(Namespace(waitk=2, max_len_a=0.2, max_len_b=10),
                       loaded=agent.loaded)
    alone.states.decoder.decoder = EndSentences(agent.loaded.model.decoder)
    rest = talk[24 * SAMPLES_PER_STATE:]
    assert words_with_delays(simulate(alone, rest, RATE, SEGMENT_MS)) == second
    # what the decoder read: the same encoder states (a random model writes few distinct words)
    talk_states, alone_states = agent.states.encoder.states, alone.states.encoder.states
    assert talk_states.shape == alone_states.shape
    torch.testing.assert_close(talk_states, alone_states)


def test_without_longform_the_same_end_of_sentence_is_taken_back() -> None:
    """The sentence-level agent reads on after an early end-of-sentence: one hypothesis."""
    agent = WaitkAgent(Namespace(waitk=2, max_len_a=0.2, max_len_b=10),
                       loaded=make_loaded(chunk_size=4))
    agent.states.decoder.decoder = EndSentences(agent.loaded.model.decoder, at=24)
    simulate(agent, speechlike(4.0, seed=3), RATE, SEGMENT_MS)
    assert agent.states.n_sentences == 0
    assert agent.loaded.tgt_dict.eos() not in agent.states.decoder.tokens[1:]


def test_context_history_hides_its_left_context_from_the_decoder() -> None:
    agent = longform_agent(history="context", history_context_ms=320)
    agent.states.decoder.decoder = wrapper = EndSentences(agent.loaded.model.decoder, at=24)
    writes = simulate(agent, speechlike(4.0, seed=3), RATE, SEGMENT_MS)
    assert agent.states.n_sentences == 1
    assert agent.states.context_states == 8  # 320 ms = 32 fbank frames = 8 states
    hidden = [mask for mask in wrapper.padding_masks if mask.any()]
    assert hidden and all(int(mask.sum()) == 8 and bool(mask[0, :8].all()) for mask in hidden)
    # the schedule counts from the boundary: the next sentence's first word waits k read steps
    boundary_ms = 24 * SAMPLES_PER_STATE * 1000 / RATE
    after = [delay for word, delay in words_with_delays(writes) if delay > boundary_ms]
    assert after and min(after) >= boundary_ms + 2 * 2 * 40  # k=2 read steps of 2 states


def test_history_stays_bounded_on_a_long_talk_without_sentence_ends() -> None:
    """No end-of-sentence at all (a run-on, a long silence): sentences are cut every
    --max-sentence-ms; the samples, feature frames and encoder states kept stay bounded."""
    agent = longform_agent(max_sentence_ms=1280)  # 32 states
    agent.states.decoder.decoder = EndSentences(agent.loaded.model.decoder)
    peaks = {"source": 0, "tail": 0, "states": 0}
    policy = agent.policy

    def watched_policy(states=None):
        action = policy(states)
        s = agent.states
        peaks["source"] = max(peaks["source"], len(s.source))
        peaks["tail"] = max(peaks["tail"], s.tail.n_frames)
        peaks["states"] = max(peaks["states"], s.encoder.n_frames)
        return action

    agent.policy = watched_policy
    writes = simulate(agent, speechlike(12.0, seed=5), RATE, SEGMENT_MS)
    assert agent.states.n_sentences >= 8  # 12 s in cuts of 1.28 s minus the lag kept
    assert peaks["states"] <= 32 + 4  # the limit plus the chunk that crossed it
    assert peaks["tail"] <= 4 * (32 + 4) + 3
    assert peaks["source"] == 0  # SimulEval's source list is emptied as it is read
    late = [w for w in writes if w.delay_ms > 10000]
    assert any(w.text for w in late)  # still translating at the end of the talk


def test_policy_accepts_the_states_argument_of_simulstreams_bridge() -> None:
    agent = longform_agent()
    agent.reset()
    assert agent.policy(agent.states).__class__.__name__ == "ReadAction"


@pytest.mark.parametrize("flag, value", [("history", "window"), ("history_context_ms", -1),
                                         ("min_pause_ms", -5), ("max_sentence_ms", 0)])
def test_bad_longform_flags_name_the_flag(flag: str, value: object) -> None:
    with pytest.raises(UserError, match=f"--{flag.replace('_', '-')}"):
        LongformPolicy.from_args(Namespace(longform=True, **{flag: value}))


def frames_at(*levels: float) -> torch.Tensor:
    """Feature frames whose mean over 80 bins is each level (CMVN units)."""
    return torch.tensor(levels)[:, None].repeat(1, 80)


def test_a_new_sentence_starts_at_its_speech_onset() -> None:
    tail = FeatureTail(silence_below=-1.5)
    assert tail.append(frames_at(-2.4, -2.5)).shape[0] == 0  # the talk's leading pause
    kept = tail.append(frames_at(-2.4, 0.1, -2.4, 0.3))  # speech starts; later pauses stay
    assert kept[:, 0].tolist() == pytest.approx([0.1, -2.4, 0.3])
    assert tail.n_silent_dropped == 3 and tail.n_frames == 3
    # a boundary after the third frame: the pause that follows it is dropped, up to the onset
    tail.append(frames_at(-2.5, 0.2))
    kept_frames = tail.drop_before(3)
    assert torch.cat(kept_frames)[:, 0].tolist() == pytest.approx([0.2])
    assert FeatureTail(None).append(frames_at(-3.0)).shape[0] == 1  # no gate: every frame


def test_the_boundary_is_the_end_of_the_last_long_enough_pause() -> None:
    tail = FeatureTail(silence_below=-1.5)
    #              speech  | short pause | speech | long pause      | next sentence
    tail.append(frames_at(0.1, 0.2, -2.4, 0.3, 0.1, -2.4, -2.4, -2.4, 0.2, 0.4))
    assert tail.last_pause_end(0, 10, min_pause=3) == 8  # where the next sentence speaks
    assert tail.last_pause_end(0, 7, min_pause=2) == 7  # still in the pause: the end itself
    assert tail.last_pause_end(0, 10, min_pause=4) is None  # no pause that long
    assert tail.last_pause_end(6, 10, min_pause=3) is None  # only looks back from 6
    assert FeatureTail(None).last_pause_end(0, 10, min_pause=1) is None


def test_a_pause_after_speech_ends_the_sentence_at_the_end_of_its_speech() -> None:
    """With CMVN (here: log-mel / 5, so digital silence sits near -3 and speech above 0), a
    pause of --pause-ends-sentence-ms closes the sentence: its decoder reads the speech only,
    finishes the sentence, and the next one starts at the next speech onset."""
    loaded = make_loaded(chunk_size=4)
    loaded.cmvn = lambda frames: frames / 5
    agent = WaitkAgent(Namespace(waitk=2, max_len_a=0.2, max_len_b=10, longform=True),
                       loaded=loaded)
    agent.states.decoder.decoder = wrapper = EndSentences(loaded.model.decoder)
    seen: list[int] = []
    inner = wrapper.forward

    def forward(prev, encoder_out, **kwargs):
        seen.append((agent.states.n_sentences, encoder_out["encoder_out"][0].shape[0]))
        return inner(prev, encoder_out, **kwargs)

    wrapper.forward = forward
    speech = speechlike(1.6, seed=2)
    talk = torch.cat([speech, torch.zeros(RATE // 2), speechlike(1.6, seed=4)])
    writes = simulate(agent, talk, RATE, SEGMENT_MS)
    assert agent.states.n_sentences == 1  # the pause: one boundary
    first = [n for sentence, n in seen if sentence == 0]
    # 1.6 s of speech = 159 fbank frames = 40 states
    assert first[-1] == 40  # once closed, the stream ends where the speech ended
    pause_ms = 1600 + 200  # --pause-ends-sentence-ms
    assert any(w.delay_ms <= pause_ms + SEGMENT_MS and w.text for w in writes)  # closed early
    assert writes[-1].finished
