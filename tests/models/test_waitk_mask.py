"""The wait-k rule itself: ST token i reads exactly encoder frames [0, (k + i) * r)."""

from __future__ import annotations

import pytest
import torch

from tests.models._tiny import tiny_model


def _encoder_out(frames: torch.Tensor) -> dict[str, list[torch.Tensor]]:
    return {"encoder_out": [frames], "encoder_padding_mask": []}


@pytest.mark.parametrize("k,r", [(1, 2), (2, 3), (3, 1)])
def test_token_i_ignores_frames_beyond_window_and_reads_frames_inside(k: int, r: int) -> None:
    model = tiny_model(waitk_lagging=k, pre_decision_ratio=r)
    n_tgt, n_src = 6, 40
    prev = torch.randint(4, 30, (1, n_tgt))
    frames = torch.randn(n_src, 1, 128, dtype=torch.float64)
    reference, _ = model.decoder(prev, _encoder_out(frames))
    for i in range(n_tgt):
        limit = (k + i) * r
        beyond = frames.clone()
        beyond[limit:] += torch.randn_like(beyond[limit:]) * 5
        logits, _ = model.decoder(prev, _encoder_out(beyond))
        # token i and every earlier token are unchanged; token i + 1 reads more and changes
        torch.testing.assert_close(logits[0, : i + 1], reference[0, : i + 1], rtol=0, atol=1e-10)
        if i + 1 < n_tgt:
            assert not torch.allclose(logits[0, i + 1], reference[0, i + 1], atol=1e-6)

        inside = frames.clone()
        inside[limit - 1] += torch.randn_like(inside[limit - 1]) * 5
        logits, _ = model.decoder(prev, _encoder_out(inside))
        assert not torch.allclose(logits[0, i], reference[0, i], atol=1e-6)
        # ... but not the tokens before the one whose window first holds that frame
        first_reader = max(0, -(-limit // r) - k)  # smallest j with (k + j) * r >= limit
        torch.testing.assert_close(
            logits[0, :first_reader], reference[0, :first_reader], rtol=0, atol=1e-10
        )


def test_whole_model_respects_window_with_chunk_causal_encoder() -> None:
    """End to end through the audio: with a chunk-causal encoder, changing audio that only
    reaches encoder frames >= (k + i) * r leaves ST logits up to token i unchanged."""
    k, r, chunk = 2, 2, 2
    model = tiny_model(waitk_lagging=k, pre_decision_ratio=r, encoder_chunk_size=chunk)
    feats = torch.randn(1, 120, 80, dtype=torch.float64)
    lengths = torch.tensor([120])
    prev = torch.randint(4, 30, (1, 5))
    reference, _ = model(feats, lengths, prev)
    i = 1
    first_hidden_frame = (k + i) * r  # chunk-aligned here (a multiple of the chunk size)
    changed = feats.clone()
    changed[0, 4 * first_hidden_frame :] += 3.0  # causal subsampler: frame t reads fbank <= 4t
    logits, _ = model(changed, lengths, prev)
    torch.testing.assert_close(logits[0, : i + 1], reference[0, : i + 1], rtol=0, atol=1e-10)
    assert not torch.allclose(logits[0, i + 1 :], reference[0, i + 1 :], atol=1e-6)


def test_offline_decoder_reads_every_frame() -> None:
    model = tiny_model()  # no --waitk-lagging: offline
    prev = torch.randint(4, 30, (1, 3))
    frames = torch.randn(30, 1, 128, dtype=torch.float64)
    reference, _ = model.decoder(prev, _encoder_out(frames))
    frames[-1] += 5
    logits, _ = model.decoder(prev, _encoder_out(frames))
    assert not torch.allclose(logits[0, 0], reference[0, 0], atol=1e-6)


def test_padding_frames_are_never_read() -> None:
    model = tiny_model(waitk_lagging=50)
    prev = torch.randint(4, 30, (2, 3))
    frames = torch.randn(20, 2, 128, dtype=torch.float64)
    padding = torch.zeros(2, 20, dtype=torch.bool)
    padding[1, 12:] = True
    out = {"encoder_out": [frames], "encoder_padding_mask": [padding]}
    reference, _ = model.decoder(prev, out)
    frames = frames.clone()
    frames[12:, 1] += 5
    logits, _ = model.decoder(prev, {"encoder_out": [frames], "encoder_padding_mask": [padding]})
    torch.testing.assert_close(logits[1], reference[1], rtol=0, atol=1e-10)


def test_multipath_draws_k_per_training_batch_and_uses_max_k_in_eval() -> None:
    model = tiny_model(waitk_lagging=4, waitk_multipath=True, waitk_full_context_prob=0.0)
    prev = torch.randint(4, 30, (1, 3))
    out = _encoder_out(torch.randn(30, 1, 128, dtype=torch.float64))
    model.train()
    drawn = {model.decoder(prev, out)[1]["waitk_lagging"] for _ in range(60)}
    assert drawn == {1, 2, 3, 4}
    model.eval()
    assert model.decoder(prev, out)[1]["waitk_lagging"] == 4


@pytest.mark.parametrize(
    "options,flag",
    [
        ({"waitk_lagging": 0}, "--waitk-lagging"),
        ({"pre_decision_ratio": 0}, "--pre-decision-ratio"),
        ({"waitk_multipath": True}, "--waitk-multipath"),
        ({"encoder_chunk_size": -1}, "--encoder-chunk-size"),
        (
            {"waitk_lagging": 3, "waitk_multipath": True, "waitk_full_context_prob": 1.5},
            "--waitk-full-context-prob",
        ),
        ({"mt_waitk_lagging": 3, "mt_text_encoder": True}, "--mt-waitk-lagging"),
    ],
)
def test_bad_options_name_their_flag(options: dict, flag: str) -> None:
    with pytest.raises(ValueError, match=flag):
        tiny_model(**options)
