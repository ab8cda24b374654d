"""Options of the ``conflict_aware`` optimizer wrapper.

No ``from __future__ import annotations``: fairseq and omegaconf read these field types at
runtime. The config inherits the fields of every base optimizer it can wrap (fairseq's ``adam``
and ``nag``), because fairseq's Namespace-to-omegaconf conversion keeps only the fields of the
registered dataclass: ``--adam-betas`` and friends must be fields here to reach the base.
"""

from dataclasses import dataclass, field, fields
from typing import Optional

from fairseq.dataclass import ChoiceEnum
from fairseq.optim.adam import FairseqAdamConfig
from fairseq.optim.nag import FairseqNAGConfig
from omegaconf import II

from fairseq_mgcm.conflict import AUX_MODES, GRANULARITIES, MEMORY_MODES, METHODS
from fairseq_mgcm.conflict.telemetry import DEFAULT_INTERVAL

BASE_OPTIMIZERS = {"adam": FairseqAdamConfig, "nag": FairseqNAGConfig}
"""The fairseq optimizers the wrapper can hold, with their option dataclasses."""


def _check_shared_defaults() -> None:
    """Options two bases share (``weight_decay``, ``lr``) must mean the same in both."""
    seen: dict[str, object] = {}
    for config in BASE_OPTIMIZERS.values():
        for f in fields(config):
            if f.name in seen and seen[f.name] != f.default:
                raise TypeError(f"base optimizers disagree on the default of {f.name!r}")
            seen[f.name] = f.default


_check_shared_defaults()


@dataclass
class ConflictAwareConfig(FairseqAdamConfig, FairseqNAGConfig):
    base_optimizer: ChoiceEnum(list(BASE_OPTIMIZERS)) = field(  # type: ignore[valid-type]
        default="adam",
        metadata={"help": "the fairseq optimizer that steps the parameters; its own options "
                  "(--adam-betas, --momentum, --weight-decay, --lr, ...) apply as usual"},
    )
    conflict_method: ChoiceEnum(list(METHODS)) = field(  # type: ignore[valid-type]
        default="none",
        metadata={"help": "gradient conflict handling between the primary task and the "
                  "auxiliary ones: none (plain sum), mgcm, pcgrad (model level) or discard"},
    )
    conflict_granularity: ChoiceEnum(list(GRANULARITIES)) = field(  # type: ignore[valid-type]
        default="module", metadata={"help": "partition on which mgcm/discard detect conflicts"},
    )
    conflict_aux_mode: ChoiceEnum(list(AUX_MODES)) = field(  # type: ignore[valid-type]
        default="separate",
        metadata={"help": "project each auxiliary gradient separately or their sum (combined)"},
    )
    conflict_memory: ChoiceEnum(list(MEMORY_MODES)) = field(  # type: ignore[valid-type]
        default="retain",
        metadata={"help": "retain: keep the forward graph across the method's backward passes; "
                  "recompute: run the forward again for each further pass (same random state) "
                  "and free each graph as its backward runs; frees the other tasks' branches "
                  "during each pass, for one forward per extra pass (docs/conflict.md, "
                  "section 3: what it saves)"},
    )
    conflict_telemetry_jsonl: Optional[str] = field(
        default=None,
        metadata={"help": "append per-module conflict statistics to this JSON-lines file "
                  "(first worker only)"},
    )
    conflict_telemetry_interval: int = field(
        default=DEFAULT_INTERVAL,
        metadata={"help": "updates aggregated into one telemetry line (bounds the file size: "
                  "100 keeps 100k updates of an s-size model under ~50 MB)"},
    )
    seed: int = II("common.seed")
    # Data-parallel backends that shard, average or all-reduce during a backward pass are
    # refused with a conflict method (optim/_ddp.py): the engine needs each worker's whole
    # per-task gradients, reduced once after all its passes.
    ddp_backend: str = II("distributed_training.ddp_backend")
    distributed_world_size: int = II("distributed_training.distributed_world_size")
    # The run the telemetry belongs to (a file another run wrote is refused, not truncated).
    save_dir: str = II("checkpoint.save_dir")
