"""Encoding chunk by chunk through the agent's own pieces equals encoding the whole prefix."""
from __future__ import annotations

import pytest
import torch
from agent_testing import make_model, speechlike

from fairseq_mgcm.agents.online_fbank import OnlineFbank
from fairseq_mgcm.agents.streaming_encoder import StreamingEncoder


def _whole(encoder, feats: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        out = encoder(feats[None], torch.tensor([feats.shape[0]]))
    return out["encoder_out"][0]


@pytest.mark.parametrize("chunk_size", [4, 0], ids=["chunk-causal", "bidirectional"])
@pytest.mark.parametrize("segment", [5120, 1234])
def test_incremental_encoding_equals_whole(chunk_size: int, segment: int) -> None:
    model, _ = make_model(chunk_size)
    audio = speechlike(1.3)
    fbank, stream = OnlineFbank(), StreamingEncoder(model.encoder)
    all_feats = []
    for start in range(0, audio.numel(), segment):
        finished = start + segment >= audio.numel()
        feats = fbank.push(audio[start : start + segment])
        all_feats.append(feats)
        stream.push(feats, finished=finished)
        prefix = torch.cat(all_feats)
        if chunk_size and stream.n_frames:
            # a chunk-causal encoder's states so far are final: equal to the whole utterance's
            whole = _whole(model.encoder, fbank_all(audio))
            torch.testing.assert_close(
                stream.states, whole[: stream.n_frames], atol=1e-4, rtol=1e-4
            )
            assert not stream.rewrote_prefix
        elif not chunk_size and prefix.shape[0]:
            torch.testing.assert_close(stream.states, _whole(model.encoder, prefix))
    whole = _whole(model.encoder, fbank_all(audio))
    assert stream.n_frames == whole.shape[0]
    torch.testing.assert_close(stream.states, whole, atol=1e-4, rtol=1e-4)


def fbank_all(audio: torch.Tensor) -> torch.Tensor:
    return OnlineFbank().push(audio)


def test_push_after_finish_is_ignored() -> None:
    model, _ = make_model(4)
    stream = StreamingEncoder(model.encoder)
    stream.push(fbank_all(speechlike(0.5)), finished=True)
    n = stream.n_frames
    assert stream.push(fbank_all(speechlike(0.5)), finished=True) == 0
    assert stream.n_frames == n


@pytest.mark.parametrize("chunk_size", [4, 0], ids=["chunk-causal", "bidirectional"])
def test_encoding_waits_until_the_states_are_read(chunk_size: int) -> None:
    """Pushed chunks are counted at once but encoded in one pass when the states are read."""
    model, _ = make_model(chunk_size)
    calls: list[int] = []
    forward_streaming = model.encoder.forward_streaming

    def counting(feats, state, finished=False):
        calls.append(feats.shape[0])
        return forward_streaming(feats, state, finished)

    model.encoder.forward_streaming = counting
    audio = speechlike(1.3)
    fbank, stream = OnlineFbank(), StreamingEncoder(model.encoder)
    n_pushed = 0
    for start in range(0, 12000, 2000):
        feats = fbank.push(audio[start : start + 2000])
        n_pushed += feats.shape[0]
        stream.push(feats, finished=False)
        assert stream.n_frames == model.encoder.n_streaming_frames(n_pushed, False)
    assert not calls
    whole = _whole(model.encoder, fbank_all(audio))
    prefix = _whole(model.encoder, fbank_all(audio[:12000]))
    if chunk_size:
        prefix = whole[: stream.n_frames]
    torch.testing.assert_close(stream.states, prefix, atol=1e-4, rtol=1e-4)
    assert calls == [n_pushed]
    stream.push(fbank.push(audio[12000:]), finished=True)
    torch.testing.assert_close(stream.states, whole, atol=1e-4, rtol=1e-4)
    stream.states  # nothing left to encode
    assert len(calls) == 2
