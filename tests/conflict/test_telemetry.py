"""Summary scalars for fairseq's logs, and the aggregated JSON-lines telemetry: its schema,
its size bound at paper scale, resume, and the readers."""
from __future__ import annotations

import json
import math
import random

import pytest
from conflict_testing import toy_losses, toy_model, waitk_model

from fairseq_mgcm.conflict import ConflictEngine, ConflictStats, ModuleConflict, partition
from fairseq_mgcm.conflict.telemetry import (
    DEFAULT_INTERVAL,
    TelemetryFileError,
    TelemetryWriter,
    read_windows,
    run_label,
    summarize,
)
from fairseq_mgcm.recipe.results import _conflict_rate


def _stats() -> ConflictStats:
    records = (
        ModuleConflict("enc.0.attn", "attention", ("st", "ctc"), -0.5, True),
        ModuleConflict("enc.1.attn", "attention", ("st", "ctc"), 0.25, False),
        ModuleConflict("enc.0.ffn", "ffn", ("st", "ctc"), math.nan, False),
        ModuleConflict("enc.0.attn", "attention", ("st", "asr"), 0.5, False),
    )
    return ConflictStats("mgcm", "st", records)


def test_summary_per_pair_and_kind() -> None:
    summary = summarize(_stats())
    assert summary["conflict_rate_ctc_attention"] == (0.5, 2)
    assert summary["cosine_ctc_attention"] == (pytest.approx(-0.125), 2)
    assert summary["conflict_rate_ctc_ffn"] == (0.0, 1)
    assert "cosine_ctc_ffn" not in summary  # no finite cosine to average
    assert summary["conflict_rate_ctc"] == (pytest.approx(1 / 3), 3)
    assert summary["conflict_rate_asr_attention"] == (0.0, 1)


def test_pairs_without_the_primary_are_named_by_both_tasks() -> None:
    stats = ConflictStats("pcgrad", "st", (
        ModuleConflict("<model>", "model", ("st", "ctc"), -0.1, True),
        ModuleConflict("<model>", "model", ("ctc", "asr"), 0.3, False),
    ))
    assert set(summarize(stats)) >= {"conflict_rate_ctc_model", "conflict_rate_ctc_asr_model"}


def test_windows_aggregate_calls(tmp_path) -> None:
    path = tmp_path / "sub" / "conflicts.jsonl"
    writer = TelemetryWriter(path, interval=2)
    for step in (0, 0, 1, 2, 3, 4):  # two calls for update 0 (update-freq 2)
        writer.add(_stats(), step)
    writer.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(w["first_step"], w["last_step"], w["calls"]) for w in lines] == [
        (0, 1, 3), (2, 3, 2), (4, 4, 1)]
    assert lines[0]["columns"] == ["module", "kind", "pair", "n", "conflicts", "cos_mean",
                                   "cos_n"]
    assert lines[0]["rows"][0] == ["enc.0.attn", "attention", "ctc", 3, 3, -0.5, 3]
    assert lines[0]["rows"][2] == ["enc.0.ffn", "ffn", "ctc", 3, 0, None, 0]
    windows = list(read_windows(path))
    assert windows[0].modules[1].cos_mean == pytest.approx(0.25)
    assert _conflict_rate(path) == {"asr": 0.0, "ctc": pytest.approx(1 / 3)}


def test_resumed_run_replaces_the_updates_it_redoes(tmp_path) -> None:
    """A crash after the last checkpoint (update 4) leaves lines up to update 7; the resumed
    run starts again at 4 and drops them before writing its own."""
    path = tmp_path / "c.jsonl"
    first = TelemetryWriter(path, interval=2)
    for step in range(8):
        first.add(_stats(), step)
    first.close()
    resumed = TelemetryWriter(path, interval=2)
    for step in range(4, 6):
        resumed.add(_stats(), step)
    resumed.close()
    assert [(w.first_step, w.last_step) for w in read_windows(path)] == [(0, 1), (2, 3), (4, 5)]


