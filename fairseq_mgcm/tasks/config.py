"""Options of the ``speech_to_text_multitask`` task, including the conflict engine's.

No ``from __future__ import annotations``: fairseq and omegaconf read these field types at
runtime.
"""

from dataclasses import dataclass, field
from typing import Optional

from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from omegaconf import II, MISSING

CONFLICT_METHODS = ChoiceEnum(["none", "mgcm", "pcgrad", "discard"])
CONFLICT_GRANULARITIES = ChoiceEnum(["parameter", "module", "layer", "model"])
CONFLICT_AUX_MODES = ChoiceEnum(["separate", "combined"])


@dataclass
class SpeechToTextMultitaskConfig(FairseqDataclass):
    data: str = field(default=MISSING, metadata={"help": "prepared data directory (manifests)"})
    config_yaml: str = field(
        default="config.yaml", metadata={"help": "data config YAML under the data directory"}
    )
    max_source_positions: int = field(
        default=6000, metadata={"help": "longest source in fbank frames"}
    )
    max_target_positions: int = field(default=1024, metadata={"help": "longest target in tokens"})
    eval_bleu: bool = field(
        default=False, metadata={"help": "decode the validation set and report sacrebleu BLEU"}
    )
    eval_bleu_args: str = field(
        default='{"beam": 1}',
        metadata={"help": "generation args for validation BLEU as JSON, e.g. '{\"beam\": 4}'"},
    )
    eval_bleu_print_samples: bool = field(
        default=False, metadata={"help": "log one hypothesis and reference per validation batch"}
    )
    conflict_method: CONFLICT_METHODS = field(
        default="none",
        metadata={
            "help": "gradient conflict handling between ST and the auxiliary tasks: none "
            "(weighted sum), mgcm, pcgrad (model level) or discard"
        },
    )
    conflict_granularity: CONFLICT_GRANULARITIES = field(
        default="module", metadata={"help": "partition on which mgcm/discard detect conflicts"}
    )
    conflict_aux_mode: CONFLICT_AUX_MODES = field(
        default="separate",
        metadata={"help": "project each auxiliary gradient separately or their sum (combined)"},
    )
    conflict_telemetry_jsonl: Optional[str] = field(
        default=None,
        metadata={"help": "append per-module conflict statistics to this JSON-lines file"},
    )
    seed: int = II("common.seed")
