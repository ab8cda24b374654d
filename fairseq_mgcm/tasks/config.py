"""Options of the ``speech_to_text_multitask`` task (the conflict engine's options belong to the
``conflict_aware`` optimizer wrapper: ``fairseq_mgcm/optim/_config.py``).

No ``from __future__ import annotations``: fairseq and omegaconf read these field types at
runtime.
"""

from dataclasses import dataclass, field

from fairseq.dataclass import FairseqDataclass
from omegaconf import MISSING


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
