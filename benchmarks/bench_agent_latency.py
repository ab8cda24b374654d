#!/usr/bin/env python
"""Agent speed: real-time factor, AL_CA - AL, and cost per chunk against prefix length.

For a chunk-causal and a bidirectional model of the same size (``waitk_s2t_transformer_s`` by
default: 12 encoder / 6 decoder layers, dim 256), the wait-k agent runs through SimulEval
1.1.4's own instance class and evaluation loop (``SpeechToTextInstance``, one ``pushpop`` per
chunk, ``elapsed`` = source time + wall-clock time), and its log is scored with SimulEval's AL
scorer with and without computation-aware timing. Compute cost does not depend on the weights,
so the models are randomly initialised (seeded) unless ``--checkpoint`` gives a trained one; a
random model rarely predicts end-of-sentence, so its output length is set by the agent's length
cap (``--max-len-a`` tokens per fbank frame, default 3 words/s, the rate of the references);
it writes as a trained model would that keeps pace with the speech and does not stop early.

``--device cuda`` moves the models to the GPU and warms each up right after, as the agent does
when it loads a checkpoint there (``agents/warm_up.py``), so lazy CUDA initialisation is not
charged to the first instance; the encoder's share of a chunk is then timed after a
``torch.cuda.synchronize`` (its kernels run asynchronously). The CPU-time clock figures
(``RTF_cpu_time``, ``AL_CA_cpu_clock_minus_AL``) mean little on CUDA: the host waits there.

Outputs: a table on stdout and, with ``--json``, the numbers in a file.

Usage:
    OMP_NUM_THREADS=1 python benchmarks/bench_agent_latency.py [--arch s|tiny] [--device cpu] \\
        [--threads 1] \\
        [--waitk 5] [--segment-ms 320] [--utterances 6] [--long-seconds 30] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import tempfile
import time
from argparse import Namespace
from pathlib import Path

import soundfile as sf
import torch

from fairseq_mgcm.fast_start import defer_unused_imports

defer_unused_imports()  # before fairseq: scikit-learn and scipy.stats are never used here
from fairseq.data import Dictionary  # noqa: E402
from simuleval.data.dataloader.s2t_dataloader import SpeechToTextDataloader  # noqa: E402
from simuleval.evaluator.instance import SpeechToTextInstance  # noqa: E402
from simuleval.evaluator.scorers import get_scorer_class  # noqa: E402

from fairseq_mgcm.agents.checkpoint import LoadedModel, load_model  # noqa: E402
from fairseq_mgcm.agents.waitk_agent import WaitkAgent  # noqa: E402
from fairseq_mgcm.agents.warm_up import warm_up  # noqa: E402
from fairseq_mgcm.models import (  # noqa: E402
    WaitkS2TConfig,
    WaitkS2TEncoder,
    WaitkS2TTransformerModel,
    WaitkTransformerDecoder,
)

SAMPLE_RATE = 16000
ARCHS = {
    "s": {},  # WaitkS2TConfig defaults are the paper-size model
    "tiny": dict(
        embed_dim=128, encoder_layers=2, decoder_layers=1, encoder_ffn_embed_dim=256,
        decoder_ffn_embed_dim=256, conv_channels=256, pre_decision_ratio=2,
    ),
}  # fmt: skip


def random_dictionary(size: int) -> Dictionary:
    """Word-start pieces only, so that words = tokens and the output rate is the token rate."""
    dictionary = Dictionary()
    for i in range(size):
        dictionary.add_symbol(f"\u2581w{i}")
    return dictionary


def random_model(arch: str, chunk_causal: bool, vocab: int, waitk: int, device: str = "cpu"
                 ) -> LoadedModel:
    cfg = WaitkS2TConfig(**ARCHS[arch])
    torch.manual_seed(0)
    dictionary = random_dictionary(vocab)
    encoder = WaitkS2TEncoder(
        input_feat_per_channel=80, embed_dim=cfg.embed_dim, layers=cfg.encoder_layers,
        attention_heads=cfg.attention_heads, ffn_embed_dim=cfg.encoder_ffn_embed_dim,
        conv_channels=cfg.conv_channels,
        conv_kernel_sizes=tuple(int(k) for k in cfg.conv_kernel_sizes.split(",")),
        chunk_size=cfg.pre_decision_ratio if chunk_causal else 0, dropout=0.0,
        attention_dropout=0.0, activation_dropout=0.0, max_source_positions=6000,
    )  # fmt: skip
    decoder = WaitkTransformerDecoder(
        dictionary, embed_dim=cfg.embed_dim, layers=cfg.decoder_layers,
        attention_heads=cfg.attention_heads, ffn_embed_dim=cfg.decoder_ffn_embed_dim,
        dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, max_target_positions=1024,
        waitk_lagging=waitk, pre_decision_ratio=cfg.pre_decision_ratio,
        encoder_prefix_stable=chunk_causal,
    )  # fmt: skip
    model = WaitkS2TTransformerModel(encoder, decoder, None, None).eval().to(device)
    if device.startswith("cuda"):  # as load_model does: lazy CUDA set-up before any timing
        warm_up(model, dictionary, 80)
    return LoadedModel(model, dictionary, None, SAMPLE_RATE, 80, None, Path("."))


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def speechlike(seconds: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    voiced = 0.3 * torch.sin(2 * math.pi * 150 * t) * (torch.sin(2 * math.pi * 3 * t) > 0)
    return (voiced + 0.02 * torch.randn(t.numel(), generator=g)).clamp(-1, 1)


def write_corpus(root: Path, durations: list[float], words_per_second: float) -> Path:
    """Wavs, source.txt and target.txt (references of a realistic length) for SimulEval."""
    sources, targets = [], []
    for i, seconds in enumerate(durations):
        wav = root / f"utt{i}.wav"
        sf.write(wav, speechlike(seconds, seed=i).numpy(), SAMPLE_RATE, subtype="PCM_16")
        sources.append(str(wav))
        targets.append(" ".join(["wort"] * max(1, round(words_per_second * seconds))))
    (root / "source.txt").write_text("\n".join(sources) + "\n")
    (root / "target.txt").write_text("\n".join(targets) + "\n")
    return root


def run_simuleval_loop(agent: WaitkAgent, corpus: Path, segment_ms: int) -> dict[str, float]:
    """SimulEval's sentence-level loop on every utterance; AL, AL_CA, RTF of the agent."""
    dataloader = SpeechToTextDataloader.from_files(
        corpus / "source.txt", corpus / "target.txt", None
    )
    args = Namespace(eval_latency_unit="word")
    instances, compute_s, cpu_s, audio_s = {}, 0.0, 0.0, 0.0
    cpu_elapsed: dict[int, list[float]] = {}
    for index in range(len(dataloader)):
        instance = SpeechToTextInstance(index, dataloader, args)
        agent.reset()
        cpu_elapsed[index], sentence_cpu_ms = [], 0.0
        while not instance.source_finished_reading:
            segment = instance.send_source(segment_ms)
            start, cpu_start = time.perf_counter(), time.process_time()
            output = agent.pushpop(segment)
            compute_s += time.perf_counter() - start
            cpu_s += time.process_time() - cpu_start
            sentence_cpu_ms += (time.process_time() - cpu_start) * 1000
            n_before = len(instance.delays)
            instance.receive_prediction(output)
            cpu_elapsed[index] += [d + sentence_cpu_ms for d in instance.delays[n_before:]]
        instances[index] = instance
        audio_s += instance.source_length / 1000
    scorer = {
        aware: get_scorer_class("latency", "AL")(computation_aware=aware, use_ref_len=True)
        for aware in (False, True)
    }
    scores = {"AL": float(scorer[False](instances)), "AL_CA": float(scorer[True](instances))}
    scores["AL_CA_minus_AL"] = scores["AL_CA"] - scores["AL"]
    # The same with the agent's CPU time as its clock: what an idle core would give when the
    # machine is shared (SimulEval's own elapsed is wall-clock time).
    for index, instance in instances.items():
        instance.elapsed = cpu_elapsed[index]
    scores["AL_CA_cpu_clock_minus_AL"] = float(scorer[True](instances)) - scores["AL"]
    scores["RTF"] = compute_s / audio_s
    scores["RTF_cpu_time"] = cpu_s / audio_s  # what the wall clock would be on an idle core
    return scores


