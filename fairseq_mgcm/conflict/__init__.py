"""The gradient-conflict engine: plain PyTorch, knows nothing of fairseq.

>>> from fairseq_mgcm.conflict import ConflictEngine
>>> engine = ConflictEngine(model, method="mgcm", granularity="module")
>>> print(engine.describe_partition())
>>> stats = engine.backward({"st": l_st, "ctc": l_ctc}, primary="st")   # instead of backward()
>>> engine = ConflictEngine(model, method="mgcm", memory="recompute")    # no graph kept
>>> stats = engine.backward(lambda: model.losses(batch), primary="st")  # the forward, re-run

The four methods are classes on one base (:class:`ConflictMethod`): :class:`PlainSum`
(``none``), :class:`MGCM`, :class:`Discard` and :class:`PCGrad`. See ``docs/conflict.md`` for the
method, the partition rule, the memory bounds and a plain PyTorch (AMP, DDP) training loop.
"""
from fairseq_mgcm.conflict._discard import Discard
from fairseq_mgcm.conflict._engine import METHODS, ConflictEngine, make_method
from fairseq_mgcm.conflict._method import ConflictMethod
from fairseq_mgcm.conflict._mgcm import MGCM
from fairseq_mgcm.conflict._none import PlainSum
from fairseq_mgcm.conflict._partition import GRANULARITIES, KINDS, Group, describe, partition
from fairseq_mgcm.conflict._passes import (
    MEMORY_MODES,
    Forward,
    NotRepeatable,
    StatefulForward,
    memory_mode,
)
from fairseq_mgcm.conflict._pcgrad import PCGrad
from fairseq_mgcm.conflict._projection import AUX_MODES, GroupProjection
from fairseq_mgcm.conflict._stats import ConflictStats, ModuleConflict

__all__ = [
    "AUX_MODES",
    "GRANULARITIES",
    "KINDS",
    "MEMORY_MODES",
    "METHODS",
    "MGCM",
    "ConflictEngine",
    "ConflictMethod",
    "ConflictStats",
    "Discard",
    "Forward",
    "Group",
    "GroupProjection",
    "ModuleConflict",
    "NotRepeatable",
    "PCGrad",
    "PlainSum",
    "StatefulForward",
    "describe",
    "make_method",
    "memory_mode",
    "partition",
]
