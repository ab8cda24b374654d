#!/usr/bin/env python
"""Step time and peak extra memory of the gradient-conflict methods, as ratios to ``none``.

For each model size, precision, task set (``st+ctc``; ``st+ctc+asr``), method (``none``;
``pcgrad`` at model level; ``mgcm`` at ``parameter`` and ``module`` granularity, auxiliaries
``separate`` and ``combined``) and memory mode (``--conflict-memory``: ``retain`` keeps the
forward graph across the passes, ``recompute`` runs the forward again per pass; side by side,
``--memories``), a *fresh subprocess* builds the project's own model through its
model code (``WaitkS2TTransformerModel``: conv subsampler, chunk-causal encoder with a CTC
head, wait-k ST decoder, ASR decoder, tied decoder embeddings) and computes the losses with the
project's criterion (``st_ctc_asr``, its default weights; ``--asr-weight 0`` for two tasks), on
the same batches for every method. Sizes (parameter counts with this script's 2k/1k
vocabularies; every row of the output carries its own count):

* ``tiny``: ``waitk_s2t_transformer_tiny`` (dim 128, 2+1 layers; 1.4 M), on a smaller batch, so
  that the GPU suite's CPU mode (``benchmarks/gpu_suite.sh --device cpu --tiny``) runs in seconds;
* ``s``: ``waitk_s2t_transformer_s`` as shipped (dim 256, 12+6 layers, 4 heads, FFN 2048; 37.5 M);
* ``m``: the same code with dim 512 and 8 heads (fairseq's ``s2t_transformer_m`` widths; 93.4 M);
* ``l``: dim 768, 12 heads, FFN 3072 (205.9 M): the issue asks for a configuration of at least
  150 M parameters, where the gradient copies PCGrad keeps are large next to the activations.

Precisions (``--precisions``): ``fp32``; ``amp``, autocast (fp16 on CUDA, bf16 on CPU) with fp32
parameters and gradients, the losses multiplied by a constant 2^10 as a ``GradScaler`` does;
``fp16`` (CUDA only), the model in half precision as fairseq's ``--fp16`` runs it (fp16
gradients), the losses scaled likewise. The engine is linear under positive scaling, so the
constant changes no cost.

It runs warm-up steps, then times forward + backward (CPU: process CPU time, which other jobs
on a shared machine do not inflate; CUDA: wall time) and measures the step's peak memory:

* CPU: the peak resident set size of the step (``VmHWM`` after resetting it through
  ``/proc/self/clear_refs``) above the resident size before it, with glibc's mmap threshold
  fixed at 64 KiB (``MALLOC_MMAP_THRESHOLD_``) so that freed tensors leave the RSS at once;
* CUDA: ``torch.cuda.max_memory_allocated`` above ``memory_allocated`` before the step.

Each run is a fresh subprocess by default; ``--one-process`` runs every method of a size and
precision in one (the GPU suite's choice: on CUDA the peak is the allocator's own count, which
earlier methods do not disturb, and the start-up is paid once).

The extra memory over ``none`` is reported whole, next to what the same backward passes cost
when run bare (same losses, same order, no hooks: the activations kept alive by
``retain_graph``, which any method with separate passes pays) and to the engine's own
accounting of the gradient tensors it holds (``ConflictStats.held_bytes``; for PCGrad, its
flat per-task gradients). The *projection share* is the time a method spends beyond the bare
passes, as a share of its step. Gradients start as ``None`` (update-freq 1). Each row also
gives the paper's figure (its "95% less"): the method's extra peak over ``none`` and the bytes
the engine holds, each as a percentage of PCGrad's (as published: ``retain``) in the same size,
precision and task set; ``x_none`` of a ``recompute`` row is what its extra forwards cost.

usage: OMP_NUM_THREADS=1 python benchmarks/bench_conflict.py [--device cpu] [--steps 3]
           [--sizes s,m] [--precisions fp32] [--memories retain,recompute] [--one-process]
           [--json results.json]
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fairseq_mgcm.fast_start import defer_unused_imports  # noqa: E402

defer_unused_imports()  # before fairseq: scikit-learn and scipy.stats are never used here
from fairseq.data import Dictionary, data_utils  # noqa: E402

from fairseq_mgcm.atomic_files import write_text  # noqa: E402
from fairseq_mgcm.conflict import MEMORY_MODES, ConflictEngine, partition  # noqa: E402
from fairseq_mgcm.conflict._graph import reachable_leaves  # noqa: E402
from fairseq_mgcm.criterions import StCtcAsrConfig, StCtcAsrCriterion  # noqa: E402
from fairseq_mgcm.models import WaitkS2TTransformerModel  # noqa: E402
from fairseq_mgcm.models.waitk_s2t_transformer import (  # noqa: E402
    waitk_s2t_transformer_s,
    waitk_s2t_transformer_tiny,
)

SIZES = {  # size -> (architecture, overrides)
    "tiny": (waitk_s2t_transformer_tiny, {}),
    "s": (waitk_s2t_transformer_s, {}),
    "m": (waitk_s2t_transformer_s, {"embed_dim": 512, "attention_heads": 8}),
    "l": (waitk_s2t_transformer_s, {"embed_dim": 768, "attention_heads": 12,
                                    "encoder_ffn_embed_dim": 3072, "decoder_ffn_embed_dim": 3072}),
}
BATCH = {"utterances": 8, "frames": 400, "tokens": 30}  # fbank frames, target tokens
TINY_BATCH = {"utterances": 4, "frames": 200, "tokens": 12}
PRECISIONS = ("fp32", "amp", "fp16")
LOSS_SCALE = 2.0**10  # what a GradScaler or fairseq's loss scaler multiplies the losses by
VOCAB_TGT, VOCAB_SRC, FEATURES = 2000, 1000, 80
METHODS = [  # method, granularity, aux_mode
    ("none", "module", "separate"),
    ("pcgrad", "model", "separate"),
    ("mgcm", "parameter", "separate"),
    ("mgcm", "module", "separate"),
    ("mgcm", "parameter", "combined"),
    ("mgcm", "module", "combined"),
]


def _dictionary(n: int, prefix: str) -> Dictionary:
    dictionary = Dictionary()
    for i in range(n):
        dictionary.add_symbol(f"{prefix}{i}")
    return dictionary


def _task() -> SimpleNamespace:
    """What the model and criterion read from the task: dictionaries, feature size."""
    return SimpleNamespace(
        transcript_dictionary=_dictionary(VOCAB_SRC, "en"),
        target_dictionary=_dictionary(VOCAB_TGT, "de"),
        max_positions=lambda: (6000, 1024),
        data_cfg=SimpleNamespace(input_feat_per_channel=FEATURES),
    )


def build_model(size: str, task: SimpleNamespace) -> nn.Module:
    arch, overrides = SIZES[size]
    cfg = argparse.Namespace(waitk_lagging=9, **overrides)
    arch(cfg)
    return WaitkS2TTransformerModel.build_model(cfg, task)


def make_batch(task: SimpleNamespace, device: torch.device, seed: int, size: str = "s") -> dict:
    """One batch in the layout of the task's collater (random features and tokens)."""
    gen = torch.Generator().manual_seed(seed)
    shape = TINY_BATCH if size == "tiny" else BATCH
    b, t, n = shape["utterances"], shape["frames"], shape["tokens"]
    tgt, src = task.target_dictionary, task.transcript_dictionary

    def sentences(dictionary: Dictionary) -> list[Tensor]:
        return [torch.cat([torch.randint(4, len(dictionary), (n - 1,), generator=gen),
                           torch.tensor([dictionary.eos()])]) for _ in range(b)]

    targets, transcripts = sentences(tgt), sentences(src)
    sample = {
        "net_input": {
            "src_tokens": torch.randn(b, t, FEATURES, generator=gen),
            "src_lengths": torch.full((b,), t),
            "prev_output_tokens": data_utils.collate_tokens(
                targets, tgt.pad(), tgt.eos(), move_eos_to_beginning=True),
            "prev_transcript_tokens": data_utils.collate_tokens(
                transcripts, src.pad(), src.eos(), move_eos_to_beginning=True),
        },
        "target": data_utils.collate_tokens(targets, tgt.pad(), tgt.eos()),
        "transcript": data_utils.collate_tokens(transcripts, src.pad(), src.eos()),
        "transcript_lengths": torch.full((b,), n),
        "transcript_ntokens": b * n,
        "ntokens": b * n,
    }
    return _to(sample, device)


