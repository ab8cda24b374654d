"""Chunk-causal encoding and its streaming path."""

from __future__ import annotations

import pytest
import torch

from fairseq_mgcm.models._subsampler import Conv1dSubsampler, subsampled_lengths
from tests.models._tiny import tiny_model

CHUNK = 3


def _encode(model, feats: torch.Tensor) -> torch.Tensor:
    return model.encoder(feats[None], torch.tensor([feats.shape[0]]))["encoder_out"][0][:, 0]


@pytest.mark.parametrize("chunk_index", [0, 2, 5])
def test_future_chunks_do_not_change_earlier_frames(chunk_index: int) -> None:
    model = tiny_model(encoder_chunk_size=CHUNK)
    feats = torch.randn(160, 80, dtype=torch.float64)
    reference = _encode(model, feats)
    end = (chunk_index + 1) * CHUNK  # first encoder frame of the next chunk
    changed = feats.clone()
    changed[4 * end - 3 :] += (
        torch.randn_like(changed[4 * end - 3 :]) * 3
    )  # inputs of frames >= end
    out = _encode(model, changed)
    torch.testing.assert_close(out[:end], reference[:end], rtol=0, atol=1e-10)
    assert not torch.allclose(out[end : end + CHUNK], reference[end : end + CHUNK], atol=1e-6)


def test_a_frame_sees_its_whole_chunk() -> None:
    model = tiny_model(encoder_chunk_size=CHUNK)
    feats = torch.randn(160, 80, dtype=torch.float64)
    reference = _encode(model, feats)
    changed = feats.clone()
    changed[4 * (CHUNK - 1)] += 3  # reaches only the last frame of chunk 0 through the convs
    out = _encode(model, changed)
    assert not torch.allclose(out[0], reference[0], atol=1e-6)


def test_bidirectional_encoder_sees_the_future() -> None:
    model = tiny_model(encoder_chunk_size=0)
    feats = torch.randn(160, 80, dtype=torch.float64)
    reference = _encode(model, feats)
    feats[-1] += 3
    assert not torch.allclose(_encode(model, feats)[0], reference[0], atol=1e-6)


@pytest.mark.parametrize(
    "pieces",
    [
        [160],
        [1] * 37 + [123],
        [5, 0, 7, 13, 1, 2, 40, 0, 92],
        [4 * CHUNK] * 13 + [4],
    ],
)
def test_streaming_equals_whole_utterance(pieces: list[int]) -> None:
    model = tiny_model(encoder_chunk_size=CHUNK)
    feats = torch.randn(sum(pieces), 80, dtype=torch.float64)
    state = model.encoder.init_streaming_state()
    outputs, start = [], 0
    for n, piece in enumerate(pieces):
        last = n == len(pieces) - 1
        new, state = model.encoder.forward_streaming(feats[start : start + piece], state, last)
        assert new.shape[0] % CHUNK == 0 or last  # only whole chunks before the end
        outputs.append(new)
        start += piece
    streamed = torch.cat(outputs)
    reference = _encode(model, feats)[:, None]
    assert streamed.shape == reference.shape
    torch.testing.assert_close(streamed, reference, rtol=0, atol=1e-10)
    torch.testing.assert_close(state.encoder_out, reference, rtol=0, atol=1e-10)


def test_streaming_float32_matches_to_float_precision() -> None:
    model = tiny_model(encoder_chunk_size=CHUNK).float()
    feats = torch.randn(150, 80)
    state = model.encoder.init_streaming_state()
    for start in range(0, 150, 10):
        _, state = model.encoder.forward_streaming(feats[start : start + 10], state, start == 140)
    torch.testing.assert_close(state.encoder_out[:, 0], _encode(model, feats), rtol=0, atol=1e-5)


def test_streaming_cost_does_not_rerun_the_prefix() -> None:
    """Each chunk runs the layers on that chunk only: count the query rows the layers see."""
    model = tiny_model(encoder_chunk_size=CHUNK)
    rows: list[int] = []
    model.encoder.layers[0].ffn.register_forward_hook(lambda m, i, o: rows.append(i[0].shape[1]))
    state = model.encoder.init_streaming_state()
    for _ in range(10):
        _, state = model.encoder.forward_streaming(torch.randn(4 * CHUNK, 80).double(), state)
    assert rows and max(rows) == CHUNK


def test_bidirectional_streaming_reencodes_the_prefix() -> None:
    model = tiny_model(encoder_chunk_size=0)
    feats = torch.randn(100, 80, dtype=torch.float64)
    state = model.encoder.init_streaming_state()
    n_before = 0
    for start in range(0, 100, 25):
        new, state = model.encoder.forward_streaming(feats[start : start + 25], state, start == 75)
        expected = _encode(model, feats[: start + 25])[:, None]
        torch.testing.assert_close(state.encoder_out, expected, rtol=0, atol=1e-10)
        assert new.shape[0] == expected.shape[0] - n_before  # frames beyond the previous call
        n_before = expected.shape[0]


def test_streaming_rejects_bad_input_and_use_after_finish() -> None:
    model = tiny_model(encoder_chunk_size=CHUNK)
    state = model.encoder.init_streaming_state()
    with pytest.raises(ValueError, match=r"\[T, 80\]"):
        model.encoder.forward_streaming(torch.randn(10, 40), state)
    _, state = model.encoder.forward_streaming(torch.randn(10, 80), state, finished=True)
    with pytest.raises(RuntimeError, match="finished"):
        model.encoder.forward_streaming(torch.randn(10, 80), state)


def test_subsampler_lengths_and_causal_streaming() -> None:
    sub = Conv1dSubsampler(80, 64, 32, (5, 5), causal=True).double()
    for length in (1, 2, 3, 4, 5, 17, 64):
        x = torch.randn(1, length, 80, dtype=torch.float64)
        y, out_len = sub(x, torch.tensor([length]))
        assert (
            y.shape[1]
            == out_len.item()
            == subsampled_lengths(torch.tensor(length), 2)
            == (-(-length // 4))
        )
        state, pieces = sub.init_streaming_state(dtype=torch.float64), []
        for t in range(length):
            piece, state = sub.forward_streaming(x[0, t : t + 1], state)
            pieces.append(piece)
        torch.testing.assert_close(torch.cat(pieces), y[0], rtol=0, atol=1e-12)