def chunk_costs(
    agent: WaitkAgent, seconds: float, segment_ms: int, buckets: int, device: str = "cpu"
) -> list[tuple[float, float, float]]:
    """Mean (encoder ms, whole policy ms) per chunk in ``buckets`` equal spans of the prefix.

    The encoder's share is fbank + CMVN when a chunk arrives plus the encoder itself, which the
    agent runs lazily when it is about to write (several chunks at once after chunks that only
    read), so it is charged to the chunk that runs it.
    """
    from simuleval.data.segments import SpeechSegment

    audio = speechlike(seconds, seed=99).tolist()
    size = math.ceil(segment_ms / 1000 * SAMPLE_RATE)
    states = agent.states
    timings: list[tuple[float, float, float]] = []  # (prefix s, encoder ms, policy ms)
    enc_ms = [0.0]

    def timed(function):  # adds the time spent in ``function`` to enc_ms[0]
        def wrapper() -> None:
            _synchronize(device)
            t0 = time.perf_counter()
            function()
            _synchronize(device)
            enc_ms[0] += (time.perf_counter() - t0) * 1000

        return wrapper

    # the encoder's share: fbank + CMVN when a chunk arrives, the (lazy) encoder when the policy
    # reads its states
    states.encode_new_source = timed(states.encode_new_source)  # type: ignore[method-assign]
    states.encoder.encode_queued = timed(states.encoder.encode_queued)  # type: ignore
    agent.reset()
    for start in range(0, len(audio), size):
        chunk = audio[start : start + size]
        finished = start + size >= len(audio)
        enc_ms[0] = 0.0
        t0 = time.perf_counter()
        agent.pushpop(SpeechSegment(content=chunk, sample_rate=SAMPLE_RATE, finished=finished))
        total_ms = (time.perf_counter() - t0) * 1000
        if not finished:
            timings.append(((start + len(chunk)) / SAMPLE_RATE, enc_ms[0], total_ms))
    del states.encode_new_source, states.encoder.encode_queued
    span = seconds / buckets
    out = []
    for b in range(buckets):
        part = [t for t in timings if b * span <= t[0] < (b + 1) * span]
        if part:
            out.append(
                ((b + 1) * span, statistics.mean(p[1] for p in part),
                 statistics.mean(p[2] for p in part))
            )  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", choices=sorted(ARCHS), default="s", help="model size")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--checkpoint", type=Path, nargs=2, default=None,
                        metavar=("CHUNK_CAUSAL", "BIDIRECTIONAL"),
                        help="two trained checkpoints instead of random weights")  # fmt: skip
    parser.add_argument("--data-dir", type=Path, default=None, help="with --checkpoint")
    parser.add_argument("--vocab", type=int, default=8000, help="random model's target vocab")
    parser.add_argument("--waitk", type=int, default=5)
    parser.add_argument("--segment-ms", type=int, default=320)
    parser.add_argument("--utterances", type=int, default=6, help="utterances of 2..7 s")
    parser.add_argument("--long-seconds", type=float, default=30.0, help="for cost per chunk")
    parser.add_argument("--max-len-a", type=float, default=0.03, help="tokens per fbank frame")
    parser.add_argument("--max-len-b", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--json", type=Path, default=None, help="write the numbers here")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: torch sees no CUDA device")
    torch.set_num_threads(args.threads)

    durations = [2.0 + 5.0 * i / max(1, args.utterances - 1) for i in range(args.utterances)]
    results: dict[str, object] = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} "
        f"torch thread(s), torch {torch.__version__}"
        + (f", {torch.cuda.get_device_name()}" if args.device.startswith("cuda") else ""),
        "load_average_at_start": os.getloadavg(),
        "settings": vars(args) | {"checkpoint": str(args.checkpoint), "json": str(args.json),
                                  "data_dir": str(args.data_dir)},
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        corpus = write_corpus(Path(tmp), durations, words_per_second=100 * args.max_len_a)
        for i, name in enumerate(("chunk-causal", "bidirectional")):
            if args.checkpoint:
                loaded = load_model(args.checkpoint[i], args.data_dir, device=args.device)
            else:
                loaded = random_model(args.arch, name == "chunk-causal", args.vocab, args.waitk,
                                      args.device)
            if loaded.model.encoder.is_chunk_causal != (name == "chunk-causal"):
                raise SystemExit(f"checkpoint {i + 1} is not {name}")
            agent_args = Namespace(
                waitk=args.waitk, max_len_a=args.max_len_a, max_len_b=args.max_len_b
            )
            agent = WaitkAgent(agent_args, loaded=loaded)
            n_params = sum(p.numel() for p in loaded.model.parameters())
            scores = run_simuleval_loop(agent, corpus, args.segment_ms)
            costs = chunk_costs(agent, args.long_seconds, args.segment_ms, buckets=6,
                                device=args.device)
            results[name] = {"params": n_params, **scores, "chunk_cost_ms": costs}
            print(f"\n{name}: {n_params / 1e6:.1f}M parameters, k={args.waitk}, "
                  f"segment {args.segment_ms} ms, {len(durations)} utterances "
                  f"({sum(durations):.0f} s)")  # fmt: skip
            print(f"  RTF {scores['RTF']:.3f} (CPU time {scores['RTF_cpu_time']:.3f})   "
                  f"AL {scores['AL']:.0f} ms   AL_CA {scores['AL_CA']:.0f} ms   "
                  f"AL_CA - AL {scores['AL_CA_minus_AL']:.0f} ms "
                  f"(CPU-time clock: {scores['AL_CA_cpu_clock_minus_AL']:.0f} ms)")
            print("  prefix (s) | encoder ms/chunk | agent ms/chunk")
            for prefix, enc, total in costs:
                print(f"  {prefix:10.1f} | {enc:16.1f} | {total:14.1f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(f"\nmachine: {results['machine']}; load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