def _to(value, device: torch.device):
    if isinstance(value, Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: _to(v, device) for k, v in value.items()}
    return value


def _rss_mib() -> tuple[float, float]:
    values = {}
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":")
                values[key] = int(value.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


class _PeakMeter:
    def __init__(self, device: torch.device) -> None:
        self.device = device

    def start(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated() / 2**20
        else:
            with open("/proc/self/clear_refs", "w") as clear:
                clear.write("5")  # reset VmHWM to the current RSS
            self._base = _rss_mib()[0]

    def stop(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated() / 2**20 - self._base
        return _rss_mib()[1] - self._base


def _bare_passes(take: Callable[[list[str]], Tensor], names: list[str], method: str,
                 aux_mode: str, params: list[nn.Parameter], recompute: bool) -> None:
    """The backward passes the method runs, without any hook or projection; ``take(tasks)`` is
    the summed loss of ``tasks`` for the next pass (from a new forward under ``recompute``)."""
    aux = [name for name in names if name != "st"]
    if method == "none":
        take(names).backward()
        return
    if method != "pcgrad" and (aux_mode == "combined" or len(aux) == 1):
        order = [aux, ["st"]]
    else:
        order = [["st"]] + [[name] for name in aux]
    for i, tasks in enumerate(order):
        retain = not recompute and i < len(order) - 1
        if method == "pcgrad":
            torch.autograd.grad(take(tasks), params, retain_graph=retain, allow_unused=True)
        else:
            take(tasks).backward(retain_graph=retain)


def _shared_primary_mib(model: nn.Module, losses: dict[str, Tensor], granularity: str) -> float:
    """Primary-gradient bytes of the groups shared with an auxiliary; at ``parameter``
    granularity, the issue's bound: one stash of the gradients of the shared parameters."""
    primary = reachable_leaves(losses["st"])
    aux = set().union(*(reachable_leaves(v) for k, v in losses.items() if k != "st"))
    total = 0
    for group in partition(model, granularity):
        ids = {id(p) for _, p in group.params}
        if ids & primary and ids & aux:
            total += sum(p.nbytes for _, p in group.params if id(p) in primary)
    return total / 2**20


def _precision_context(precision: str, device: torch.device):
    """Autocast for ``amp`` (fp16 on CUDA, bf16 on CPU, which has no fast fp16); else none."""
    if precision != "amp":
        return contextlib.nullcontext()
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype)


def child(args: argparse.Namespace) -> list[dict]:
    """Measure every configuration of ``args.configs`` on one model of ``args.size``."""
    device = torch.device(args.device)
    task = _task()
    torch.manual_seed(0)
    model = build_model(args.size, task).to(device)
    batch = make_batch(task, device, 0, args.size)
    if args.precision == "fp16":
        model.half()
        batch["net_input"]["src_tokens"] = batch["net_input"]["src_tokens"].half()
    model.train()
    gc.collect()
    gc.freeze()  # the meter's gc.collect() per step then skips fairseq's many module objects
    return [measure(args, model, task, batch, tuple(config)) for config in args.configs]


def measure(args: argparse.Namespace, model: nn.Module, task: SimpleNamespace, batch: dict,
            config: tuple[int, str, str, str, str]) -> dict:
    """Time and peak memory of one method (``config``: tasks, method, granularity, aux mode,
    memory mode)."""
    tasks, method, granularity, aux_mode, memory = config
    device = torch.device(args.device)
    criterion = StCtcAsrCriterion(
        StCtcAsrConfig(sentence_avg=False, asr_weight=0.3 if tasks == 3 else 0.0), task)
    params = list(model.parameters())
    engine = ConflictEngine(model, method, granularity, aux_mode, seed=0, memory=memory)
    meter = _PeakMeter(device)
    scale = 1.0 if args.precision == "fp32" else LOSS_SCALE

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    clock = time.perf_counter if device.type == "cuda" else time.process_time

    def losses_of() -> dict[str, Tensor]:
        torch.manual_seed(1)  # the same dropout masks in every step and every method
        with _precision_context(args.precision, device):
            losses = criterion.compute_task_losses(model, batch)[0]
        return {name: loss * scale for name, loss in losses.items()}

    def step(bare: bool) -> tuple[float, float, int]:
        model.zero_grad(set_to_none=True)
        meter.start()
        sync()
        start = clock()
        if bare:
            first: list[dict[str, Tensor]] = [losses_of()]
            names = list(first[0])

            def take(tasks: list[str]) -> Tensor:
                losses = first.pop() if first else losses_of()
                if memory == "retain":
                    first.append(losses)
                return sum(losses[name] for name in tasks)  # type: ignore[return-value]

            _bare_passes(take, names, method, aux_mode, params, memory == "recompute")
            del first
            held = 0
        else:
            held = engine.backward(losses_of, "st").held_bytes
        sync()
        seconds = clock() - start
        return seconds, meter.stop(), held

    for _ in range(args.warmup):
        step(bare=False)
        step(bare=True)
    timed, bare, peaks, bare_peaks, held = [], [], [], [], 0
    for _ in range(args.steps):
        seconds, peak, held = step(bare=False)
        timed.append(seconds)
        peaks.append(peak)
        seconds, peak, _ = step(bare=True)
        bare.append(seconds)
        bare_peaks.append(peak)
    bound = _shared_primary_mib(model, losses_of(), "parameter")
    model.zero_grad(set_to_none=True)
    return {
        "size": args.size, "precision": args.precision, "tasks": tasks, "method": method,
        "granularity": granularity, "aux_mode": aux_mode, "memory": memory,
        "device": args.device,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "grad_mib": sum(p.nbytes for p in model.parameters()) / 2**20,
        "stash_bound_mib": bound,
        "step_s": statistics.median(timed), "bare_s": statistics.median(bare),
        "peak_mib": max(peaks), "bare_peak_mib": max(bare_peaks), "held_mib": held / 2**20,
    }


def run_child(args: argparse.Namespace, size: str, precision: str,
              configs: list[tuple[int, str, str, str, str]]) -> list[dict]:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="65536")
    command = [sys.executable, __file__, "--child", "--device", args.device, "--size", size,
               "--precision", precision, "--configs", json.dumps(configs),
               "--steps", str(args.steps), "--warmup", str(args.warmup)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"bench_conflict: {size} {precision} {configs} failed "
                         f"(exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def configurations(memories: tuple[str, ...] = MEMORY_MODES
                   ) -> list[tuple[int, str, str, str, str]]:
    """(tasks, method, granularity, aux mode, memory mode) of every run: combined needs two
    auxiliaries; ``none`` runs one pass, so it has nothing to recompute and runs once."""
    return [(tasks, *method, memory) for tasks in (2, 3) for method in METHODS
            for memory in (memories if method[0] != "none" else ("retain",))
            if not (tasks == 2 and method[2] == "combined")]


def add_pcgrad_shares(rows: list[dict]) -> None:
    """Add ``extra_mib`` (peak above ``none``'s), ``extra_pct_of_pcgrad`` and
    ``held_pct_of_pcgrad`` to each row, within its size, precision and task set, against
    PCGrad as published (``retain``: one graph kept for all its passes)."""
    for key in {(r["size"], r["precision"], r["tasks"]) for r in rows}:
        group = [r for r in rows if (r["size"], r["precision"], r["tasks"]) == key]
        none = next(r for r in group if r["method"] == "none")
        pcgrad = next(r for r in group
                      if r["method"] == "pcgrad" and r.get("memory", "retain") == "retain")
        pc_extra = pcgrad["peak_mib"] - none["peak_mib"]
        for r in group:
            r["extra_mib"] = r["peak_mib"] - none["peak_mib"]
            r["extra_pct_of_pcgrad"] = 100 * r["extra_mib"] / pc_extra if pc_extra > 0 else None
            r["held_pct_of_pcgrad"] = (100 * r["held_mib"] / pcgrad["held_mib"]
                                       if pcgrad["held_mib"] > 0 else None)


def _pct(value: float | None) -> str:
    return f"{value:>7.1f}" if value is not None else f"{'-':>7}"


def _table(rows: list[dict]) -> str:
    """One line per run: step time, its ratio to none and the projection share; the step's peak
    memory and its ratio to none; the extra over none, as MiB and as % of PCGrad's; the extra
    of the bare passes; the bytes the engine holds, as MiB and as % of PCGrad's."""
    lines = ["size prec. tasks method  gran.     aux      memory    step_s x_none proj%  "
             "peak_MiB x_none extra_MiB %pcgrad passes_MiB held_MiB %pcgrad"]
    order = list(SIZES)
    keys = sorted({(r["size"], r["precision"], r["tasks"]) for r in rows},
                  key=lambda k: (order.index(k[0]), PRECISIONS.index(k[1]), k[2]))
    for key in keys:
        group = [r for r in rows if (r["size"], r["precision"], r["tasks"]) == key]
        none = next(r for r in group if r["method"] == "none")
        for r in group:
            passes = r["bare_peak_mib"] - none["peak_mib"]
            share = 100 * max(0.0, r["step_s"] - r["bare_s"]) / r["step_s"]
            lines.append(
                f"{r['size']:<4} {r['precision']:<5} {r['tasks']:>5} {r['method']:<7} "
                f"{r['granularity']:<9} {r['aux_mode']:<8} {r['memory']:<9} {r['step_s']:>6.3f} "
                f"{r['step_s'] / none['step_s']:>6.2f} {share:>5.1f} {r['peak_mib']:>9.1f} "
                f"{r['peak_mib'] / none['peak_mib']:>6.2f} {r['extra_mib']:>9.1f} "
                f"{_pct(r['extra_pct_of_pcgrad'])} {passes:>10.1f} {r['held_mib']:>8.2f} "
                f"{_pct(r['held_pct_of_pcgrad'])}")
        lines.append(f"        ({none['params_m']:.1f} M parameters, {none['grad_mib']:.0f} MiB of "
                     f"gradients, stash bound {none['stash_bound_mib']:.0f} MiB)")
    return "\n".join(lines)


def _machine(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(line.split(":", 1)[1].strip() for line in cpuinfo
                         if line.startswith("model name"))
    except (OSError, StopIteration):
        model = "unknown CPU"
    return f"{model}, {os.cpu_count()} cores"


def _parse(argv: list[str] | None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--sizes", default="s,m", help=f"comma-separated model sizes {list(SIZES)}")
    parser.add_argument("--precisions", default="fp32",
                        help=f"comma-separated precisions {list(PRECISIONS)} (fp16: CUDA only)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per method (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--memories", default=",".join(MEMORY_MODES),
                        help="comma-separated --conflict-memory modes, side by side "
                        f"(default {','.join(MEMORY_MODES)})")
    parser.add_argument("--one-process", action="store_true",
                        help="every method of a size and precision in one subprocess")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--size", help=argparse.SUPPRESS)
    parser.add_argument("--precision", help=argparse.SUPPRESS)
    parser.add_argument("--configs", type=json.loads, help=argparse.SUPPRESS)
    return parser, parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    parser, args = _parse(argv)
    if args.child:
        print(json.dumps(child(args)))
        return 0
    sizes, precisions = args.sizes.split(","), args.precisions.split(",")
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        parser.error(f"--sizes: unknown size(s) {unknown}; choose from {list(SIZES)}")
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown:
        parser.error(f"--precisions: unknown {unknown}; choose from {list(PRECISIONS)}")
    memories = tuple(args.memories.split(","))
    unknown = [m for m in memories if m not in MEMORY_MODES]
    if unknown:
        parser.error(f"--memories: unknown {unknown}; choose from {list(MEMORY_MODES)}")
    if "fp16" in precisions and not args.device.startswith("cuda"):
        parser.error("--precisions fp16 needs --device cuda (use amp on CPU: bf16 autocast)")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: torch sees no CUDA device")
    rows = []
    for size in sizes:
        for precision in precisions:
            groups = ([configurations(memories)] if args.one_process
                      else [[config] for config in configurations(memories)])
            for configs in groups:
                rows += run_child(args, size, precision, configs)
                print(f"# {size} {precision} {configs}: {rows[-1]['step_s']:.3f} s",
                      file=sys.stderr)
    add_pcgrad_shares(rows)
    print(f"device {args.device} ({_machine(args.device)}), torch {torch.__version__}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"load average at the end {os.getloadavg()[0]:.2f}")
    print(_table(rows))
    if args.json:
        write_text(args.json, json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
