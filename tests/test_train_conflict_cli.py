"""fairseq-train with ``--optimizer conflict_aware``: telemetry in fairseq's logs and in the
aggregated JSON lines, update-freq, resume, fp16 / memory-efficient fp16 / AMP, and data
parallelism (legacy_ddp, two CPU processes on gloo; torch DDP refused; a failing worker)."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
INTERVAL = 3  # updates per telemetry line


def _argv(data: Path, save_dir: Path, max_epoch: int, extra: list[str]) -> list[str]:
    return [
        str(data), "--user-dir", str(ROOT / "fairseq_mgcm"),
        "--task", "speech_to_text_multitask", "--num-workers", "0",
        "--arch", "waitk_s2t_transformer_tiny", "--criterion", "st_ctc_asr",
        "--waitk-lagging", "3", "--encoder-chunk-size", "4",
        "--train-subset", "train", "--valid-subset", "dev",
        "--optimizer", "conflict_aware", "--base-optimizer", "adam", "--adam-betas", "(0.9,0.98)",
        "--lr", "2e-3", "--lr-scheduler", "inverse_sqrt",
        "--warmup-updates", "10", "--max-tokens", "2000", "--max-epoch", str(max_epoch),
        "--save-dir", str(save_dir), "--seed", "1", "--clip-norm", "10",
        "--conflict-method", "mgcm", "--conflict-granularity", "module",
        "--conflict-telemetry-jsonl", str(save_dir / "conflict.jsonl"),
        "--conflict-telemetry-interval", str(INTERVAL),
        "--log-format", "json", "--log-interval", "100", "--no-progress-bar", *extra,
    ]  # fmt: skip


def _train(monkeypatch, data: Path, save_dir: Path, max_epoch: int, extra: list[str]) -> None:
    from fairseq_cli import train

    import fairseq_mgcm

    fairseq_mgcm.register()

    monkeypatch.setattr(sys, "argv", ["fairseq-train", *_argv(data, save_dir, max_epoch, extra)])
    train.cli_main()


def _train_stats(records: list[logging.LogRecord]) -> list[dict]:
    out = []
    for record in records:
        message = record.getMessage()
        if record.name == "train" and message.startswith("{") and "train_loss" in message:
            out.append(json.loads(message))
    return out


def _windows(path: Path) -> list:
    from fairseq_mgcm.conflict.telemetry import read_windows

    return list(read_windows(path))


@pytest.mark.slow
def test_mgcm_trains_logs_conflicts_and_resumes(prepared_tiny, tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    save_dir = tmp_path / "ck"
    _train(monkeypatch, prepared_tiny, save_dir, 4, ["--update-freq", "2"])
    first = _train_stats(caplog.records)
    assert len(first) == 4
    # Per-pair, per-module-kind conflict telemetry reaches fairseq's epoch logs.
    for key in ("train_conflict_rate_ctc_attention", "train_cosine_asr_ffn",
                "train_conflict_rate_ctc_layernorm"):
        assert key in first[-1], sorted(first[-1])
    for task in ("st", "ctc", "asr"):
        assert float(first[-1][f"train_{task}_loss"]) < float(first[0][f"train_{task}_loss"])
    updates = int(first[-1]["train_num_updates"])
    windows = _windows(save_dir / "conflict.jsonl")
    # Windows tile the updates without overlap: whole intervals, cut early only where a
    # checkpoint was saved (the file then ends where the checkpoint does).
    assert windows[0].first_step == 0 and windows[-1].last_step == updates - 1
    for before, after in zip(windows, windows[1:]):
        assert after.first_step == before.last_step + 1
    assert all(w.last_step // INTERVAL == w.first_step // INTERVAL for w in windows)
    # update-freq 2: two backward calls per update (one for an epoch's odd last batch)
    calls = sum(w.calls for w in windows)
    assert 1.5 * updates < calls <= 2 * updates
    assert {m.pair for m in windows[-1].modules} == {"ctc", "asr"}
    assert all(m.n == windows[-1].calls for m in windows[-1].modules if m.kind == "attention")
    # each line names its run: the save dir, relative to the file's folder (here the same)
    assert {w.run for w in windows} == {"."}

    # Resume: a larger --max-epoch continues from checkpoint_last.pt, not from scratch.
    caplog.clear()
    _train(monkeypatch, prepared_tiny, save_dir, 6, ["--update-freq", "2"])
    resumed = _train_stats(caplog.records)
    assert [int(s["epoch"]) for s in resumed] == [5, 6]
    assert int(resumed[0]["train_num_updates"]) > updates
    windows = _windows(save_dir / "conflict.jsonl")  # appended, not restarted
    assert windows[0].first_step == 0
    assert windows[-1].last_step == int(resumed[-1]["train_num_updates"]) - 1
    for before, after in zip(windows, windows[1:]):
        assert after.first_step == before.last_step + 1


def _weights(save_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(save_dir / "checkpoint_last.pt", weights_only=False)["model"]


@pytest.mark.slow
def test_recompute_trains_as_retain_and_resumes_across_modes(prepared_tiny, tmp_path,
                                                             monkeypatch, caplog):
    """Same seed, dropout and multipath wait-k (a lag drawn per forward), update-freq 2:
    ``--conflict-memory recompute`` ends two epochs with ``retain``'s weights and losses, and a
    run that trains one epoch in ``retain`` and resumes in ``recompute`` ends with them too
    (the mode keeps no state of its own)."""
    caplog.set_level(logging.INFO)
    extra = ["--update-freq", "2", "--waitk-multipath", "--dropout", "0.2"]
    losses, weights = {}, {}
    for name, schedule in [("retain", [(2, "retain")]), ("recompute", [(2, "recompute")]),
                           ("switched", [(1, "retain"), (2, "recompute")])]:
        caplog.clear()
        for max_epoch, memory in schedule:
            _train(monkeypatch, prepared_tiny, tmp_path / name, max_epoch,
                   [*extra, "--conflict-memory", memory])
        losses[name] = [float(s["train_loss"]) for s in _train_stats(caplog.records)]
        weights[name] = _weights(tmp_path / name)
    assert len(losses["retain"]) == 2
    assert losses["recompute"] == losses["switched"] == losses["retain"]
    for name in ("recompute", "switched"):
        for key, value in weights["retain"].items():
            torch.testing.assert_close(weights[name][key], value, rtol=1e-6, atol=1e-7,
                                       msg=f"{name}: {key}")


@pytest.mark.slow
@pytest.mark.parametrize("precision", [
    ["--fp16", "--fp16-no-flatten-grads"],  # flat fp32 copies need CUDA
    ["--memory-efficient-fp16", "--conflict-memory", "recompute"],
], ids=["fp16", "memory-efficient-fp16-recompute"])  # --amp on CPU is fp32 (fairseq's autocast is CUDA's):
# tests/optim/test_mixed_precision.py runs AMPOptimizer under CPU bf16 autocast with a live scaler
def test_mgcm_trains_under_mixed_precision(precision, prepared_tiny, tmp_path, monkeypatch,
                                           caplog):
    """fairseq's own FP16Optimizer / MemoryEfficientFP16Optimizer / AMPOptimizer wrap the
    conflict-aware optimizer; MGCM's projections then see the scaled losses."""
    caplog.set_level(logging.INFO)
    _train(monkeypatch, prepared_tiny, tmp_path / "ck", 1, ["--cpu", *precision])
    [stats] = _train_stats(caplog.records)
    assert float(stats["train_conflict_rate_ctc"]) > 0  # the engine ran, and saw conflicts
    assert "train_loss_scale" in stats  # fairseq's fp16 scaler ran
    windows = _windows(tmp_path / "ck" / "conflict.jsonl")
    assert windows[-1].last_step == int(stats["train_num_updates"]) - 1


