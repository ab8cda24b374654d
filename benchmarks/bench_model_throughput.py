#!/usr/bin/env python
"""Training throughput of our wait-k model against fairseq's ``convtransformer_simul_trans``.

Both models get the same batches (random fbank and random target tokens: compute cost does not
depend on the values) and the same step: forward, label-smoothed cross-entropy, backward, Adam.
Sizes match the paper-like setting: 12 encoder / 6 decoder layers, dim 256, 4 heads, FFN 2048,
4x subsampling, wait-k with k = ``--waitk`` and pre-decision ratio ``--ratio``. Variants:

- ``fairseq``: fairseq's ``convtransformer_simul_trans_espnet`` with ``waitk_fixed_pre_decision``
  monotonic attention (its SimulST wait-k model), built from an argparse Namespace because its
  ``fairseq-train`` command line fails under hydra 1.3;
- ``ours_st``: ``waitk_s2t_transformer_s`` with the ST decoder only (the same work as fairseq's);
- ``ours_multitask``: ours with the CTC head and ASR decoder too (what MGCM training runs);
- ``ours_multitask_mt``: ``ours_multitask`` plus the MT auxiliary (``--mt-text-encoder``,
  ``--mt-weight 0.3``: the transcript through the shared encoder layers into the ST decoder),
  the paper's task set, to measure what MT adds.

``--size tiny`` builds ``waitk_s2t_transformer_tiny`` for our variants and fairseq's model at the
same widths (dim 128, 2 encoder / 1 decoder layers, FFN 256; fairseq ships no such size), so
the GPU suite's CPU mode (``benchmarks/gpu_suite.sh --device cpu --tiny``) runs every variant
in seconds.

Each variant runs in a fresh subprocess, so peak memory is its own: on CUDA
``torch.cuda.max_memory_allocated``; on CPU the growth of peak RSS (``ru_maxrss``) from just
before the model is built to the end of the timed steps. Variants alternate over ``--repeats``
rounds and the best time per variant counts. Ratios (ours / fairseq) come from the same run.

Usage:
    OMP_NUM_THREADS=2 python benchmarks/bench_model_throughput.py [--device cpu|cuda] \\
        [--batch-size 8] [--batches 3] [--min-frames 300] [--max-frames 900] [--steps 4] \\
        [--warmup 1] [--repeats 2] [--threads 2] [--size s|tiny] [--variants a,b] \\
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType, SimpleNamespace

import torch

VARIANTS = ("fairseq", "ours_st", "ours_multitask", "ours_multitask_mt")
VOCAB_TGT, VOCAB_SRC = 8000, 5000
# fairseq's convtransformer at the widths of our waitk_s2t_transformer_tiny
FAIRSEQ_TINY = {"encoder_embed_dim": 128, "encoder_layers": 2, "decoder_layers": 1,
                "encoder_ffn_embed_dim": 256, "decoder_ffn_embed_dim": 256}


def _dictionary(size: int):
    from fairseq.data import Dictionary

    dictionary = Dictionary()
    for i in range(size - len(dictionary)):
        dictionary.add_symbol(f"w{i}")
    return dictionary


def make_batches(opts: argparse.Namespace, device: torch.device) -> list[dict]:
    """Seeded random batches: fbank ``[B, T, 80]``, targets of ~1 token per 12 fbank frames
    (MuST-C's rate), transcripts of ~1 token per 10 frames."""
    gen = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(opts.batches):
        lengths = torch.randint(
            opts.min_frames, opts.max_frames + 1, (opts.batch_size,), generator=gen
        )
        lengths, _ = lengths.sort(descending=True)
        feats = torch.randn(opts.batch_size, int(lengths[0]), 80, generator=gen)
        tgt_len, src_len = max(2, int(lengths[0]) // 12), max(2, int(lengths[0]) // 10)
        target = torch.randint(4, VOCAB_TGT, (opts.batch_size, tgt_len), generator=gen)
        transcript = torch.randint(4, VOCAB_SRC, (opts.batch_size, src_len), generator=gen)
        target[:, -1], transcript[:, -1] = 2, 2  # EOS
        prev = torch.cat([torch.full_like(target[:, :1], 2), target[:, :-1]], dim=1)
        prev_transcript = torch.cat([torch.full_like(transcript[:, :1], 2), transcript[:, :-1]], 1)
        batch = {
            "net_input": {
                "src_tokens": feats,
                "src_lengths": lengths,
                "prev_output_tokens": prev,
                "prev_transcript_tokens": prev_transcript,
            },
            "target": target,
            "transcript": transcript,
            "transcript_lengths": torch.full((opts.batch_size,), src_len),
            "transcript_ntokens": opts.batch_size * src_len,
            "ntokens": target.numel(),
        }
        batches.append(_to(batch, device))
    return batches


def _to(obj, device: torch.device):
    if isinstance(obj, dict):
        return {key: _to(value, device) for key, value in obj.items()}
    return obj.to(device) if torch.is_tensor(obj) else obj


def import_fairseq_simultaneous() -> None:
    """Make fairseq's bundled ``examples`` importable as a top-level package (its modules import
    ``examples.simultaneous_translation...``) and register its models."""
    import fairseq

    link_dir = Path(tempfile.mkdtemp(prefix="fairseq_examples_"))
    (link_dir / "examples").symlink_to(Path(fairseq.__file__).parent / "examples")
    sys.path.insert(0, str(link_dir))
    import examples.simultaneous_translation  # noqa: F401


_SHIM_SECONDS = [0.0]


def _expected_alignment(p_choose: torch.Tensor, alpha: torch.Tensor, eps: float) -> None:
    """Stand-in for fairseq's compiled ``alignment_train_{cpu,cuda}`` kernels, which do not load
    under torch 2.11 (the CPU binding fails with an undefined c10 symbol; no CUDA binding is
    installed). Same recurrence (Raffel et al. 2017, expected monotonic alignment), one target
    step at a time as the kernels do: ``alpha_i = p_i * P_i * cumsum(alpha_{i-1} / P_i)`` with
    ``P_i`` the exclusive cumulative product of ``1 - p_i`` (clamped at ``eps``) and
    ``alpha_{-1} = [1, 0, ..., 0]``. Its time is accumulated so it can be reported apart."""
    start = time.perf_counter()
    with torch.no_grad():
        bsz, tgt_len, src_len = p_choose.shape
        ones = p_choose.new_ones(bsz, tgt_len, 1)
        keep = torch.cumprod(torch.cat([ones, 1 - p_choose[:, :, :-1]], dim=2), dim=2)
        previous = p_choose.new_zeros(bsz, src_len)
        previous[:, 0] = 1.0
        for i in range(tgt_len):
            scaled = torch.cumsum(previous / keep[:, i].clamp(min=eps), dim=1)
            previous = (p_choose[:, i] * keep[:, i] * scaled).clamp(0.0, 1.0)
            alpha[:, i] = previous
        if p_choose.is_cuda:
            torch.cuda.synchronize()
    _SHIM_SECONDS[0] += time.perf_counter() - start


def _install_alignment_shim() -> None:
    for name in ("alignment_train_cpu", "alignment_train_cuda"):
        module = ModuleType(f"{name}_binding")
        setattr(module, name, _expected_alignment)
        sys.modules[f"{name}_binding"] = module


def build_fairseq_waitk(opts: argparse.Namespace) -> tuple[torch.nn.Module, callable]:
    import_fairseq_simultaneous()
    _install_alignment_shim()
    from examples.simultaneous_translation.models.convtransformer_simul_trans import (
        SimulConvTransformerModel,
        convtransformer_simul_trans_espnet,
    )
    from examples.simultaneous_translation.modules import MONOTONIC_ATTENTION_REGISTRY

    parser = argparse.ArgumentParser()
    SimulConvTransformerModel.add_args(parser)
    MONOTONIC_ATTENTION_REGISTRY["waitk_fixed_pre_decision"].add_args(parser)
    parsed = parser.parse_args(
        ["--waitk-lagging", str(opts.waitk), "--fixed-pre-decision-ratio", str(opts.ratio)]
    )
    # options left unset must be absent, not None, for the architecture function to fill them
    args = argparse.Namespace(**{k: v for k, v in vars(parsed).items() if v is not None})
    args.simul_type = "waitk_fixed_pre_decision"
    args.input_feat_per_channel, args.input_channels = 80, 1
    args.dropout, args.attention_dropout, args.activation_dropout = 0.1, 0.1, 0.1
    args.share_decoder_input_output_embed = True
    if opts.size == "tiny":  # set before the architecture fills in the rest
        for name, value in FAIRSEQ_TINY.items():
            setattr(args, name, value)
    convtransformer_simul_trans_espnet(args)
    dictionary = _dictionary(VOCAB_TGT)
    task = SimpleNamespace(target_dictionary=dictionary, tgt_dict=dictionary)
    model = SimulConvTransformerModel.build_model(args, task)
    return model, _st_loss_fn(model)


def build_ours(
    opts: argparse.Namespace, multitask: bool, mt: bool = False
) -> tuple[torch.nn.Module, callable]:
    import fairseq_mgcm

    fairseq_mgcm.register()
    from fairseq_mgcm.criterions import StCtcAsrConfig, StCtcAsrCriterion
    from fairseq_mgcm.models import WaitkS2TTransformerModel
    from fairseq_mgcm.models.waitk_s2t_transformer import (
        waitk_s2t_transformer_s,
        waitk_s2t_transformer_tiny,
    )

    cfg = argparse.Namespace(
        waitk_lagging=opts.waitk,
        pre_decision_ratio=opts.ratio,
        encoder_chunk_size=opts.chunk,
        mt_text_encoder=mt,
    )
    arch = waitk_s2t_transformer_tiny if opts.size == "tiny" else waitk_s2t_transformer_s
    arch(cfg)
    task = SimpleNamespace(
        target_dictionary=_dictionary(VOCAB_TGT),
        transcript_dictionary=_dictionary(VOCAB_SRC) if multitask else None,
        max_positions=lambda: (6000, 1024),
        data_cfg=SimpleNamespace(input_feat_per_channel=80),
    )
    model = WaitkS2TTransformerModel.build_model(cfg, task)
    if not multitask:
        return model, _st_loss_fn(model)
    criterion = StCtcAsrCriterion(
        StCtcAsrConfig(sentence_avg=False, mt_weight=0.3 if mt else 0.0), task
    )

    def loss_fn(batch: dict) -> torch.Tensor:
        return criterion(model, batch)[0]

    return model, loss_fn


def _st_loss_fn(model: torch.nn.Module) -> callable:
    from fairseq.criterions.label_smoothed_cross_entropy import label_smoothed_nll_loss

    def loss_fn(batch: dict) -> torch.Tensor:
        net_input = {k: v for k, v in batch["net_input"].items() if k != "prev_transcript_tokens"}
        logits = model(**net_input)[0]
        lprobs = torch.log_softmax(logits.float(), dim=-1).view(-1, logits.size(-1))
        return label_smoothed_nll_loss(lprobs, batch["target"].view(-1), 0.1, ignore_index=1)[0]

    return loss_fn


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _current_rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(variant: str, opts: argparse.Namespace, queue: mp.Queue) -> None:
    """Child process: build one variant, time ``opts.steps`` training steps, report."""
    from fairseq_mgcm.fast_start import defer_unused_imports

    defer_unused_imports()  # before fairseq: scikit-learn and scipy.stats are never used here
    torch.set_num_threads(opts.threads)
    torch.manual_seed(0)
    device = torch.device(opts.device)
    batches = make_batches(opts, device)
    rss_before = _current_rss_bytes()
    if variant == "fairseq":
        model, loss_fn = build_fairseq_waitk(opts)
    else:
        model, loss_fn = build_ours(
            opts,
            multitask=variant.startswith("ours_multitask"),
            mt=variant == "ours_multitask_mt",
        )
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step(batch: dict) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(batch).backward()
        optimizer.step()

    for i in range(opts.warmup):
        step(batches[i % len(batches)])
    _SHIM_SECONDS[0] = 0.0
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for i in range(opts.steps):
        step(batches[i % len(batches)])
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    utterances = opts.steps * opts.batch_size
    peak = (
        torch.cuda.max_memory_allocated()
        if device.type == "cuda"
        else _peak_rss_bytes() - rss_before
    )
    queue.put(
        {
            "variant": variant,
            "params": sum(p.numel() for p in model.parameters()),
            "seconds": seconds,
            "alignment_shim_seconds": _SHIM_SECONDS[0],
            "utt_per_s": utterances / seconds,
            "peak_mib": peak / 2**20,
        }
    )


def run_variant(variant: str, opts: argparse.Namespace) -> dict:
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=measure, args=(variant, opts, queue))
    process.start()
    process.join()
    if process.exitcode != 0:
        raise RuntimeError(f"variant {variant} failed (exit code {process.exitcode})")
    return queue.get()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=3, help="distinct batches, cycled")
    parser.add_argument("--min-frames", type=int, default=300)
    parser.add_argument("--max-frames", type=int, default=900)
    parser.add_argument("--steps", type=int, default=4, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2, help="alternating rounds; best counts")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--waitk", type=int, default=3)
    parser.add_argument("--ratio", type=int, default=8, help="pre-decision ratio (frames)")
    parser.add_argument("--chunk", type=int, default=0, help="our encoder chunk size (0: bidir)")
    parser.add_argument("--size", choices=("s", "tiny"), default="s", help="our architecture")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    opts = parser.parse_args(argv)
    variants = opts.variants.split(",")
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"--variants: unknown {sorted(unknown)}; choose from {VARIANTS}")

    best: dict[str, dict] = {}
    for _ in range(opts.repeats):
        for variant in variants:
            result = run_variant(variant, opts)
            if variant not in best or result["seconds"] < best[variant]["seconds"]:
                best[variant] = result
    baseline = best.get("fairseq")
    device_name = (
        torch.cuda.get_device_name(0) if opts.device == "cuda" else platform.processor() or "cpu"
    )
    print(f"device: {opts.device} ({device_name}), torch {torch.__version__}, "
          f"threads {opts.threads}, batch {opts.batch_size} x {opts.min_frames}-"
          f"{opts.max_frames} frames, {opts.steps} timed steps, best of {opts.repeats}")  # fmt: skip
    print(f"{'variant':<16}{'params':>12}{'utt/s':>10}{'peak MiB':>10}{'speed x':>9}{'mem x':>7}")
    for variant in variants:
        r = best[variant]
        speed = r["utt_per_s"] / baseline["utt_per_s"] if baseline else float("nan")
        memory = r["peak_mib"] / baseline["peak_mib"] if baseline else float("nan")
        r["speed_ratio"], r["memory_ratio"] = speed, memory
        print(f"{variant:<16}{r['params']:>12,}{r['utt_per_s']:>10.2f}{r['peak_mib']:>10.0f}"
              f"{speed:>9.2f}{memory:>7.2f}")  # fmt: skip
    if baseline is not None and baseline["alignment_shim_seconds"] > 0:
        shim = baseline["alignment_shim_seconds"]
        net = baseline["seconds"] - shim
        ours = best.get("ours_st")
        line = (
            f"fairseq's step includes {shim:.2f} s of {baseline['seconds']:.2f} s in the "
            "alignment stand-in"
        )
        if ours is not None:
            line += f"; ours_st speed ratio without it: {net / ours['seconds']:.2f}"
        print(line)
    if opts.json is not None:
        payload = {"options": vars(opts) | {"json": str(opts.json)}, "device": device_name,
                   "results": best}  # fmt: skip
        from fairseq_mgcm.atomic_files import write_text

        write_text(opts.json, json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
