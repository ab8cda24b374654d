"""The fairseq side of the conflict engine: loss scaling, telemetry, data-parallel checks."""
from __future__ import annotations

from collections.abc import Mapping

import torch.distributed as dist
from fairseq.logging import metrics
from fairseq.optim import FairseqOptimizer
from torch import Tensor, nn

from fairseq_mgcm.conflict import (
    GRANULARITIES,
    ConflictEngine,
    ConflictStats,
    Forward,
    make_method,
    memory_mode,
)
from fairseq_mgcm.conflict.telemetry import DEFAULT_INTERVAL, TelemetryWriter, summarize
from fairseq_mgcm.errors import BadValue
from fairseq_mgcm.optim._ddp import find_torch_ddp, unwrap
from fairseq_mgcm.optim._scaling import after_backward, scale_losses


class ConflictAwareBackward:
    """Stands in for ``optimizer.backward(loss)`` when the loss is several task losses.

    In a task's ``train_step`` (through :func:`~fairseq_mgcm.optim.multitask_backward`)::

        def forward():
            return criterion.compute_task_losses(model, sample)[0]

        self.conflict_backward(optimizer, model, forward, primary="st", update_num=update_num)

    ``memory`` (``--conflict-memory``) is the engine's: ``recompute`` calls ``forward`` once per
    backward pass. The call scales each loss as the optimizer wrapper would (fp16 loss scale,
    AMP grad scaler), runs :class:`~fairseq_mgcm.conflict.ConflictEngine` on the unwrapped
    model, sets the wrapper's flags, and logs conflict rates and cosines per module kind and
    task pair as fairseq metrics, and, on the first worker, aggregates them into
    ``telemetry_jsonl`` (one line per ``telemetry_interval`` updates; schema in
    :mod:`fairseq_mgcm.conflict.telemetry`), marked as ``telemetry_run``'s
    (:func:`~fairseq_mgcm.conflict.telemetry.run_label`).

    Data parallelism is fairseq's ``legacy_ddp``: the trainer all-reduces once per update,
    after the engine's passes. A model under torch DDP is refused (optim/_ddp.py says why).
    """

    def __init__(
        self,
        method: str = "none",
        granularity: str = "module",
        aux_mode: str = "separate",
        telemetry_jsonl: str | None = None,
        seed: int = 1,
        telemetry_interval: int = DEFAULT_INTERVAL,
        telemetry_run: str | None = None,
        memory: str = "retain",
    ) -> None:
        # str(): fairseq configs hold ChoiceEnum members; the engine and telemetry want strings
        self.method, self.granularity, self.aux_mode = str(method), str(granularity), str(aux_mode)
        make_method(self.method, self.aux_mode)  # validates the names now, not at first use
        if self.granularity not in GRANULARITIES:
            raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
        self.memory = memory_mode(memory)
        self._seed = seed
        self._engine: ConflictEngine | None = None
        self._engine_model: nn.Module | None = None
        # Built (and its file checked) now, when fairseq-train starts, not at the first window.
        self._writer = (TelemetryWriter(telemetry_jsonl, telemetry_interval, telemetry_run)
                        if telemetry_jsonl else None)

    def engine(self, model: nn.Module) -> ConflictEngine:
        """The engine for the unwrapped ``model`` (built on first use)."""
        inner = unwrap(model)
        if self._engine is None or self._engine_model is not inner:
            self._engine = ConflictEngine(
                inner, self.method, self.granularity, self.aux_mode, seed=self._seed,
                memory=self.memory,
            )
            self._engine_model = inner
        return self._engine

    def __call__(
        self,
        optimizer: FairseqOptimizer,
        model: nn.Module,
        losses: Mapping[str, Tensor] | Forward,
        primary: str = "st",
        update_num: int | None = None,
    ) -> ConflictStats:
        """Backward of ``losses`` (or of what the forward function returns, run once per pass
        under ``memory="recompute"``): the combined gradient is added to ``.grad``."""
        if self.method != "none" and find_torch_ddp(model) is not None:
            raise RuntimeError(
                f"conflict method {self.method!r} runs several backward passes and torch "
                "DistributedDataParallel all-reduces during the first: wrap the model in "
                "fairseq's LegacyDistributedDataParallel (--ddp-backend legacy_ddp) instead"
            )
        engine = self.engine(model)
        if callable(losses):
            forward = losses

            def scaled() -> dict[str, Tensor]:
                return scale_losses(optimizer, forward())

            stats = engine.backward(scaled, primary)
        elif self.memory == "recompute":
            raise BadValue("--conflict-memory recompute runs the forward once per backward pass, "
                           "but this task's train_step handed over losses, not its forward; use "
                           "--conflict-memory retain, or pass the forward as a function")
        else:
            stats = engine.backward(scale_losses(optimizer, losses), primary)
        after_backward(optimizer)
        self._log(stats, update_num)
        return stats

    def _log(self, stats: ConflictStats, update_num: int | None) -> None:
        for name, (value, weight) in summarize(stats).items():
            # priority 700: after fairseq's loss, throughput and gnorm columns in the logs
            metrics.log_scalar(name, value, weight=weight, priority=700, round=3)
        first_worker = not dist.is_initialized() or dist.get_rank() == 0
        if self._writer is not None and stats.records and first_worker:
            self._writer.add(stats, update_num or 0)

    def flush_telemetry(self) -> None:
        """Write the open telemetry window now (at a checkpoint, or before exit)."""
        if self._writer is not None:
            self._writer.flush()
