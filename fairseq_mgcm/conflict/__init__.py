"""The gradient-conflict engine: plain PyTorch, knows nothing of fairseq.

>>> from fairseq_mgcm.conflict import ConflictEngine
>>> engine = ConflictEngine(model, method="mgcm", granularity="module")
>>> print(engine.describe_partition())
>>> stats = engine.backward({"st": l_st, "ctc": l_ctc}, primary="st")   # instead of backward()

See ``docs/conflict.md`` for the method, the partition rule and the memory bounds.
"""
from fairseq_mgcm.conflict._engine import AUX_MODES, METHODS, ConflictEngine
from fairseq_mgcm.conflict._partition import GRANULARITIES, KINDS, Group, describe, partition
from fairseq_mgcm.conflict._stats import ConflictStats, ModuleConflict

__all__ = [
    "AUX_MODES",
    "GRANULARITIES",
    "KINDS",
    "METHODS",
    "ConflictEngine",
    "ConflictStats",
    "Group",
    "ModuleConflict",
    "describe",
    "partition",
]
