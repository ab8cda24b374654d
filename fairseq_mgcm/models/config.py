"""Options of the ``waitk_s2t_transformer`` model (``--embed-dim``, ``--waitk-lagging``, ...).

No ``from __future__ import annotations`` here: fairseq and omegaconf read these field types at
runtime and need real typing objects (``Optional[int]``), not strings.
"""

from dataclasses import dataclass, field
from typing import Optional

from fairseq.dataclass import FairseqDataclass


@dataclass
class WaitkS2TConfig(FairseqDataclass):
    embed_dim: int = field(default=256, metadata={"help": "model dimension (encoder and decoders)"})
    encoder_layers: int = field(default=12, metadata={"help": "transformer encoder layers"})
    decoder_layers: int = field(default=6, metadata={"help": "ST decoder layers"})
    asr_decoder_layers: int = field(
        default=6, metadata={"help": "ASR decoder layers (0: no ASR decoder)"}
    )
    attention_heads: int = field(default=4, metadata={"help": "attention heads in every layer"})
    encoder_ffn_embed_dim: int = field(default=2048, metadata={"help": "encoder FFN hidden size"})
    decoder_ffn_embed_dim: int = field(default=2048, metadata={"help": "decoder FFN hidden size"})
    conv_channels: int = field(default=1024, metadata={"help": "conv subsampler channels"})
    conv_kernel_sizes: str = field(
        default="5,5", metadata={"help": "odd kernel sizes of the stride-2 subsampler convs"}
    )
    encoder_chunk_size: Optional[int] = field(
        default=None,
        metadata={
            "help": "chunk-causal encoder: each encoder frame sees its chunk of N frames and "
            "every earlier chunk (needs a causal subsampler, used automatically); 0 = "
            "bidirectional (sees future audio: warned about with --waitk-lagging); unset: the "
            "read step (--pre-decision-ratio) with --waitk-lagging, else 0"
        },
    )
    waitk_lagging: Optional[int] = field(
        default=None, metadata={"help": "wait-k lagging k in read steps (unset: offline)"}
    )
    waitk_multipath: bool = field(
        default=False,
        metadata={"help": "multipath wait-k: draw k uniformly from [1, --waitk-lagging] per batch"},
    )
    waitk_full_context_prob: Optional[float] = field(
        default=None,
        metadata={
            "help": "multipath wait-k: probability that a training batch takes the full-context "
            "(offline) path, so offline decoding matches a path the model trained on (Elbayad "
            "et al. 2020); unset: 1 / (K + 1), i.e. k uniform over {1..K, infinity}; 0: never"
        },
    )
    pre_decision_ratio: Optional[int] = field(
        default=None,
        metadata={
            "help": "encoder frames per read step (each 40 ms after 4x subsampling); unset: the "
            "architecture's value (waitk_s2t_transformer_s 7, _tiny 4)"
        },
    )
    mt_text_encoder: bool = field(
        default=False,
        metadata={
            "help": "add the MT front-end: an English token embedding with positions that feeds "
            "the transcript through the shared encoder layers (no subsampler) into the ST "
            "decoder; needed by --mt-weight > 0"
        },
    )
    mt_waitk_lagging: Optional[int] = field(
        default=None,
        metadata={
            "help": "wait-k lagging of the MT auxiliary in source tokens (read step 1 token; "
            "drawn from [1, K] under --waitk-multipath); unset: --waitk-lagging"
        },
    )
    dropout: float = field(default=0.1, metadata={"help": "dropout probability"})
    attention_dropout: float = field(default=0.1, metadata={"help": "attention dropout"})
    activation_dropout: float = field(default=0.1, metadata={"help": "FFN activation dropout"})
    untie_decoder_embeddings: bool = field(
        default=False, metadata={"help": "separate decoder input and output embeddings"}
    )
    load_pretrained_encoder_from: Optional[str] = field(
        default=None,
        metadata={
            "help": "initialise the encoder and the CTC head from this checkpoint (e.g. ASR "
            "pre-training with --st-weight 0); ignored when training resumes from a checkpoint"
        },
    )
