"""Growable key/value caches: equal to ``torch.cat``, past their capacity, in the models' streaming
paths (encoder and incremental decoder), with snapshots taken back as the agent does."""

from __future__ import annotations

import pytest
import torch

from fairseq_mgcm.models._kv_cache import MIN_CAPACITY, KVCache, append
from tests.models._tiny import tiny_model

CHUNK = 3


@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode])
def test_append_equals_cat_past_capacity(mode) -> None:
    pieces = [torch.randn(2, 4, n, 8) for n in (1, 5, MIN_CAPACITY, 3, 2 * MIN_CAPACITY, 7)]
    buffer, view = None, None
    buffers = set()
    with mode():
        for i, piece in enumerate(pieces):
            buffer, view = append(buffer, view, piece, dim=2)
            assert buffer is not None
            buffers.add(buffer.data_ptr())
            torch.testing.assert_close(view, torch.cat(pieces[: i + 1], dim=2), rtol=0, atol=0)
            assert view.data_ptr() == buffer.data_ptr()
    assert 1 < len(buffers) < len(pieces)  # grew past its capacity, but not on every append


def test_a_shorter_view_stays_valid_and_can_be_extended_again() -> None:
    """The agent's rollback: a snapshot of the cache before a prediction is extended again."""
    with torch.no_grad():
        a, b, c = torch.randn(1, 2, 5, 4), torch.randn(1, 2, 3, 4), torch.randn(1, 2, 6, 4)
        buffer, old = append(None, None, a, dim=2)
        buffer2, _ = append(buffer, old, b, dim=2)  # a prediction, then taken back
        assert buffer2 is buffer
        torch.testing.assert_close(old, a, rtol=0, atol=0)
        _, again = append(buffer, old, c, dim=2)
        torch.testing.assert_close(again, torch.cat([a, c], dim=2), rtol=0, atol=0)


def test_append_under_autograd_falls_back_to_cat() -> None:
    used = torch.randn(1, 2, 3, 4, requires_grad=True)
    new = torch.randn(1, 2, 2, 4)
    buffer, view = append(None, used, new, dim=2)
    assert buffer is None and view.requires_grad
    view.sum().backward()
    assert used.grad is not None


def test_kv_cache_without_a_cache_copies_nothing() -> None:
    key, value = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4)
    cache = KVCache.extend(None, key, value)
    assert cache.key is key and cache.value is value and cache.key_buffer is None


def _encode(model, feats: torch.Tensor) -> torch.Tensor:
    return model.encoder(feats[None], torch.tensor([feats.shape[0]]))["encoder_out"][0]


@pytest.mark.parametrize("piece", [4 * CHUNK, 4 * CHUNK * 7, 50])
def test_streaming_encoder_past_cache_capacity_equals_whole(piece: int) -> None:
    """150 encoder frames: every layer's cache and ``encoder_out`` outgrow their first buffer."""
    model = tiny_model(encoder_chunk_size=CHUNK)
    feats = torch.randn(600, 80, dtype=torch.float64)
    state = model.encoder.init_streaming_state()
    for start in range(0, 600, piece):
        last = start + piece >= 600
        _, state = model.encoder.forward_streaming(feats[start : start + piece], state, last)
        n = state.encoder_out.shape[0]
        assert n == model.encoder.n_streaming_frames(min(start + piece, 600), last)
    assert state.encoder_out.shape[0] > 2 * MIN_CAPACITY
    assert state.encoder_out_buffer is not None
    torch.testing.assert_close(state.encoder_out, _encode(model, feats), rtol=0, atol=1e-10)


@pytest.mark.parametrize("n_feats", [0, 1, 3, 4, 11, 12, 13, 97])
@pytest.mark.parametrize("chunk_size", [CHUNK, 0], ids=["chunk-causal", "bidirectional"])
def test_n_streaming_frames_counts_what_forward_streaming_gives(n_feats, chunk_size) -> None:
    model = tiny_model(encoder_chunk_size=chunk_size)
    for finished in (False, True):
        state = model.encoder.init_streaming_state()
        _, state = model.encoder.forward_streaming(
            torch.randn(n_feats, 80, dtype=torch.float64), state, finished
        )
        assert state.encoder_out.shape[0] == model.encoder.n_streaming_frames(n_feats, finished)


@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode])
def test_incremental_decoder_past_cache_capacity_with_rollbacks(mode) -> None:
    """Encoder frames grow to 150 and tokens to 80 (both caches outgrow their buffers); after
    some steps the state is restored to a snapshot and the step is redone with more frames, as
    the agent does when it takes back an early end-of-sentence."""
    model = tiny_model(encoder_chunk_size=4)
    frames = torch.randn(150, 1, 128, dtype=torch.float64)
    prev = torch.randint(4, 30, (1, 80))
    state: dict = {}
    with mode():
        for i in range(80):
            n = min(10 + 2 * i, 150)
            if i % 9 == 4:  # predict with fewer frames, then take it back
                snapshot = {key: dict(value) for key, value in state.items()}
                model.decoder(prev[:, : i + 1], {"encoder_out": [frames[: n - 1]]}, state)
                state = snapshot
            logits, _ = model.decoder(
                prev[:, : i + 1], {"encoder_out": [frames[:n]]}, incremental_state=state
            )
            expected, _ = model.decoder(prev[:, : i + 1], {"encoder_out": [frames[:n]]})
            torch.testing.assert_close(logits[0, -1], expected[0, -1], rtol=0, atol=1e-10)
    cache = next(iter(state.values()))
    assert cache["enc_kbuf_0"] is not None and cache["self_kbuf_0"] is not None
    assert cache["enc_k_0"].shape[2] == 150 and cache["self_k_0"].shape[2] == 80
