"""scripts/plot_conflicts.py on a small telemetry file written by the engine."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from conflict_testing import toy_losses, toy_model

from fairseq_mgcm.conflict import ConflictEngine
from fairseq_mgcm.conflict._telemetry import JsonlWriter, to_json_line

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "plot_conflicts.py"


def _script():
    spec = importlib.util.spec_from_file_location("plot_conflicts", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_heat_map_from_engine_telemetry(tmp_path: Path) -> None:
    model = toy_model(0)
    writer = JsonlWriter(tmp_path / "c.jsonl")
    for step in range(6):
        model.zero_grad(set_to_none=True)
        losses = toy_losses(model, step, anti=step / 3)()
        stats = ConflictEngine(model, "mgcm").backward(losses, "st")
        writer.write(to_json_line(stats, step))
    writer.close()
    plot = _script()
    modules, edges, grid = plot.conflict_grid(plot.read_records(tmp_path / "c.jsonl"), "ctc", 3)
    assert len(edges) == 4 and len(grid) == len(modules)
    assert modules[0] == "subsample"  # kinds in a fixed order: subsampler first
    png = tmp_path / "out" / "c.png"
    assert plot.main([str(tmp_path / "c.jsonl"), str(png), "--bins", "3"]) == 0
    assert (tmp_path / "out" / "c.png").stat().st_size > 1000


def test_bad_line_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"step": 1, "records": []}\nnot json\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2"):
        _script().read_records(bad)
    assert _script().main([str(bad), str(tmp_path / "x.png")]) == 1
