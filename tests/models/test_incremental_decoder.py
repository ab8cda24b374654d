"""Incremental decoding while the encoder output grows equals the wait-k forward pass."""

from __future__ import annotations

import pytest
import torch

from tests.models._tiny import tiny_model

K, R = 2, 3


def _out(frames: torch.Tensor) -> dict[str, list[torch.Tensor]]:
    return {"encoder_out": [frames], "encoder_padding_mask": []}


def _reference(model, prev: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    logits, _ = model.decoder(prev, _out(frames))
    return torch.log_softmax(logits, dim=-1)


@pytest.mark.parametrize("chunk_size", [4, 0], ids=["chunk-causal", "bidirectional"])
def test_growing_encoder_incremental_equals_waitk_forward(chunk_size: int) -> None:
    model = tiny_model(waitk_lagging=K, pre_decision_ratio=R, encoder_chunk_size=chunk_size)
    assert model.pre_decision_ratio == R
    prev = torch.randint(4, 30, (1, 9))
    prev[0, 0] = model.decoder.dictionary.eos()
    frames = torch.randn(22, 1, 128, dtype=torch.float64)  # fewer frames than the last window
    reference = _reference(model, prev, frames)
    state: dict = {}
    for i in range(prev.shape[1]):
        available = frames[: min((K + i) * R, frames.shape[0])]
        log_probs = model.next_token_log_probs(prev[0, : i + 1], available, state)
        torch.testing.assert_close(log_probs, reference[0, i], rtol=0, atol=1e-10)


@pytest.mark.parametrize(
    "stable,expected_rows", [(True, 22), (False, 6 + 9 + 12 + 15 + 18 + 21 + 22)]
)
def test_encoder_keys_are_extended_only_for_a_stable_prefix(
    stable: bool, expected_rows: int
) -> None:
    model = tiny_model(waitk_lagging=K, pre_decision_ratio=R, encoder_chunk_size=4 if stable else 0)
    rows: list[int] = []
    attn = model.decoder.layers[0].encoder_attn
    attn.k_proj.register_forward_hook(lambda m, i, o: rows.append(i[0].shape[1]))
    frames = torch.randn(22, 1, 128, dtype=torch.float64)
    prev = torch.randint(4, 30, (1, 7))
    state: dict = {}
    for i in range(7):
        n = min((K + i) * R, 22)
        model.decoder(prev[:, : i + 1], _out(frames[:n]), incremental_state=state)
    assert sum(rows) == expected_rows


def test_refresh_reprojects_rewritten_frames() -> None:
    model = tiny_model(encoder_chunk_size=4)  # stable prefix: would keep cached keys
    prev = torch.randint(4, 30, (1, 2))
    frames = torch.randn(10, 1, 128, dtype=torch.float64)
    stale_state: dict = {}
    fresh_state: dict = {}
    model.decoder(prev[:, :1], _out(frames), incremental_state=stale_state)
    model.decoder(prev[:, :1], _out(frames), incremental_state=fresh_state)
    rewritten = frames + 1
    stale, _ = model.decoder(prev, _out(rewritten), incremental_state=stale_state)
    fresh, _ = model.decoder(
        prev, _out(rewritten), incremental_state=fresh_state, refresh_encoder_cache=True
    )
    expected, _ = model.decoder(prev, _out(rewritten))
    torch.testing.assert_close(fresh[0, -1], expected[0, -1], rtol=0, atol=1e-10)
    assert not torch.allclose(stale[0, -1], expected[0, -1], atol=1e-6)


def test_prefix_in_one_call_equals_token_by_token() -> None:
    model = tiny_model()
    prev = torch.randint(4, 30, (2, 6))
    frames = torch.randn(15, 2, 128, dtype=torch.float64)
    whole: dict = {}
    first, _ = model.decoder(prev[:, :4], _out(frames), incremental_state=whole)
    rest, _ = model.decoder(prev, _out(frames), incremental_state=whole)
    expected, _ = model.decoder(prev, _out(frames))
    torch.testing.assert_close(torch.cat([first, rest], dim=1), expected, rtol=0, atol=1e-10)


def test_reorder_incremental_state_follows_beams() -> None:
    model = tiny_model()
    prev = torch.randint(4, 30, (3, 5))
    frames = torch.randn(12, 3, 128, dtype=torch.float64)
    order = torch.tensor([2, 0, 0])
    state: dict = {}
    for t in range(3):
        model.decoder(prev[:, : t + 1], _out(frames), incremental_state=state)
    model.decoder.reorder_incremental_state_scripting(state, order)
    reordered = _out(frames.index_select(1, order))
    logits, _ = model.decoder(
        prev.index_select(0, order)[:, :4], reordered, incremental_state=state
    )
    expected, _ = model.decoder(prev.index_select(0, order)[:, :4], reordered)
    torch.testing.assert_close(logits[:, -1], expected[:, -1], rtol=0, atol=1e-10)


def test_sequence_generator_greedy_equals_step_by_step_argmax() -> None:
    from fairseq.sequence_generator import SequenceGenerator

    model = tiny_model(encoder_chunk_size=4)
    feats = torch.randn(1, 90, 80, dtype=torch.float64)
    sample = {"net_input": {"src_tokens": feats, "src_lengths": torch.tensor([90])}}
    tgt_dict = model.decoder.dictionary
    generator = SequenceGenerator([model], tgt_dict, beam_size=1, max_len_b=8)
    hypo = generator.forward(sample)[0][0]["tokens"].tolist()

    frames = model.encoder(feats, torch.tensor([90]))["encoder_out"][0]
    tokens, state = [tgt_dict.eos()], {}
    while len(tokens) <= 8:
        scores = model.next_token_log_probs(torch.tensor(tokens), frames, state)
        scores[tgt_dict.pad()] = -float("inf")
        scores[tgt_dict.unk()] -= 0  # fairseq's unk penalty is 0 by default
        if len(tokens) == 1:
            scores[tgt_dict.eos()] = -float("inf")  # min_len 1
        tokens.append(int(scores.argmax()))
        if tokens[-1] == tgt_dict.eos():
            break
    if tokens[-1] != tgt_dict.eos():
        tokens.append(tgt_dict.eos())
    assert tokens[1:] == hypo
