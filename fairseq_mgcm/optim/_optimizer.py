"""The registered optimizer wrapper ``conflict_aware``: a base fairseq optimizer plus the
conflict engine that produces the gradients it steps with."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection
from typing import Any

import torch
from fairseq.optim import OPTIMIZER_REGISTRY, FairseqOptimizer, register_optimizer
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

from fairseq_mgcm.conflict.telemetry import run_label
from fairseq_mgcm.optim._config import BASE_OPTIMIZERS, ConflictAwareConfig
from fairseq_mgcm.optim._conflict_backward import ConflictAwareBackward
from fairseq_mgcm.optim._ddp import refuse_backend


def _base_config(cfg: Any, name: str) -> DictConfig:
    """The base optimizer's own config, with the values the wrapper's config holds."""
    values = {"_name": name}
    for f in dataclasses.fields(BASE_OPTIMIZERS[name]):
        if not f.name.startswith("_"):
            values[f.name] = getattr(cfg, f.name)
    return OmegaConf.create(values)


@register_optimizer("conflict_aware", dataclass=ConflictAwareConfig)
class ConflictAwareOptimizer(FairseqOptimizer):
    """``--optimizer conflict_aware --base-optimizer adam --conflict-method mgcm``.

    Steps like its base optimizer (``self.base``: same torch optimizer, state dict, learning
    rate, flat-parameter and fp16 support), and owns the conflict engine
    (``self.conflict_backward``, a :class:`ConflictAwareBackward`) that a task's ``train_step``
    reaches through :func:`fairseq_mgcm.optim.multitask_backward`. fairseq's ``FP16Optimizer``,
    ``MemoryEfficientFP16Optimizer`` and ``AMPOptimizer`` wrap it as they wrap any optimizer.
    """

    def __init__(self, cfg: ConflictAwareConfig, params: list) -> None:
        super().__init__(cfg)
        refuse_backend(str(cfg.conflict_method), *_data_parallel(cfg))
        name = str(cfg.base_optimizer)
        base_cls: Callable[..., FairseqOptimizer] = OPTIMIZER_REGISTRY[name]
        self.base = base_cls(_base_config(cfg, name), params)
        self.conflict_backward = ConflictAwareBackward(
            method=str(cfg.conflict_method),
            granularity=str(cfg.conflict_granularity),
            aux_mode=str(cfg.conflict_aux_mode),
            telemetry_jsonl=cfg.conflict_telemetry_jsonl,
            telemetry_interval=cfg.conflict_telemetry_interval,
            telemetry_run=(run_label(cfg.save_dir, cfg.conflict_telemetry_jsonl)
                           if cfg.conflict_telemetry_jsonl else None),
            seed=cfg.seed,
            memory=str(cfg.conflict_memory),
        )
        # Saving a checkpoint reads the torch optimizer's state (directly, under AMPOptimizer):
        # write the open telemetry window then, so the telemetry file ends where it does.
        self.base.optimizer.register_state_dict_pre_hook(
            lambda _: self.conflict_backward.flush_telemetry())

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self.base.optimizer

    @optimizer.setter
    def optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        self.base.optimizer = optimizer

    @property
    def optimizer_config(self) -> dict:
        return self.base.optimizer_config

    @property
    def supports_memory_efficient_fp16(self) -> bool:
        return self.base.supports_memory_efficient_fp16

    @property
    def supports_step_with_scale(self) -> bool:
        return self.base.supports_step_with_scale

    @property
    def supports_groups(self) -> bool:
        return self.base.supports_groups

    @property
    def supports_flat_params(self) -> bool:
        return self.base.supports_flat_params

    def step(
        self,
        closure: Callable[[], float] | None = None,
        scale: float = 1.0,
        groups: Collection[str] | None = None,
    ) -> None:
        self.base.step(closure, scale=scale, groups=groups)

    def average_params(self) -> None:
        self.base.average_params()

    def __getstate__(self) -> dict:
        return self.base.__getstate__()


def _data_parallel(cfg: Any) -> tuple[str | None, int]:
    """The run's ``--ddp-backend`` and worker count; ``(None, 1)`` for a config built outside
    fairseq's (unit tests)."""
    try:
        return str(cfg.ddp_backend), int(cfg.distributed_world_size)
    except (AttributeError, InterpolationResolutionError, MissingMandatoryValue):
        return None, 1
