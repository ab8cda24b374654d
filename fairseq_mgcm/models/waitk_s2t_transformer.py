"""The registered model ``waitk_s2t_transformer`` and its named architectures.

One speech encoder (conv subsampler + transformer, optionally chunk-causal) feeds three heads:
a CTC projection onto the English source vocabulary, an offline ASR decoder (English) and the
wait-k ST decoder (German). ``model.decoder`` is the ST decoder, so fairseq's SequenceGenerator
(``fairseq-generate``) decodes translations; ``model.forward`` returns the ST output with the
CTC logits and the ASR decoder output added to its extra dict, so that one call (through DDP)
yields every task's output.
"""

from __future__ import annotations

import os
from dataclasses import fields

import torch
from fairseq.models import FairseqEncoderDecoderModel, register_model, register_model_architecture
from torch import Tensor, nn

from fairseq_mgcm.models.config import WaitkS2TConfig
from fairseq_mgcm.models.decoder import IncrementalState, WaitkTransformerDecoder
from fairseq_mgcm.models.encoder import WaitkS2TEncoder


@register_model("waitk_s2t_transformer", dataclass=WaitkS2TConfig)
class WaitkS2TTransformerModel(FairseqEncoderDecoderModel):
    """Wait-k speech-to-text transformer with CTC and ASR auxiliary heads."""

    def __init__(
        self,
        encoder: WaitkS2TEncoder,
        decoder: WaitkTransformerDecoder,
        asr_decoder: WaitkTransformerDecoder | None,
        ctc_proj: nn.Linear | None,
    ) -> None:
        super().__init__(encoder, decoder)
        self.asr_decoder = asr_decoder
        self.ctc_proj = ctc_proj

    @classmethod
    def build_model(cls, cfg: WaitkS2TConfig, task) -> "WaitkS2TTransformerModel":
        src_dict = getattr(task, "transcript_dictionary", None)
        tgt_dict = task.target_dictionary
        max_source, max_target = task.max_positions()
        kernels = tuple(int(k) for k in str(cfg.conv_kernel_sizes).split(","))
        encoder = WaitkS2TEncoder(
            input_feat_per_channel=task.data_cfg.input_feat_per_channel,
            embed_dim=cfg.embed_dim,
            layers=cfg.encoder_layers,
            attention_heads=cfg.attention_heads,
            ffn_embed_dim=cfg.encoder_ffn_embed_dim,
            conv_channels=cfg.conv_channels,
            conv_kernel_sizes=kernels,
            chunk_size=cfg.encoder_chunk_size,
            dropout=cfg.dropout,
            attention_dropout=cfg.attention_dropout,
            activation_dropout=cfg.activation_dropout,
            max_source_positions=max_source,
        )

        def make_decoder(dictionary, layers: int, waitk: bool) -> WaitkTransformerDecoder:
            return WaitkTransformerDecoder(
                dictionary,
                embed_dim=cfg.embed_dim,
                layers=layers,
                attention_heads=cfg.attention_heads,
                ffn_embed_dim=cfg.decoder_ffn_embed_dim,
                dropout=cfg.dropout,
                attention_dropout=cfg.attention_dropout,
                activation_dropout=cfg.activation_dropout,
                max_target_positions=max_target,
                share_input_output_embed=not cfg.untie_decoder_embeddings,
                waitk_lagging=cfg.waitk_lagging if waitk else None,
                pre_decision_ratio=cfg.pre_decision_ratio,
                waitk_multipath=cfg.waitk_multipath and waitk,
                encoder_prefix_stable=encoder.is_chunk_causal,
            )

        decoder = make_decoder(tgt_dict, cfg.decoder_layers, waitk=True)
        asr_decoder, ctc_proj = None, None
        if src_dict is not None:
            ctc_proj = nn.Linear(cfg.embed_dim, len(src_dict))
            if cfg.asr_decoder_layers > 0:
                asr_decoder = make_decoder(src_dict, cfg.asr_decoder_layers, waitk=False)
        model = cls(encoder, decoder, asr_decoder, ctc_proj)
        if cfg.load_pretrained_encoder_from:
            model.load_pretrained_encoder(cfg.load_pretrained_encoder_from)
        return model

    def load_pretrained_encoder(self, path: str) -> None:
        """Copy ``encoder.*`` and ``ctc_proj.*`` weights from a checkpoint of this model.

        The recipe's ASR pre-training trains the same architecture with the ST loss off; its
        encoder and CTC head are what carries over (the decoders' vocabularies differ).
        """
        from fairseq import checkpoint_utils

        if not os.path.exists(path):
            raise FileNotFoundError(f"--load-pretrained-encoder-from {path}: no such checkpoint")
        state = checkpoint_utils.load_checkpoint_to_cpu(path)["model"]
        prefixes = ["encoder."] + (["ctc_proj."] if self.ctc_proj is not None else [])
        wanted = {k: v for k, v in state.items() if any(k.startswith(p) for p in prefixes)}
        own = {k: v for k, v in self.state_dict().items() if any(k.startswith(p) for p in prefixes)}
        missing = sorted(set(own) - set(wanted))
        mismatched = sorted(
            k for k in own.keys() & wanted.keys() if own[k].shape != wanted[k].shape)
        if missing or mismatched:
            raise ValueError(
                f"--load-pretrained-encoder-from {path}: encoder does not match this model "
                f"(missing {missing[:3]}, shape mismatch {mismatched[:3]})"
            )
        self.load_state_dict(wanted, strict=False)

    @property
    def pre_decision_ratio(self) -> int:
        """Encoder frames per wait-k read step (the streaming agent's granularity)."""
        return self.decoder.pre_decision_ratio

    def forward(
        self,
        src_tokens: Tensor,
        src_lengths: Tensor,
        prev_output_tokens: Tensor,
        prev_transcript_tokens: Tensor | None = None,
        **kwargs,
    ) -> tuple[Tensor, dict]:
        """ST logits ``[B, T_tgt, V_tgt]`` and extras: ``ctc_logits`` ``[T_enc, B, V_src]``,
        ``encoder_lengths`` ``[B]`` and, given transcripts, ``asr_out`` (the ASR decoder's
        ``(logits, extra)``)."""
        encoder_out = self.encoder(src_tokens, src_lengths)
        logits, extra = self.decoder(prev_output_tokens, encoder_out=encoder_out)
        extra["encoder_lengths"] = encoder_out["src_lengths"][0]
        if self.ctc_proj is not None:
            extra["ctc_logits"] = self.ctc_proj(encoder_out["encoder_out"][0])
        if prev_transcript_tokens is not None and self.asr_decoder is not None:
            extra["asr_out"] = self.asr_decoder(prev_transcript_tokens, encoder_out=encoder_out)
        return logits, extra

    @torch.no_grad()
    def next_token_log_probs(
        self, prev_tokens: Tensor, encoder_frames: Tensor, incremental_state: IncrementalState
    ) -> Tensor:
        """Log-probabilities ``[V]`` of the next target token for one streaming utterance.

        ``prev_tokens`` ``[n]`` starts with EOS (fairseq's BOS for decoding); ``encoder_frames``
        ``[T, 1, C]`` are all the encoder frames available now (the caller applies the wait-k
        rule by how many it has read). ``incremental_state`` (start with ``{}``) keeps the
        decoder's self-attention cache and its encoder-side keys/values, which are extended when
        a chunk-causal encoder grows and re-projected for a bidirectional one.
        """
        encoder_out = {"encoder_out": [encoder_frames], "encoder_padding_mask": []}
        logits, _ = self.decoder(
            prev_tokens.view(1, -1),
            encoder_out=encoder_out,
            incremental_state=incremental_state,
            refresh_encoder_cache=not self.encoder.is_chunk_causal,
        )
        last = logits[0, -1]
        return torch.log_softmax(last, dim=-1, dtype=torch.promote_types(last.dtype, torch.float32))


