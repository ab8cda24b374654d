"""Encoding chunk by chunk through the agent's own pieces equals encoding the whole prefix."""
from __future__ import annotations

import pytest
import torch

from fairseq_mgcm.agents.online_fbank import OnlineFbank
from fairseq_mgcm.agents.streaming_encoder import StreamingEncoder
from agent_testing import make_model, speechlike


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
