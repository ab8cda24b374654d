#!/usr/bin/env python
"""The paper config for a few hundred updates per method: speed, peak memory, loss, fp16 health.

On a small generated corpus (``make_tone_corpus.py``: grammar text over word-keyed tones, no
speech synthesiser needed), each method of ``--methods`` trains through the real entry point,
``fairseq_mgcm.cli train`` (what ``scripts/run.sh`` runs), with the flags the recipe joins:
``configs/model/<model>.args``, ``configs/hardware/<hardware>.args``, ``configs/methods/<m>.args``,
then these overrides, each for a reason:

* ``--max-update N`` (200 on a GPU) and ``--warmup-updates N/10``: s.args' 10k-update warm-up
  would hold the learning rate near 4e-5 for the whole run and the loss would barely move;
* ``--update-freq 1``: 1gpu.args' 8 micro-batches per update would make the run 8x longer than
  the suite's budget, for the same per-micro-batch work;
* ``--log-interval``, ``--no-save``, ``--disable-validation`` (training speed alone), the data
  subsets and ``--seed``.

The default (GPU) is ``s`` + ``1gpu`` (``--fp16``, 40k frames per batch); ``--tiny`` is
``tiny`` + ``cpu`` with 12 updates on 60 sentences (the suite's CPU mode, fp32; on CUDA too
with ``--device cuda``). Each training
runs in its own process through ``train_in_process.py`` (peak memory: CUDA's
``max_memory_allocated`` over the run, or the CPU process's peak RSS). From its log come:

* ``updates_per_s``: updates over fairseq's own "done training in X seconds";
* ``first_loss``, ``last_loss``, ``loss_falls``: the first and last ``train_inner`` loss (each
  the mean over a log interval);
* ``overflows``: fairseq's "gradient overflow detected" notes (fp16: the update is skipped and
  the loss scale halved); ``loss_scale_first``/``_last``; ``overflow_loop``: more than a tenth of
  the updates skipped, or the scale ending below 1 (fairseq starts it at 128): the scale is
  collapsing instead of settling.

usage: python benchmarks/bench_paper_config.py WORK [--device cuda] [--tiny]
           [--methods none,pcgrad,mgcm]
           [--updates 200] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from fairseq_mgcm.atomic_files import write_text  # noqa: E402
from fairseq_mgcm.recipe.train_flags import read_flags  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
from make_tone_corpus import make_tone_corpus  # noqa: E402


@dataclass(frozen=True)
class Mode:
    """Flag files (``configs/model/<model>.args``, ``configs/hardware/<hardware>.args``), corpus
    size, budget and extra flags of a mode."""

    model: str
    hardware: str
    train: int  # sentences
    updates: int
    log_interval: int
    extra: tuple[str, ...] = ()


SETTINGS = {
    "gpu": Mode("s", "1gpu", train=1600, updates=200, log_interval=10),
    "tiny": Mode("tiny", "cpu", train=60, updates=12, log_interval=2,
                 extra=("--max-tokens", "3000")),
}
OVERFLOW = "gradient overflow detected"
_DONE = re.compile(r"done training in ([0-9.]+) seconds")
_INNER = re.compile(r"\| train_inner \| (.*)$")


def train_flags(mode: str, method: str, updates: int, save_dir: Path, cpu: bool = False
                ) -> list[str]:
    """The recipe's flag files for ``method``, then the suite's overrides (module docstring)."""
    settings = SETTINGS[mode]
    files = [REPO / "configs" / "model" / f"{settings.model}.args",
             REPO / "configs" / "hardware" / f"{settings.hardware}.args",
             REPO / "configs" / "methods" / f"{method}.args"]
    flags = [flag.token for path in files for flag in read_flags(path)]
    return flags + [
        "--max-update", str(updates), "--warmup-updates", str(max(1, updates // 10)),
        "--update-freq", "1", "--log-interval", str(settings.log_interval),
        "--no-save", "--disable-validation", "--train-subset", "train", "--valid-subset", "train",
        "--config-yaml", "config.yaml", "--seed", "1", "--no-progress-bar",
        "--save-dir", str(save_dir), *settings.extra, *(["--cpu"] if cpu else []),
    ]


def _inner_values(line: str) -> dict[str, float]:
    """``key=value`` pairs of a ``train_inner`` line (the numeric ones)."""
    values = {}
    for pair in line.split(", "):
        key, _, value = pair.rpartition(" ")[2].partition("=")
        try:
            values[key] = float(value)
        except ValueError:
            continue
    return values


def parse_log(text: str) -> dict:
    """The figures of one fairseq-train log (module docstring)."""
    inner = [_inner_values(m.group(1)) for m in map(_INNER.search, text.splitlines()) if m]
    losses = [v["loss"] for v in inner if "loss" in v]
    scales = [v["loss_scale"] for v in inner if "loss_scale" in v]
    updates = int(max((v.get("num_updates", 0) for v in inner), default=0))
    done = _DONE.search(text)
    seconds = float(done.group(1)) if done else None
    overflows = text.count(OVERFLOW)
    return {
        "updates": updates,
        "train_seconds": seconds,
        "updates_per_s": updates / seconds if seconds and updates else None,
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "loss_falls": len(losses) >= 2 and losses[-1] < losses[0],
        "overflows": overflows,
        "loss_scale_first": scales[0] if scales else None,
        "loss_scale_last": scales[-1] if scales else None,
        "overflow_loop": overflows > max(1, updates) / 10 or bool(scales and scales[-1] < 1),
    }


def train_method(data: Path, work: Path, mode: str, method: str, updates: int, cpu: bool
                 ) -> dict:
    """Train one method in its own process; its figures (and ``error`` when it failed)."""
    record, log = work / f"{method}.peak.json", work / f"{method}.log"
    command = [sys.executable, str(REPO / "benchmarks" / "train_in_process.py"), str(record),
               "--", str(data), "--user-dir", str(REPO / "fairseq_mgcm"),
               *train_flags(mode, method, updates, work / method, cpu)]
    print(f"# {method}: {shlex.join(command)}", flush=True)
    with open(log, "w") as out:
        returncode = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT).returncode
    text = log.read_text(errors="replace")
    result = {"method": method, "returncode": returncode, **parse_log(text)}
    peak = json.loads(record.read_text()) if record.is_file() else {}
    result["peak_mib"], result["peak_kind"] = peak.get("peak_mib"), peak.get("peak_kind")
    result["error"] = peak.get("error") or (None if returncode == 0 else f"exit {returncode}")
    tail = text.splitlines()[-60 if returncode else -2:]
    print("\n".join(f"  {line[:300]}" for line in tail), flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("work", type=Path, help="folder for the corpus, logs and save dirs")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--tiny", action="store_true", help="tiny model, cpu.args (fp32)")
    parser.add_argument("--methods", default="none,pcgrad,mgcm", help="comma-separated")
    parser.add_argument("--updates", type=int, default=None, help="default: 200 (12 with --tiny)")
    parser.add_argument("--jobs", type=int, default=1, help="feature extraction processes")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    mode = "tiny" if args.tiny else "gpu"
    if args.device == "cpu" and not args.tiny:
        parser.error("--device cpu needs --tiny (the paper config trains in fp16 on a GPU)")
    methods = args.methods.split(",")
    unknown = [m for m in methods if not (REPO / "configs" / "methods" / f"{m}.args").is_file()]
    if unknown:
        parser.error(f"--methods: no configs/methods/<name>.args for {unknown}")
    settings = SETTINGS[mode]
    updates = args.updates or settings.updates
    data = make_tone_corpus(args.work / "corpus", settings.train, jobs=args.jobs)
    results = [train_method(data, args.work, mode, method, updates, args.device == "cpu")
               for method in methods]
    payload = {"model_args": f"configs/model/{settings.model}.args",
               "hardware_args": f"configs/hardware/{settings.hardware}.args",
               "train_sentences": settings.train, "max_update": updates, "methods": results}
    for r in results:
        print(f"{r['method']:<7} {r['updates']} updates, {r['updates_per_s'] or 0:.2f} updates/s, "
              f"peak {r['peak_mib']} MiB, loss {r['first_loss']} -> {r['last_loss']}, "
              f"{r['overflows']} overflows, scale {r['loss_scale_first']} -> "
              f"{r['loss_scale_last']}")
    if args.json:
        write_text(args.json, json.dumps(payload, indent=1) + "\n")
    return 0 if all(r["returncode"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
