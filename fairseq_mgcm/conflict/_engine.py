"""The engine: a model's partition and one conflict method, in place of ``loss.backward()``."""
from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from fairseq_mgcm.conflict._discard import Discard
from fairseq_mgcm.conflict._method import ConflictMethod
from fairseq_mgcm.conflict._mgcm import MGCM
from fairseq_mgcm.conflict._none import PlainSum
from fairseq_mgcm.conflict._partition import GRANULARITIES, Group, describe, partition
from fairseq_mgcm.conflict._passes import Forward, memory_mode
from fairseq_mgcm.conflict._pcgrad import PCGrad
from fairseq_mgcm.conflict._projection import AUX_MODES, GroupProjection
from fairseq_mgcm.conflict._stats import ConflictStats

_CLASSES: tuple[type[ConflictMethod], ...] = (PlainSum, MGCM, PCGrad, Discard)
METHODS = tuple(cls.name for cls in _CLASSES)
"""The method names (``none``, ``mgcm``, ``pcgrad``, ``discard``), from the classes themselves:
the command line's choices are built from this."""


def make_method(name: str, aux_mode: str = "separate", seed: int = 0) -> ConflictMethod:
    """The method called ``name`` (one of :data:`METHODS`); ``aux_mode`` is for MGCM and
    discard, ``seed`` for PCGrad's random projection orders."""
    name = str(name)
    if name not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {name!r}")
    if str(aux_mode) not in AUX_MODES:
        raise ValueError(f"aux_mode must be one of {AUX_MODES}, got {aux_mode!r}")
    cls = _CLASSES[METHODS.index(name)]
    if issubclass(cls, GroupProjection):
        return cls(aux_mode)
    if issubclass(cls, PCGrad):
        return cls(seed)
    return cls()


class ConflictEngine:
    """Gradient-conflict handling for multi-task training, in place of ``loss.backward()``.

    >>> engine = ConflictEngine(model, method="mgcm", granularity="module")
    >>> stats = engine.backward({"st": l_st, "ctc": l_ctc, "asr": l_asr}, primary="st")

    ``method`` is a name from :data:`METHODS` or a :class:`ConflictMethod` instance
    (``MGCM()``, ``Discard()``, ``PCGrad(seed)``, ``PlainSum()``). ``backward`` *adds* the
    combined gradient to each parameter's ``.grad``, as ``loss.backward()`` does, so gradients
    of earlier micro-batches are kept (the projection is done per call, i.e. per micro-batch):

    * ``none``: ``sum(losses).backward()``, one pass.
    * ``mgcm`` (Liu et al. 2024, arXiv:2409.15911): on every group ``m`` of the partition where
      the primary gradient ``p_m`` is non-zero, an auxiliary gradient ``g_m`` with
      ``<g_m, p_m> < 0`` becomes ``g_m - <g_m, p_m> / ||p_m||^2 p_m``; the primary gradient is
      never changed; the update is ``p + sum_t g_t``.
    * ``discard``: like ``mgcm`` but a conflicting ``g_m`` is dropped.
    * ``pcgrad`` (Yu et al. 2020): model level, every task projected against the others.

    ``aux_mode="combined"`` sums the auxiliary losses and projects their joint gradient (one
    backward pass fewer); ``"separate"`` projects each auxiliary on its own (the reference).

    ``memory="retain"`` keeps the forward graph across the method's backward passes;
    ``"recompute"`` runs the forward again for each further pass under the first one's random
    state and frees each graph as its backward runs, for a forward per further pass
    (``backward`` then takes the forward as a function; what that saves and what it cannot:
    ``docs/conflict.md`` section 3)::

        engine = ConflictEngine(model, "mgcm", memory="recompute")
        stats = engine.backward(lambda: model.losses(batch), primary="st")
    """

    def __init__(
        self,
        model: nn.Module,
        method: str | ConflictMethod = "mgcm",
        granularity: str = "module",
        aux_mode: str = "separate",
        seed: int = 0,
        memory: str = "retain",
    ) -> None:
        granularity = str(granularity)
        if granularity not in GRANULARITIES:
            raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
        if not isinstance(method, ConflictMethod):
            method = make_method(method, aux_mode, seed)
        self.method: ConflictMethod = method
        self.granularity = granularity
        self.memory = memory_mode(memory)
        self._model = model
        self._groups: tuple[Group, ...] | None = None
        self._trainable: tuple[int, ...] = ()

    @property
    def groups(self) -> tuple[Group, ...]:
        """The partition (PCGrad always works on the whole model), built again whenever the set
        of trainable parameters changed: a parameter unfrozen after the first step (gradual
        unfreezing of a pre-trained encoder) is projected from then on, not summed unseen."""
        trainable = tuple(id(p) for p in self._model.parameters() if p.requires_grad)
        if self._groups is None or trainable != self._trainable:
            self._groups = partition(self._model, self.method.granularity or self.granularity)
            self._trainable = trainable
        return self._groups

    def describe_partition(self) -> str:
        """The partition as a table (group, kind, tensors, elements)."""
        return describe(self.groups)

    def backward(self, losses: Mapping[str, Tensor] | Forward, primary: str) -> ConflictStats:
        """Add the combined gradient of ``losses`` to ``.grad``; ``primary`` names the task whose
        gradient is never changed (ignored by ``pcgrad``, which treats all tasks alike).

        ``losses`` is the task losses, or a function that runs the forward and returns them
        (required with ``memory="recompute"``, which calls it once per backward pass; keep no
        reference to what it returns, or that graph cannot be freed)."""
        buffers = self._model.named_buffers() if self.memory == "recompute" else ()
        return self.method(self.groups, losses, primary, self.memory, buffers)
