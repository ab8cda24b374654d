"""Options of the ``st_ctc_asr`` criterion (no ``from __future__``: fairseq reads the types)."""

from dataclasses import dataclass, field

from fairseq.dataclass import FairseqDataclass
from omegaconf import II


@dataclass
class StCtcAsrConfig(FairseqDataclass):
    label_smoothing: float = field(
        default=0.1, metadata={"help": "label smoothing of the ST and ASR cross-entropies"}
    )
    st_weight: float = field(
        default=1.0,
        metadata={"help": "weight of the ST loss (0: ASR pre-training with CTC + ASR only)"},
    )
    ctc_weight: float = field(
        default=0.3, metadata={"help": "weight of the CTC loss on the transcript (0: off)"}
    )
    asr_weight: float = field(
        default=0.3, metadata={"help": "weight of the ASR decoder's cross-entropy (0: off)"}
    )
    mt_weight: float = field(
        default=0.0,
        metadata={
            "help": "weight of the MT auxiliary's cross-entropy (transcript -> German through the "
            "shared encoder layers and the ST decoder; needs the model option "
            "--mt-text-encoder; 0: off)"
        },
    )
    sentence_avg: bool = II("optimization.sentence_avg")
