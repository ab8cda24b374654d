"""A small three-task model and fairseq optimizer configs for the adapter tests."""
from __future__ import annotations

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn


class _Layer(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, 2, batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 2 * dim)
        self.fc2 = nn.Linear(2 * dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        h = x + self.attn(x, x, x, need_weights=False)[0]
        return h + self.fc2(torch.relu(self.fc1(self.norm(h))))


class ThreeTaskModel(nn.Module):
    """Shared encoder layer (attention, FFN, LayerNorm), a primary head and two auxiliary heads;
    the forward returns the three losses, so it can run inside DDP."""

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.layer = _Layer(dim)
        self.output_projection = nn.Linear(dim, 4)
        self.ctc_proj = nn.Linear(dim, 3)
        self.asr_proj = nn.Linear(dim, 3)

    def forward(self, x: Tensor, targets: dict[str, Tensor],
                anti: float = 1.0) -> dict[str, Tensor]:
        h = self.layer(x)
        shared = (h.float() * targets["shared"]).sum()
        return {
            "st": (self.output_projection(h).float() * targets["st"]).sum() + shared,
            "ctc": (self.ctc_proj(h).float() * targets["ctc"]).sum() - anti * shared,
            "asr": (self.asr_proj(h).float() * targets["asr"]).sum() - 0.5 * anti * shared,
        }


def batch(seed: int, dim: int = 8, dtype: torch.dtype = torch.float32) -> tuple[Tensor, dict]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 5, dim, generator=gen).to(dtype)
    targets = {"shared": torch.randn(2, 5, dim, generator=gen),
               "st": torch.randn(2, 5, 4, generator=gen),
               "ctc": torch.randn(2, 5, 3, generator=gen),
               "asr": torch.randn(2, 5, 3, generator=gen)}
    return x, targets


def fairseq_cfg(fp16_init_scale: float = 128.0) -> DictConfig:
    """The parts of a fairseq config that the Adam, FP16 and AMP optimizers read. Flat fp32
    copies need CUDA, so the fp16 wrappers run with ``--fp16-no-flatten-grads`` on CPU."""
    return OmegaConf.create({
        "common": {"fp16_init_scale": fp16_init_scale, "fp16_scale_window": None,
                   "fp16_scale_tolerance": 0.0, "threshold_loss_scale": None,
                   "min_loss_scale": 1e-4, "bf16": False, "memory_efficient_bf16": False,
                   "fp16_no_flatten_grads": True, "amp": False, "model_parallel_size": 1,
                   "amp_init_scale": 128, "amp_scale_window": None},
        "optimizer": {"_name": "adam", "lr": [1e-3], "adam_betas": "(0.9, 0.98)",
                      "adam_eps": 1e-8, "weight_decay": 0.0, "use_old_adam": False,
                      "fp16_adam_stats": False, "tpu": False},
        "optimization": {"update_freq": [1], "lr": [1e-3]},
        "distributed_training": {"distributed_world_size": 1},
    })


def adam(params) -> "FairseqAdam":  # noqa: F821
    from fairseq.optim.adam import FairseqAdam

    return FairseqAdam(fairseq_cfg().optimizer, list(params))


def grads(model: nn.Module) -> dict[str, Tensor | None]:
    return {n: None if p.grad is None else p.grad.detach().clone()
            for n, p in model.named_parameters()}


def parsed_cfg(*flags: str) -> DictConfig:
    """A full fairseq config from ``fairseq-train``'s own parser and its Namespace-to-omegaconf
    conversion (what ``fairseq-train`` itself runs), for a command line ending in ``flags``."""
    import sys
    from pathlib import Path

    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    import fairseq_mgcm

    fairseq_mgcm.register()
    argv = ["data", "--user-dir", str(Path(fairseq_mgcm.__file__).parent),
            "--task", "speech_to_text_multitask", "--arch", "waitk_s2t_transformer_tiny",
            "--criterion", "st_ctc_asr", *flags]
    saved, sys.argv = sys.argv, ["fairseq-train", *argv]
    try:
        args = options.parse_args_and_arch(options.get_training_parser(), argv)
    finally:
        sys.argv = saved
    return convert_namespace_to_omegaconf(args)
