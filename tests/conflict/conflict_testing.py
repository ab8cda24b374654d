"""A small multi-task model, its losses, and the slow, obviously correct reference update.

The reference takes each task's gradient with its own ``torch.autograd.grad`` call and writes
the projection out with plain tensors, group by group; the engine must match it.
"""
from __future__ import annotations

import os
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fairseq_mgcm.conflict import partition
from fairseq_mgcm.conflict._pcgrad import task_orders

DEVICE = torch.device(os.environ.get("MGCM_TEST_DEVICE", "cpu"))
Losses = Callable[[], dict[str, Tensor]]


class _Layer(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, 2, batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 2 * dim)
        self.fc2 = nn.Linear(2 * dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.self_attn(x, x, x, need_weights=False)[0]
        return x + self.fc2(torch.tanh(self.fc1(self.norm(x))))


class ToyModel(nn.Module):
    """An encoder shared by three tasks, a decoder for the primary one, and heads.

    ``st`` (primary) reaches the encoder, the decoder, ``output_projection`` and only the weight
    of ``ctc_proj``; ``ctc`` reaches the encoder and all of ``ctc_proj``; ``asr`` reaches the
    subsampler and layer 0 only, ``asr_proj`` and only the weight of ``output_projection``.
    Nobody reaches ``unused``. The auxiliaries share a term with the primary loss on the
    encoder, with weight ``-anti``: the larger ``anti``, the more modules conflict.
    """

    def __init__(self, dim: int = 6, vocab: int = 5) -> None:
        super().__init__()
        self.subsample = nn.Conv1d(dim, dim, 3, padding=1)
        self.layers = nn.ModuleList(_Layer(dim) for _ in range(2))
        self.ctc_proj = nn.Linear(dim, vocab)
        self.asr_proj = nn.Linear(dim, vocab)
        self.embed_tokens = nn.Embedding(vocab, dim)
        self.decoder_layer = _Layer(dim)
        self.output_projection = nn.Linear(dim, vocab)
        self.unused = nn.Linear(2, 2)

    def losses(self, x: Tensor, tokens: Tensor, targets: dict[str, Tensor],
               anti: float) -> dict[str, Tensor]:
        h = torch.tanh(self.subsample(x.transpose(1, 2)).transpose(1, 2))
        h0 = self.layers[0](h)
        enc = self.layers[1](h0)
        dec = self.decoder_layer(self.embed_tokens(tokens) + enc.mean(1, keepdim=True))
        shared_enc = (enc * targets["enc"]).sum()
        shared_h0 = (h0 * targets["h0"]).sum()
        st = (self.output_projection(dec) * targets["st"]).sum() + shared_enc + shared_h0
        st = st + 0.1 * (F.linear(enc, self.ctc_proj.weight) * targets["st_ctc"]).sum()
        ctc = (self.ctc_proj(enc) * targets["ctc"]).sum() - anti * shared_enc
        asr = (self.asr_proj(h0) * targets["asr"]).sum() - anti * shared_h0
        asr = asr + (F.linear(h0, self.output_projection.weight) * targets["asr_out"]).sum()
        return {"st": st, "ctc": ctc, "asr": asr}


def toy_model(seed: int, dtype: torch.dtype = torch.float64) -> ToyModel:
    torch.manual_seed(seed)
    return ToyModel().to(DEVICE, dtype)


def toy_losses(model: ToyModel, seed: int, tasks: tuple[str, ...] = ("st", "ctc", "asr"),
               anti: float = 1.0) -> Losses:
    """A function that recomputes the same losses (one micro-batch) on each call."""
    gen = torch.Generator().manual_seed(seed)
    dtype = next(model.parameters()).dtype

    def rand(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=gen, dtype=torch.float64).to(DEVICE, dtype)

    x = rand(2, 4, 6)
    tokens = torch.randint(0, 5, (2, 3), generator=gen).to(DEVICE)
    targets = {"st": rand(2, 3, 5), "st_ctc": rand(2, 4, 5), "ctc": rand(2, 4, 5),
               "asr": rand(2, 4, 5), "asr_out": rand(2, 4, 5), "enc": rand(2, 4, 6),
               "h0": rand(2, 4, 6)}

    def losses() -> dict[str, Tensor]:
        every = model.losses(x, tokens, targets, anti)
        return {name: every[name] for name in tasks}

    return losses


def toy_problem(seed: int, tasks: tuple[str, ...] = ("st", "ctc", "asr"),
                dtype: torch.dtype = torch.float64, anti: float = 1.0) -> tuple[ToyModel, Losses]:
    """A random model and one micro-batch of losses for it."""
    model = toy_model(seed, dtype)
    return model, toy_losses(model, seed, tasks, anti)


def grads_of(model: nn.Module) -> dict[str, Tensor | None]:
    return {n: None if p.grad is None else p.grad.detach().clone()
            for n, p in model.named_parameters()}


def _task_grads(model: nn.Module, losses: dict[str, Tensor]) -> dict[str, dict[str, Tensor | None]]:
    names = [n for n, _ in model.named_parameters()]
    params = [p for _, p in model.named_parameters()]
    out = {}
    for task, loss in losses.items():
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        out[task] = dict(zip(names, grads))
    return out


def _add(total: Tensor | None, value: Tensor | None) -> Tensor | None:
    if value is None:
        return total
    return value.clone() if total is None else total + value


def reference_update(
    model: nn.Module, losses: dict[str, Tensor], method: str, granularity: str = "module",
    aux_mode: str = "separate", primary: str = "st", seed: int = 0,
) -> dict[str, Tensor | None]:
    """The combined gradient, computed the slow way (``None`` where no task reaches)."""
    grads = _task_grads(model, losses)
    names = [n for n, _ in model.named_parameters()]
    if method == "none":
        return {n: _sum_present(grads[t][n] for t in grads) for n in names}
    if method == "pcgrad":
        return _reference_pcgrad(model, grads, primary, seed)
    aux_tasks = [t for t in grads if t != primary]
    if aux_mode == "combined" and len(aux_tasks) > 1:
        combined = {n: _sum_present(grads[t][n] for t in aux_tasks) for n in names}
        grads = {primary: grads[primary], "+".join(aux_tasks): combined}
        aux_tasks = ["+".join(aux_tasks)]
    result = {n: grads[primary][n] for n in names}
    for group in partition(model, granularity):
        members = [n for n, _ in group.params]
        shapes = {n: p.shape for n, p in group.params}
        p_present = any(grads[primary][n] is not None for n in members)
        p_vec = _flat(grads[primary], members, shapes)
        for task in aux_tasks:
            if not any(grads[task][n] is not None for n in members):
                continue  # absent on this group
            g_vec = _flat(grads[task], members, shapes)
            inner = torch.dot(g_vec, p_vec)
            if p_present and p_vec.norm() > 0 and inner < 0:
                if method == "mgcm":
                    g_vec = g_vec - inner / torch.dot(p_vec, p_vec) * p_vec
                else:  # discard
                    g_vec = torch.zeros_like(g_vec)
            offset = 0
            for n in members:
                size = shapes[n].numel()
                if grads[task][n] is not None or grads[primary][n] is not None:
                    piece = g_vec[offset : offset + size].view(shapes[n])
                    result[n] = _add(result[n], piece)
                offset += size
    return result


def _sum_present(values) -> Tensor | None:
    total = None
    for v in values:
        total = _add(total, v)
    return total


def _flat(grads: dict[str, Tensor | None], members: list[str], shapes: dict) -> Tensor:
    pieces = []
    for n in members:
        g = grads[n]
        pieces.append(torch.zeros(shapes[n].numel(), dtype=torch.float64, device=DEVICE)
                      if g is None else g.reshape(-1).double())
    return torch.cat(pieces)


def _reference_pcgrad(model, grads, primary, seed) -> dict[str, Tensor | None]:
    names = [n for n, p in model.named_parameters()]
    shapes = {n: p.shape for n, p in model.named_parameters()}
    tasks = sorted(grads, key=lambda t: t != primary)
    flats = [_flat(grads[t], names, shapes) for t in tasks]
    orders = task_orders(len(tasks), torch.Generator().manual_seed(seed))
    projected = []
    for i in range(len(tasks)):
        g = flats[i].clone()
        for j in orders[i]:
            inner = torch.dot(g, flats[j])
            if inner < 0:
                g = g - inner / torch.dot(flats[j], flats[j]) * flats[j]
        projected.append(g)
    total = sum(projected)
    result, offset = {}, 0
    for n in names:
        size = shapes[n].numel()
        reached = any(grads[t][n] is not None for t in tasks)
        result[n] = total[offset : offset + size].view(shapes[n]) if reached else None
        offset += size
    return result


def assert_grads_close(actual: dict[str, Tensor | None], expected: dict[str, Tensor | None],
                       rtol: float = 1e-9, atol: float = 1e-11) -> None:
    assert actual.keys() == expected.keys()
    for name in actual:
        a, e = actual[name], expected[name]
        assert (a is None) == (e is None), f"{name}: {a} vs {e}"
        if a is not None:
            torch.testing.assert_close(a.double(), e.double(), rtol=rtol, atol=atol, msg=name)


def waitk_model(arch: str = "tiny", seed: int = 0, **options) -> nn.Module:
    """The project's own ``waitk_s2t_transformer_<arch>`` on a stub task, built through its
    model code (tied decoder input/output embeddings unless ``untie_decoder_embeddings``)."""
    import argparse

    from fairseq_mgcm.models import WaitkS2TTransformerModel
    from fairseq_mgcm.models import waitk_s2t_transformer as archs
    from tests.models._tiny import stub_task

    torch.manual_seed(seed)
    cfg = argparse.Namespace(**options)
    getattr(archs, f"waitk_s2t_transformer_{arch}")(cfg)
    return WaitkS2TTransformerModel.build_model(cfg, stub_task())


def waitk_losses(model: nn.Module, seed: int) -> Losses:
    """The ``st_ctc_asr`` criterion's per-task losses on one random batch, recomputable."""
    from fairseq.data import data_utils

    from fairseq_mgcm.criterions import StCtcAsrConfig, StCtcAsrCriterion
    from tests.models._tiny import stub_task

    task = stub_task()
    criterion = StCtcAsrCriterion(StCtcAsrConfig(sentence_avg=False), task)
    tgt, src = task.target_dictionary, task.transcript_dictionary
    gen = torch.Generator().manual_seed(seed)
    dtype = next(model.parameters()).dtype

    def tokens(dictionary, n: int) -> Tensor:
        ids = torch.randint(4, len(dictionary), (n,), generator=gen)
        return torch.cat([ids, torch.tensor([dictionary.eos()])])

    targets = [tokens(tgt, n) for n in (5, 3)]
    transcripts = [tokens(src, n) for n in (4, 6)]
    sample = {
        "net_input": {
            "src_tokens": torch.randn(2, 64, 80, generator=gen, dtype=torch.float64).to(dtype),
            "src_lengths": torch.tensor([64, 48]),
            "prev_output_tokens": data_utils.collate_tokens(
                targets, tgt.pad(), tgt.eos(), move_eos_to_beginning=True),
            "prev_transcript_tokens": data_utils.collate_tokens(
                transcripts, src.pad(), src.eos(), move_eos_to_beginning=True),
        },
        "target": data_utils.collate_tokens(targets, tgt.pad(), tgt.eos()),
        "transcript": data_utils.collate_tokens(transcripts, src.pad(), src.eos()),
        "transcript_lengths": torch.tensor([len(t) for t in transcripts]),
        "transcript_ntokens": sum(len(t) for t in transcripts),
        "ntokens": sum(len(t) for t in targets),
    }

    def losses() -> dict[str, Tensor]:
        return criterion.compute_task_losses(model, sample)[0]

    return losses