def test_paper_scale_stays_under_50_mb(tmp_path) -> None:
    """100k updates x update-freq 8 of ``waitk_s2t_transformer_s`` with three auxiliary pairs
    (ctc, asr and an MT auxiliary) on every module group: three full windows are written from
    generated records with full-precision cosines, and the file size is extrapolated to the
    1,000 windows of 100k updates (plus one early cut per checkpoint, ~100 epochs)."""
    groups = partition(waitk_model("s"), "module")
    assert len(groups) == 127  # the real s-size partition, not a toy
    rng = random.Random(0)
    pairs = ("ctc", "asr", "mt")
    path = tmp_path / "c.jsonl"
    writer = TelemetryWriter(path)  # the default interval
    windows, update_freq = 3, 8
    for step in range(windows * DEFAULT_INTERVAL):
        for _ in range(update_freq):
            records = []
            for group in groups:
                for pair in pairs:
                    cosine = rng.uniform(-1, 1) if rng.random() > 0.01 else math.nan
                    records.append(ModuleConflict(group.name, group.kind, ("st", pair), cosine,
                                                  cosine < 0))
            writer.add(ConflictStats("mgcm", "st", tuple(records)), step)
    writer.close()
    lines = path.read_bytes().splitlines(keepends=True)
    assert len(lines) == windows
    largest = max(len(line) for line in lines)
    total = largest * (100_000 // DEFAULT_INTERVAL + 100)
    assert total < 50e6, f"{total / 1e6:.1f} MB"


def test_engine_records_cover_shared_modules() -> None:
    model = toy_model(0)
    stats = ConflictEngine(model, "mgcm").backward(toy_losses(model, 0, anti=2.0)(), "st")
    kinds = {r.kind for r in stats.records}
    assert {"attention", "ffn", "layernorm", "subsampler"} <= kinds
    assert all(-1 - 1e-9 <= r.cosine <= 1 + 1e-9 for r in stats.records if not math.isnan(r.cosine))


def test_telemetry_of_another_run_is_refused_and_kept(tmp_path) -> None:
    """A second training given the first's telemetry file used to drop every window of it (its
    first update is 0, so "the updates it redoes" were all of them). Each line records its run
    (the save dir, relative to the file's folder); another run is refused when it starts, and
    the same run resumed appends as before."""
    path = tmp_path / "conflict.jsonl"
    first = TelemetryWriter(path, interval=2, run=run_label(tmp_path / "a", path))
    for step in range(4):
        first.add(_stats(), step)
    first.close()
    written = path.read_bytes()
    assert {w.run for w in read_windows(path)} == {"a"}
    with pytest.raises(TelemetryFileError) as refused:
        TelemetryWriter(path, interval=2, run=run_label(tmp_path / "b", path))
    assert str(refused.value) == (
        f"--conflict-telemetry-jsonl {path}: holds the telemetry of another run (save dir "
        f"{tmp_path / 'a'}); give this run (save dir {tmp_path / 'b'}) a file of its own")
    assert path.read_bytes() == written
    resumed = TelemetryWriter(path, interval=2, run="a")
    for step in range(4, 6):
        resumed.add(_stats(), step)
    resumed.close()
    assert [(w.first_step, w.last_step) for w in read_windows(path)] == [(0, 1), (2, 3), (4, 5)]
    assert path.read_bytes().startswith(written)


@pytest.mark.parametrize("kind", ["folder", "not_telemetry", "parent_is_a_file"])
def test_a_path_that_cannot_be_telemetry_fails_at_start(tmp_path, kind) -> None:
    """At the writer's construction (fairseq-train builds the optimizer before its first
    update), not at the first checkpoint after the training so far."""
    path = tmp_path / "conflict.jsonl"
    expected = {"folder": f"{path}: is a folder; give a file path",
                "not_telemetry": f"{path}:2: not a conflict telemetry line; the file is kept, "
                                 "give this run a new path",
                "parent_is_a_file": f"{path / 'c.jsonl'}: {path} is not a folder"}[kind]
    if kind == "folder":
        path.mkdir()
    else:
        path.write_text(json.dumps({"schema": 2, "last_step": 3}) + "\nnotes: my results\n")
    target = path / "c.jsonl" if kind == "parent_is_a_file" else path
    before = path.read_bytes() if path.is_file() else None
    with pytest.raises(TelemetryFileError) as refused:
        TelemetryWriter(target, run="checkpoints")
    assert str(refused.value) == f"--conflict-telemetry-jsonl {expected}"
    assert (path.read_bytes() if path.is_file() else None) == before


def test_a_resumed_run_from_before_runs_were_recorded_appends(tmp_path) -> None:
    """Lines without a run (written before this check) are taken as the resuming run's."""
    path = tmp_path / "c.jsonl"
    old = TelemetryWriter(path, interval=2)
    for step in range(2):
        old.add(_stats(), step)
    old.close()
    resumed = TelemetryWriter(path, interval=2, run="checkpoints")
    resumed.add(_stats(), 2)
    resumed.close()
    assert [w.run for w in read_windows(path)] == [None, "checkpoints"]