def _fill_defaults(cfg, **arch_values) -> None:
    """Fill every option the user left unset with the architecture's value, else the default.

    Model options reach the arch function unset (None) unless given on the command line,
    because fairseq adds model flags without defaults.
    """
    defaults = WaitkS2TConfig()
    for f in fields(WaitkS2TConfig):
        if getattr(cfg, f.name, None) is None:
            setattr(cfg, f.name, arch_values.get(f.name, getattr(defaults, f.name)))


@register_model_architecture("waitk_s2t_transformer", "waitk_s2t_transformer_s")
def waitk_s2t_transformer_s(cfg) -> None:
    """Paper-like size: 12 encoder / 6 decoder layers, dim 256, 4 heads, FFN 2048 (~32M)."""
    _fill_defaults(cfg)


@register_model_architecture("waitk_s2t_transformer", "waitk_s2t_transformer_tiny")
def waitk_s2t_transformer_tiny(cfg) -> None:
    """Tests and demos on CPU: 2 encoder / 1+1 decoder layers, dim 128."""
    _fill_defaults(
        cfg,
        embed_dim=128,
        encoder_layers=2,
        decoder_layers=1,
        asr_decoder_layers=1,
        encoder_ffn_embed_dim=256,
        decoder_ffn_embed_dim=256,
        conv_channels=256,
        pre_decision_ratio=2,
        dropout=0.1,
        attention_dropout=0.0,
        activation_dropout=0.0,
    )
