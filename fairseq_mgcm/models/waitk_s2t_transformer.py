"""The registered model ``waitk_s2t_transformer`` and its named architectures.

One speech encoder (conv subsampler + transformer, optionally chunk-causal) feeds three heads:
a CTC projection onto the English source vocabulary, an offline ASR decoder (English) and the
wait-k ST decoder (German). With ``--mt-text-encoder`` the English transcript also runs through
the shared encoder layers (own embedding, no subsampler) into the ST decoder: the MT auxiliary,
wait-k over source tokens. ``model.decoder`` is the ST decoder, so fairseq's SequenceGenerator
(``fairseq-generate``) decodes translations; ``model.forward`` returns the ST output with the
CTC logits and the ASR and MT decoder outputs added to its extra dict, so that one call
(through DDP) yields every task's output.

Defaults derived here, so each lives in one place: the pre-decision ratio comes from the
architecture function (``_s`` 7, ``_tiny`` 4); the encoder chunk size defaults to that read
step under ``--waitk-lagging`` (a bidirectional encoder would train on future audio that
streaming inference never has; an explicit ``--encoder-chunk-size 0`` is warned about).
"""

from __future__ import annotations

import logging
import os
from argparse import Namespace
from dataclasses import fields
from typing import TYPE_CHECKING

import torch
from fairseq.data import Dictionary
from fairseq.models import FairseqEncoderDecoderModel, register_model, register_model_architecture
from torch import Tensor, nn

from fairseq_mgcm.models._text_embedding import TextEmbedding
from fairseq_mgcm.models.config import WaitkS2TConfig
from fairseq_mgcm.models.decoder import (
    IncrementalState,
    ReadSchedule,
    WaitkTransformerDecoder,
    default_full_context_prob,
)
from fairseq_mgcm.models.encoder import WaitkS2TEncoder

if TYPE_CHECKING:
    from fairseq.tasks.speech_to_text import SpeechToTextTask

logger = logging.getLogger(__name__)

# The read step of the paper-size model (280 ms: 7 encoder frames of 40 ms); also what the bare
# ``--arch waitk_s2t_transformer`` (the same sizes) uses.
S_PRE_DECISION_RATIO = 7
TINY_PRE_DECISION_RATIO = 4


def resolve_read_options(cfg: WaitkS2TConfig) -> tuple[int, int]:
    """``(pre_decision_ratio, encoder_chunk_size)`` with the derived defaults filled in.

    Unset chunk size: the read step under wait-k (chunk-causal, no future audio), else 0. An
    explicit 0 under wait-k is allowed (the bidirectional baseline) but warned about loudly.
    """
    ratio = cfg.pre_decision_ratio if cfg.pre_decision_ratio is not None else S_PRE_DECISION_RATIO
    chunk = cfg.encoder_chunk_size
    if chunk is None:
        chunk = ratio if cfg.waitk_lagging is not None else 0
    elif chunk == 0 and cfg.waitk_lagging is not None:
        logger.warning(
            "WARNING: --waitk-lagging %s with --encoder-chunk-size 0 trains a BIDIRECTIONAL "
            "encoder: every frame sees future audio that streaming inference never has, so "
            "simultaneous BLEU will fall below what training suggests. Leave "
            "--encoder-chunk-size unset (= the read step, %s frames) for a chunk-causal encoder.",
            cfg.waitk_lagging,
            ratio,
        )
    return ratio, chunk


