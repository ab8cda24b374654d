"""fairseq-train with a conflict method: telemetry in fairseq's logs, update-freq, resume."""

from __future__ import annotations

import json
import logging
import sys
from collections import Counter
from pathlib import Path

import pytest


def _train(monkeypatch, data: Path, save_dir: Path, max_epoch: int, extra: list[str]) -> None:
    from fairseq_cli import train

    import fairseq_mgcm

    monkeypatch.setattr(sys, "argv", [
        "fairseq-train", str(data), "--user-dir", str(Path(fairseq_mgcm.__file__).parent),
        "--task", "speech_to_text_multitask", "--num-workers", "0",
        "--arch", "waitk_s2t_transformer_tiny", "--criterion", "st_ctc_asr",
        "--waitk-lagging", "3", "--encoder-chunk-size", "4",
        "--train-subset", "train", "--valid-subset", "dev",
        "--optimizer", "adam", "--lr", "2e-3", "--lr-scheduler", "inverse_sqrt",
        "--warmup-updates", "10", "--max-tokens", "2000", "--max-epoch", str(max_epoch),
        "--save-dir", str(save_dir), "--seed", "1", "--clip-norm", "10",
        "--log-format", "json", "--log-interval", "100", "--no-progress-bar", *extra,
    ])  # fmt: skip
    train.cli_main()


def _train_stats(records: list[logging.LogRecord]) -> list[dict]:
    out = []
    for record in records:
        message = record.getMessage()
        if record.name == "train" and message.startswith("{") and "train_loss" in message:
            out.append(json.loads(message))
    return out


@pytest.mark.slow
def test_mgcm_trains_logs_conflicts_and_resumes(prepared_tiny, tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    telemetry = tmp_path / "conflict.jsonl"
    options = ["--conflict-method", "mgcm", "--conflict-granularity", "module",
               "--conflict-telemetry-jsonl", str(telemetry), "--update-freq", "2"]
    _train(monkeypatch, prepared_tiny, tmp_path / "ck", 4, options)
    first = _train_stats(caplog.records)
    assert len(first) == 4
    # Per-pair, per-module-kind conflict telemetry reaches fairseq's epoch logs.
    for key in ("train_conflict_rate_ctc_attention", "train_cosine_asr_ffn",
                "train_conflict_rate_ctc_layernorm"):
        assert key in first[-1], sorted(first[-1])
        assert -1.0 <= float(first[-1][key]) <= 1.0
    for task in ("st", "ctc", "asr"):
        assert float(first[-1][f"train_{task}_loss"]) < float(first[0][f"train_{task}_loss"])
    lines = telemetry.read_text().splitlines()
    updates = int(first[-1]["train_num_updates"])
    # One line per micro-batch backward: update-freq 2 gives two per update (one for an
    # epoch's last update when the epoch has an odd number of batches).
    per_update = Counter(json.loads(line)["step"] for line in lines)
    assert sorted(per_update) == list(range(updates))
    assert set(per_update.values()) <= {1, 2} and sum(per_update.values()) > 1.5 * updates
    assert {r["pair"] for r in json.loads(lines[-1])["records"]} == {"ctc", "asr"}

    # Resume: a larger --max-epoch continues from checkpoint_last.pt, not from scratch.
    caplog.clear()
    _train(monkeypatch, prepared_tiny, tmp_path / "ck", 6, options)
    resumed = _train_stats(caplog.records)
    assert [int(s["epoch"]) for s in resumed] == [5, 6]
    assert int(resumed[0]["train_num_updates"]) > updates
    steps = {json.loads(line)["step"] for line in telemetry.read_text().splitlines()}
    assert steps == set(range(int(resumed[-1]["train_num_updates"])))  # appended, not restarted
