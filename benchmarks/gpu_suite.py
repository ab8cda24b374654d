#!/usr/bin/env python
"""The Python half of ``benchmarks/gpu_suite.sh``: its run matrix, and ``OUT/suite.json``.

The shell script holds the stages; what each stage runs in each mode, the environment record
and the merging of each stage's figures into one report live here, where they can be tested.

    python benchmarks/gpu_suite.py options [--device cuda|cpu] [--tiny]   # shell assignments
    python benchmarks/gpu_suite.py start REPORT --device D [--tiny]     # environment, checks
    python benchmarks/gpu_suite.py add REPORT STAGE RC SECONDS STAGE_JSON  # one stage's result
    python benchmarks/gpu_suite.py finish REPORT                         # exit 1 if any failed

``suite.json``: ``environment`` (device name, torch, CUDA, cuDNN, Python, fairseq versions),
``mode``, and per stage ``status`` (ok, failed, timeout), ``returncode``, ``seconds`` and
``figures`` (the stage's own JSON; for ``engine`` also ``mgcm_vs_pcgrad``: MGCM's extra peak
memory and held bytes as a percentage of PCGrad's, the paper's "95% less" figure). The report
is rewritten after every stage, so a suite cut short still leaves what it measured.
"""
from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fairseq_mgcm.atomic_files import write_text  # noqa: E402

# The stages in the order they run (the paper's figures first, in case time runs out), each
# with its time limit in seconds and its script's flags, per mode. GPU limits add up to
# 11 min 45 s; the CPU mode's only guard against a hang (each stage takes 3-30 s on one idle
# core), wide enough that a busy CI machine does not fail it.
STAGES = ("engine", "syncs", "train", "throughput", "agent")
MATRIX = {
    "gpu": {
        "engine": (255, ["--sizes", "s,l", "--precisions", "fp32,amp,fp16", "--steps", "2",
                         "--warmup", "1", "--one-process"]),
        "syncs": (60, ["--size", "s", "--backwards", "3"]),
        "train": (240, ["--jobs", "8"]),
        "throughput": (90, ["--size", "s", "--batch-size", "16", "--steps", "10", "--warmup",
                             "2", "--repeats", "1"]),
        "agent": (60, ["--arch", "s", "--utterances", "6", "--long-seconds", "30"]),
    },
    "tiny": {
        "engine": (300, ["--sizes", "tiny", "--precisions", "fp32", "--steps", "1", "--warmup",
                         "1", "--one-process"]),
        "syncs": (300, ["--size", "tiny", "--backwards", "1"]),
        "train": (300, ["--tiny"]),
        "throughput": (300, ["--size", "tiny", "--variants", "fairseq,ours_st", "--batch-size",
                             "4", "--batches", "1", "--min-frames", "100", "--max-frames", "200",
                             "--steps", "2", "--warmup", "1", "--repeats", "1", "--threads", "1"]),
        "agent": (300, ["--arch", "tiny", "--vocab", "256", "--utterances", "2",
                       "--long-seconds", "3"]),
    },
}


def _mode(tiny: bool) -> str:
    return "tiny" if tiny else "gpu"


def shell_options(device: str, tiny: bool) -> str:
    """``device``, ``mode``, ``stages`` and per stage ``<stage>_limit`` and ``<stage>_args``
    (an array) as bash assignments."""
    mode = _mode(tiny)
    lines = [f"device={shlex.quote(device)}", f"mode={mode}", f"stages=({' '.join(STAGES)})"]
    for stage in STAGES:
        limit, args = MATRIX[mode][stage]
        lines += [f"{stage}_limit={limit}", f"{stage}_args=({shlex.join(args)})"]
    return "\n".join(lines)


