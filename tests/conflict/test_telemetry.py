"""Summary scalars and the JSON-lines record."""
from __future__ import annotations

import json
import math

import pytest
from conflict_testing import toy_losses, toy_model

from fairseq_mgcm.conflict import ConflictEngine, ConflictStats, ModuleConflict
from fairseq_mgcm.conflict._telemetry import JsonlWriter, summarize, to_json_line


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


def test_json_line_and_writer(tmp_path) -> None:
    path = tmp_path / "sub" / "conflicts.jsonl"
    writer = JsonlWriter(path)
    writer.write(to_json_line(_stats(), step=7))
    writer.write(to_json_line(_stats(), step=8))
    writer.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["step"] for line in lines] == [7, 8]
    first = lines[0]["records"][0]
    assert first == {"module": "enc.0.attn", "kind": "attention", "pair": "ctc", "cos": -0.5,
                     "conflict": True}
    assert lines[0]["records"][2]["cos"] is None


def test_engine_records_cover_shared_modules() -> None:
    model = toy_model(0)
    stats = ConflictEngine(model, "mgcm").backward(toy_losses(model, 0, anti=2.0)(), "st")
    kinds = {r.kind for r in stats.records}
    assert {"attention", "ffn", "layernorm", "subsampler"} <= kinds
    assert all(-1 - 1e-9 <= r.cosine <= 1 + 1e-9 for r in stats.records if not math.isnan(r.cosine))