@register_model("waitk_s2t_transformer", dataclass=WaitkS2TConfig)
class WaitkS2TTransformerModel(FairseqEncoderDecoderModel):
    """Wait-k speech-to-text transformer with CTC and ASR auxiliary heads."""

    def __init__(
        self,
        encoder: WaitkS2TEncoder,
        decoder: WaitkTransformerDecoder,
        asr_decoder: WaitkTransformerDecoder | None,
        ctc_proj: nn.Linear | None,
        mt_embed: TextEmbedding | None = None,
        mt_schedule: ReadSchedule | None = None,
    ) -> None:
        super().__init__(encoder, decoder)
        self.asr_decoder = asr_decoder
        self.ctc_proj = ctc_proj
        self.mt_embed = mt_embed
        self.mt_schedule = mt_schedule or ReadSchedule(None)

    @classmethod
    def build_model(cls, cfg: WaitkS2TConfig, task: SpeechToTextTask) -> "WaitkS2TTransformerModel":
        src_dict = getattr(task, "transcript_dictionary", None)
        tgt_dict = task.target_dictionary
        max_source, max_target = task.max_positions()
        kernels = tuple(int(k) for k in str(cfg.conv_kernel_sizes).split(","))
        ratio, chunk_size = resolve_read_options(cfg)
        full_context_prob = (
            default_full_context_prob(cfg.waitk_lagging, cfg.waitk_full_context_prob)
            if cfg.waitk_multipath
            else 0.0
        )
        encoder = WaitkS2TEncoder(
            input_feat_per_channel=task.data_cfg.input_feat_per_channel,
            embed_dim=cfg.embed_dim,
            layers=cfg.encoder_layers,
            attention_heads=cfg.attention_heads,
            ffn_embed_dim=cfg.encoder_ffn_embed_dim,
            conv_channels=cfg.conv_channels,
            conv_kernel_sizes=kernels,
            chunk_size=chunk_size,
            dropout=cfg.dropout,
            attention_dropout=cfg.attention_dropout,
            activation_dropout=cfg.activation_dropout,
            max_source_positions=max_source,
        )

        def make_decoder(
            dictionary: Dictionary, layers: int, waitk: bool
        ) -> WaitkTransformerDecoder:
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
                pre_decision_ratio=ratio,
                waitk_multipath=cfg.waitk_multipath and waitk,
                encoder_prefix_stable=encoder.is_chunk_causal,
                full_context_prob=full_context_prob if waitk else 0.0,
            )

        decoder = make_decoder(tgt_dict, cfg.decoder_layers, waitk=True)
        asr_decoder, ctc_proj = None, None
        if src_dict is not None:
            ctc_proj = nn.Linear(cfg.embed_dim, len(src_dict))
            if cfg.asr_decoder_layers > 0:
                asr_decoder = make_decoder(src_dict, cfg.asr_decoder_layers, waitk=False)
        mt_embed, mt_schedule = None, None
        if cfg.mt_text_encoder:
            if src_dict is None:
                raise ValueError(
                    "--mt-text-encoder needs a source (English) dictionary: the task must provide "
                    "transcripts (--task speech_to_text_multitask, src_vocab_filename in "
                    "config.yaml)"
                )
            mt_embed = TextEmbedding(src_dict, cfg.embed_dim, cfg.dropout)
            mt_lagging = cfg.mt_waitk_lagging
            if mt_lagging is None:
                mt_lagging = cfg.waitk_lagging
            elif cfg.waitk_lagging is None:
                raise ValueError("--mt-waitk-lagging needs --waitk-lagging (an offline ST model)")
            mt_schedule = ReadSchedule(
                mt_lagging,
                ratio=1,
                multipath=cfg.waitk_multipath,
                full_context_prob=full_context_prob,
            )
        model = cls(encoder, decoder, asr_decoder, ctc_proj, mt_embed, mt_schedule)
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
            k for k in own.keys() & wanted.keys() if own[k].shape != wanted[k].shape
        )
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
        mt_source_tokens: Tensor | None = None,
        mt_source_lengths: Tensor | None = None,
        **kwargs: object,
    ) -> tuple[Tensor, dict]:
        """ST logits ``[B, T_tgt, V_tgt]`` and extras: ``ctc_logits`` ``[T_enc, B, V_src]``,
        ``encoder_lengths`` ``[B]``, given transcripts ``asr_out`` (the ASR decoder's
        ``(logits, extra)``) and, given MT source tokens ``[B, S]`` (the transcript ending in
        EOS), ``mt_out`` (the ST decoder's output on the MT path)."""
        encoder_out = self.encoder(src_tokens, src_lengths)
        logits, extra = self.decoder(prev_output_tokens, encoder_out=encoder_out)
        extra["encoder_lengths"] = encoder_out["src_lengths"][0]
        if self.ctc_proj is not None:
            extra["ctc_logits"] = self.ctc_proj(encoder_out["encoder_out"][0])
        if prev_transcript_tokens is not None and self.asr_decoder is not None:
            extra["asr_out"] = self.asr_decoder(prev_transcript_tokens, encoder_out=encoder_out)
        if mt_source_tokens is not None:
            extra["mt_out"] = self.forward_mt(
                mt_source_tokens, mt_source_lengths, prev_output_tokens
            )
        return logits, extra

    def forward_mt(
        self, source_tokens: Tensor, source_lengths: Tensor | None, prev_output_tokens: Tensor
    ) -> tuple[Tensor, dict]:
        """The MT auxiliary: English tokens through the shared encoder layers (causal over
        tokens when the speech encoder is chunk-causal, as a wait-k MT encoder must be) into
        the ST decoder, whose token i reads source tokens ``[0, k + i)``."""
        if self.mt_embed is None:
            raise ValueError("--mt-weight > 0 needs the model option --mt-text-encoder")
        if source_lengths is None:
            source_lengths = source_tokens.ne(self.mt_embed.padding_idx).sum(dim=1)
        x = self.mt_embed(source_tokens)
        chunk = 1 if self.encoder.is_chunk_causal else 0
        encoder_out = self.encoder.encode_embedded(x, source_lengths, chunk)
        return self.decoder(
            prev_output_tokens, encoder_out=encoder_out, read_schedule=self.mt_schedule
        )

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


def _fill_defaults(cfg: Namespace, **arch_values: object) -> None:
    """Fill every option the user left unset with the architecture's value, else the default.

    Model options reach the arch function unset (None) unless given on the command line,
    because fairseq adds model flags without defaults.
    """
    defaults = WaitkS2TConfig()
    for f in fields(WaitkS2TConfig):
        if getattr(cfg, f.name, None) is None:
            setattr(cfg, f.name, arch_values.get(f.name, getattr(defaults, f.name)))


@register_model_architecture("waitk_s2t_transformer", "waitk_s2t_transformer_s")
def waitk_s2t_transformer_s(cfg: Namespace) -> None:
    """Paper-like size: 12 encoder / 6 decoder layers, dim 256, 4 heads, FFN 2048 (~32M);
    read step 7 encoder frames (280 ms)."""
    _fill_defaults(cfg, pre_decision_ratio=S_PRE_DECISION_RATIO)


@register_model_architecture("waitk_s2t_transformer", "waitk_s2t_transformer_tiny")
def waitk_s2t_transformer_tiny(cfg: Namespace) -> None:
    """Tests and demos on CPU: 2 encoder / 1+1 decoder layers, dim 128, read step 4 frames."""
    _fill_defaults(
        cfg,
        embed_dim=128,
        encoder_layers=2,
        decoder_layers=1,
        asr_decoder_layers=1,
        encoder_ffn_embed_dim=256,
        decoder_ffn_embed_dim=256,
        conv_channels=256,
        pre_decision_ratio=TINY_PRE_DECISION_RATIO,
        dropout=0.1,
        attention_dropout=0.0,
        activation_dropout=0.0,
    )
