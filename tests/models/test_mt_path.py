"""The MT auxiliary path: transcript tokens through the shared encoder layers into the ST
decoder, wait-k over source tokens (one token per read step)."""

from __future__ import annotations

import pytest
import torch

from tests.models._tiny import tiny_model

K_MT = 2


def _mt_model(**options):
    defaults = {
        "waitk_lagging": 3,
        "mt_text_encoder": True,
        "mt_waitk_lagging": K_MT,
        "encoder_chunk_size": 4,
    }
    return tiny_model(**{**defaults, **options})


def _tokens(n: int, batch: int = 1) -> torch.Tensor:
    return torch.randint(4, 20, (batch, n))


def test_target_token_i_reads_exactly_source_tokens_before_k_plus_i() -> None:
    model = _mt_model()
    source, prev = _tokens(9), _tokens(5)
    reference, _ = model.forward_mt(source, None, prev)
    for i in range(prev.shape[1]):
        limit = K_MT + i  # token i reads source tokens [0, k + i)
        if limit >= source.shape[1]:
            break
        later = source.clone()
        later[0, limit:] = 4 + (later[0, limit:] - 3) % 15  # other tokens from position limit on
        logits, _ = model.forward_mt(later, None, prev)
        torch.testing.assert_close(logits[0, : i + 1], reference[0, : i + 1], rtol=0, atol=1e-10)
        if i + 1 < prev.shape[1]:
            assert not torch.allclose(logits[0, i + 1 :], reference[0, i + 1 :], atol=1e-6)
        last_read = source.clone()
        last_read[0, limit - 1] = 4 + (last_read[0, limit - 1] - 3) % 15
        logits, _ = model.forward_mt(last_read, None, prev)
        assert not torch.allclose(logits[0, i], reference[0, i], atol=1e-6)


def test_mt_runs_the_shared_layers_and_decoder_but_not_the_subsampler() -> None:
    model = _mt_model()
    source, prev = _tokens(6, batch=2), _tokens(4, batch=2)
    logits, _ = model.forward_mt(source, None, prev)
    params = {
        "subsampler": model.encoder.subsample.conv_layers[0].weight,
        "shared layer": model.encoder.layers[0].self_attn.q_proj.weight,
        "encoder norm": model.encoder.layer_norm.weight,
        "mt embedding": model.mt_embed.embed_tokens.weight,
        "st decoder": model.decoder.layers[0].ffn.fc1.weight,
        "asr decoder": model.asr_decoder.layers[0].ffn.fc1.weight,
    }
    grads = dict(zip(params, torch.autograd.grad(logits.sum(), list(params.values()),
                                                 allow_unused=True)))  # fmt: skip
    assert grads["subsampler"] is None and grads["asr decoder"] is None
    for name in ("shared layer", "encoder norm", "mt embedding", "st decoder"):
        assert grads[name] is not None and grads[name].abs().sum() > 0, name


def test_padding_source_tokens_are_never_read() -> None:
    model = _mt_model(mt_waitk_lagging=50, waitk_lagging=50)
    pad = model.mt_embed.padding_idx
    source = _tokens(7, batch=2)
    source[1, 4:] = pad
    lengths = torch.tensor([7, 4])
    prev = _tokens(3, batch=2)
    reference, _ = model.forward_mt(source, lengths, prev)
    longer = source.clone()
    longer[1, 4:] = 5  # content behind the padding mask
    logits, _ = model.forward_mt(longer, lengths, prev)
    torch.testing.assert_close(logits[1], reference[1], rtol=0, atol=1e-10)


def test_forward_returns_mt_out_only_when_given_source_tokens() -> None:
    model = _mt_model()
    feats = torch.randn(1, 64, 80, dtype=torch.float64)
    prev, source = _tokens(3), _tokens(5)
    _, extra = model(feats, torch.tensor([64]), prev)
    assert "mt_out" not in extra
    _, extra = model(feats, torch.tensor([64]), prev, mt_source_tokens=source)
    expected, _ = model.forward_mt(source, None, prev)
    torch.testing.assert_close(extra["mt_out"][0], expected)


def test_multipath_mt_draws_its_own_k_over_tokens() -> None:
    model = _mt_model(waitk_multipath=True, mt_waitk_lagging=3, waitk_full_context_prob=0.0)
    model.train()
    source, prev = _tokens(6), _tokens(3)
    drawn = {model.forward_mt(source, None, prev)[1]["waitk_lagging"] for _ in range(60)}
    assert drawn == {1, 2, 3}
    model.eval()
    assert model.forward_mt(source, None, prev)[1]["waitk_lagging"] == 3


def test_mt_lagging_defaults_to_the_st_lagging() -> None:
    model = _mt_model(mt_waitk_lagging=None, waitk_lagging=5)
    assert model.mt_schedule.lagging == 5 and model.mt_schedule.ratio == 1


def test_model_without_mt_front_end_names_the_flag() -> None:
    model = tiny_model(waitk_lagging=3)
    assert model.mt_embed is None
    with pytest.raises(ValueError, match="--mt-text-encoder"):
        model.forward_mt(_tokens(4), None, _tokens(2))