def environment(device: str) -> dict:
    """What the figures were measured on (raises SystemExit when ``device`` is not usable)."""
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {device}: torch sees no CUDA device")
    try:
        from importlib.metadata import version

        fairseq = version("fairseq-fixed")
    except Exception:  # not installed as a distribution (a source tree on PYTHONPATH)
        fairseq = None
    cuda = device.startswith("cuda")
    return {
        "device": device,
        "device_name": torch.cuda.get_device_name() if cuda else platform.processor() or "cpu",
        "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "python": platform.python_version(), "fairseq": fairseq,
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def mgcm_vs_pcgrad(rows: list[dict]) -> list[dict]:
    """Per MGCM row of ``bench_conflict.py`` (each memory mode): its extra memory and held bytes
    as % of PCGrad's and its step time over PCGrad's, in the same size, precision and task set,
    against PCGrad as published (``retain``)."""
    out = []
    for r in rows:
        if r["method"] != "mgcm":
            continue
        pcgrad = next(p for p in rows if p["method"] == "pcgrad" and p["memory"] == "retain"
                      and all(p[k] == r[k] for k in ("size", "precision", "tasks")))
        out.append({k: r[k] for k in ("size", "precision", "tasks", "granularity", "aux_mode",
                                      "memory", "params_m", "extra_pct_of_pcgrad",
                                      "held_pct_of_pcgrad")}
                   | {"step_ratio_to_pcgrad": r["step_s"] / pcgrad["step_s"]})
    return out


def _read(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def add_stage(report: Path, stage: str, returncode: int, seconds: float, stage_json: Path
              ) -> dict:
    """Merge one stage's result into ``report``; the stage's entry."""
    data = _read(report)
    figures = json.loads(stage_json.read_text()) if stage_json.is_file() else None
    status = "ok" if returncode == 0 else "timeout" if returncode in (124, 137) else "failed"
    entry: dict = {"status": status, "returncode": returncode, "seconds": seconds,
                   "figures": figures}
    if stage == "engine" and isinstance(figures, list) and figures:
        entry["mgcm_vs_pcgrad"] = mgcm_vs_pcgrad(figures)
    data.setdefault("stages", {})[stage] = entry
    write_text(report, json.dumps(data, indent=1) + "\n")
    return entry


def finish(report: Path) -> int:
    """Print each stage's status; 1 if any stage did not succeed (or none ran)."""
    stages = _read(report).get("stages", {})
    for name, entry in stages.items():
        print(f"{name:<11} {entry['status']:<8} {entry['seconds']:>5} s")
    bad = [name for name, entry in stages.items() if entry["status"] != "ok"]
    if bad or not stages:
        print(f"failed stages: {', '.join(bad) or 'none ran'}")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    options = commands.add_parser("options")
    start = commands.add_parser("start")
    start.add_argument("report", type=Path)
    for sub in (options, start):
        sub.add_argument("--device", default="cuda", choices=("cuda", "cpu"),
                         help="cuda (default) or cpu")
        sub.add_argument("--tiny", action="store_true", help="tiny sizes (the CPU mode of CI)")
    add = commands.add_parser("add")
    add.add_argument("report", type=Path)
    add.add_argument("stage", choices=STAGES)
    add.add_argument("returncode", type=int)
    add.add_argument("seconds", type=float)
    add.add_argument("stage_json", type=Path)
    commands.add_parser("finish").add_argument("report", type=Path)
    args = parser.parse_args(argv)
    if args.command in ("options", "start") and args.device == "cpu" and not args.tiny:
        parser.error("--device cpu needs --tiny (the paper config trains in fp16 on a GPU)")
    if args.command == "options":
        print(shell_options(args.device, args.tiny))
    elif args.command == "start":
        data = {"mode": _mode(args.tiny), "environment": environment(args.device), "stages": {}}
        write_text(args.report, json.dumps(data, indent=1) + "\n")
        print(json.dumps(data["environment"]))
    elif args.command == "add":
        entry = add_stage(args.report, args.stage, args.returncode, args.seconds,
                          args.stage_json)
        print(f"stage {args.stage}: {entry['status']} ({args.seconds:.0f} s)")
    else:
        return finish(args.report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
