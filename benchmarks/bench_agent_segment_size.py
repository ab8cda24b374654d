#!/usr/bin/env python
"""Agent wall time on one long wav at SimulEval's default segment size and at the read step.

SimulEval 1.1.4's ``--source-segment-size`` defaults to 1 ms, so a user who leaves it out calls
the agent 1000 times per second of audio. This runs SimulEval's own instance class and loop
(``SpeechToTextInstance``, one ``pushpop`` per chunk) over one wav of ``--seconds`` seconds for
each segment size, and reports the wall time, the number of ``policy()`` calls and the number of
decoder predictions. A trained model stops its translation at the end of what it has heard (an
end-of-sentence before the source ended, which the agent takes back to read on); a random model
rarely does, so ``--eos-after N`` makes the decoder predict end-of-sentence once N tokens are
written, until the source ends, which is the case the issue measured.

Usage:
    OMP_NUM_THREADS=1 python benchmarks/bench_agent_segment_size.py [--arch tiny|s] \\
        [--seconds 60] [--segments 1 10 0] [--eos-after 5] [--threads 1]
    (segment 0 = the model's read step)
"""
from __future__ import annotations

import argparse
import platform
import tempfile
import time
from argparse import Namespace
from pathlib import Path

import torch
from bench_agent_latency import random_model, write_corpus
from simuleval.data.dataloader.s2t_dataloader import SpeechToTextDataloader
from simuleval.evaluator.instance import SpeechToTextInstance
from torch import nn

from fairseq_mgcm.agents.read_step import read_step_ms
from fairseq_mgcm.agents.waitk_agent import WaitkAgent


class EosAfter(nn.Module):
    """Wraps a decoder: end-of-sentence wins once ``n`` target tokens have been written."""

    def __init__(self, decoder: nn.Module, n: int) -> None:
        super().__init__()
        self.inner, self.n = decoder, n
        self.calls = 0

    def forward(self, prev, encoder_out, **kwargs):
        self.calls += 1
        logits, extra = self.inner(prev, encoder_out, **kwargs)
        if prev.shape[1] > self.n:  # prev starts with EOS
            logits = logits.clone()
            logits[..., self.inner.dictionary.eos()] = 1e4
        return logits, extra


def run(agent: WaitkAgent, corpus: Path, segment_ms: int) -> dict[str, float]:
    dataloader = SpeechToTextDataloader.from_files(
        corpus / "source.txt", corpus / "target.txt", None
    )
    instance = SpeechToTextInstance(0, dataloader, Namespace(eval_latency_unit="word"))
    agent.reset()
    decoder = agent.states.decoder.decoder
    decoder.calls = 0
    calls, start = 0, time.perf_counter()
    while not instance.source_finished_reading:
        instance.receive_prediction(agent.pushpop(instance.send_source(segment_ms)))
        calls += 1
    return {
        "wall_s": time.perf_counter() - start, "policy_calls": calls,
        "predictions": decoder.calls, "words": len(instance.prediction_list),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", choices=["tiny", "s"], default="tiny")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--segments", type=int, nargs="+", default=[1, 10, 0],
                        help="segment sizes in ms (0: the model's read step)")  # fmt: skip
    parser.add_argument("--eos-after", type=int, default=5)
    parser.add_argument("--waitk", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, {args.threads} torch "
          f"thread(s), torch {torch.__version__}; {args.seconds:.0f} s wav, arch {args.arch}, "
          f"k={args.waitk}, end-of-sentence after {args.eos_after} tokens")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        corpus = write_corpus(Path(tmp), [args.seconds], words_per_second=3.0)
        for name in ("chunk-causal", "bidirectional"):
            loaded = random_model(args.arch, name == "chunk-causal", 8000, args.waitk)
            agent = WaitkAgent(Namespace(waitk=args.waitk, max_len_a=0.2, max_len_b=10),
                               loaded=loaded)  # fmt: skip
            agent.states.decoder.decoder = EosAfter(loaded.model.decoder, args.eos_after)
            step = read_step_ms(loaded.model)
            for segment in args.segments:
                ms = segment or step
                r = run(agent, corpus, ms)
                print(f"{name:13s} segment {ms:4d} ms: {r['wall_s']:7.2f} s wall, "
                      f"{r['policy_calls']:6d} calls, {r['predictions']:6d} predictions, "
                      f"{r['words']} words")  # fmt: skip


if __name__ == "__main__":
    main()