@pytest.mark.slow
def test_mgcm_trains_data_parallel(prepared_tiny, tmp_path):
    """Two CPU workers (gloo), legacy_ddp in fp16 (the recipe's 8-GPU overlay test runs it in
    fp32) with ``--conflict-memory recompute``: the workers stay in sync (one all-reduce per
    update after the engine's passes and forwards), and only the first writes telemetry."""
    workers = []
    for rank in range(2):
        save_dir = tmp_path / f"rank{rank}"
        argv = _argv(prepared_tiny, save_dir, 1, [
            "--cpu", "--distributed-world-size", "2", "--distributed-rank", str(rank),
            "--distributed-init-method", f"file://{tmp_path / 'init'}", "--distributed-no-spawn",
            "--distributed-backend", "gloo", "--device-id", "0", "--ddp-backend", "legacy_ddp",
            "--update-freq", "2", "--fp16", "--fp16-no-flatten-grads",
            "--conflict-memory", "recompute",
        ])  # fmt: skip
        command = [sys.executable, str(ROOT / "tests" / "train_launcher.py"),
                   str(tmp_path / "{rank}.pt"), *argv]
        workers.append(subprocess.Popen(command, cwd=ROOT, env=_worker_env(), text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    outputs = [worker.communicate(timeout=600)[0] for worker in workers]
    for worker, output in zip(workers, outputs):
        assert worker.returncode == 0, output[-3000:]
    params = [torch.load(tmp_path / f"{rank}.pt") for rank in range(2)]
    for name, value in params[0].items():
        torch.testing.assert_close(params[1][name], value, rtol=0, atol=0, msg=name)
    assert _windows(tmp_path / "rank0" / "conflict.jsonl")
    assert not (tmp_path / "rank1" / "conflict.jsonl").exists()
    assert '"train_conflict_rate_ctc"' in outputs[0]
    assert '"train_loss_scale"' in outputs[0]  # fp16's scaler ran


def _worker_env(**extra: str) -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", **extra,
                PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")


def _cpu_launch(command: list[str], save_dir: Path, **env: str) -> subprocess.CompletedProcess:
    """``command`` as 2 ranks through the recipe's CPU launcher (scripts/run.sh --nprocs 2)."""
    launch = [sys.executable, "-m", "fairseq_mgcm.recipe.cpu_launch", "--nprocs", "2", "--",
              *command]
    return subprocess.run(launch, cwd=ROOT, env=_worker_env(**env), capture_output=True,
                          text=True, timeout=600)


def test_fairseq_default_backend_is_refused_on_two_workers(prepared_tiny, tmp_path):
    """fairseq's default --ddp-backend (pytorch_ddp) with a conflict method on 2 workers: each
    worker stops when fairseq builds the optimizer, before the first update, naming the flag
    and the backend to use (the one-line form is tests/optim/test_optimizer.py's)."""
    save_dir = tmp_path / "ck"
    run = _cpu_launch([sys.executable, str(ROOT / "tests" / "train_launcher.py"),
                       str(tmp_path / "p.pt"), *_argv(prepared_tiny, save_dir, 1, ["--cpu"])],
                      save_dir)
    assert run.returncode == 1, run.stderr[-3000:]
    line = ("--ddp-backend pytorch_ddp (fairseq's default) cannot be used with "
            "--conflict-method mgcm on 2 workers")
    rank1 = (save_dir / "train.rank1.log").read_text()
    for output in (run.stderr, rank1):
        assert line in output, output[-3000:]
        assert "num_updates" not in output
    assert not list(save_dir.glob("checkpoint*.pt"))


@pytest.mark.slow
def test_a_worker_out_of_memory_recovers_and_a_failing_worker_ends_the_run(prepared_tiny,
                                                                            tmp_path):
    """Two workers on legacy_ddp, update-freq 2, through the recipe's CPU launcher. Worker 1
    runs out of memory between the engine's passes in update 2: fairseq drops its micro-batch
    and both workers still meet in the all-reduce (update 3 is logged). Worker 1 then fails
    for good in update 4: the run ends with its error instead of leaving worker 0 waiting in
    the all-reduce (a hang would run into the timeout)."""
    save_dir = tmp_path / "ck"
    command = [sys.executable, str(ROOT / "tests" / "train_launcher.py"), str(tmp_path / "p.pt"),
               *_argv(prepared_tiny, save_dir, 50, [
                   "--cpu", "--ddp-backend", "legacy_ddp", "--update-freq", "2",
                   "--log-interval", "1", "--max-update", "8"])]
    run = _cpu_launch(command, save_dir, MGCM_TEST_FAULTS="1:3:oom,1:7:error")
    assert run.returncode == 1, run.stderr[-3000:]
    rank1 = (save_dir / "train.rank1.log").read_text()
    assert "attempting to recover from OOM in forward/backward pass" in rank1
    assert "injected worker failure" in rank1
    updates = [int(u) for u in re.findall(r'"num_updates": "(\d+)"', run.stdout + run.stderr)]
    assert 3 in updates and max(updates) < 8, updates[-5:]
    assert not (tmp_path / "p.pt").exists()  # worker 0 never finished
