"""The conflict heat map (fairseq_mgcm/recipe/conflict_map.py and its entry point
scripts/plot_conflicts.py) on telemetry written by the engine's own writer."""
from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conflict_testing import toy_losses, toy_model

from fairseq_mgcm.conflict import ConflictEngine
from fairseq_mgcm.conflict.telemetry import TelemetryWriter
from fairseq_mgcm.recipe.conflict_map import conflict_grid

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def _telemetry(path: Path, steps: int = 6, interval: int = 2) -> list:
    model = toy_model(0)
    writer = TelemetryWriter(path, interval)
    every = []
    for step in range(steps):
        model.zero_grad(set_to_none=True)
        losses = toy_losses(model, step, anti=step / 3)()
        every.append(ConflictEngine(model, "mgcm").backward(losses, "st"))
        writer.add(every[-1], step)
    writer.close()
    return every


def test_grid_from_engine_telemetry(tmp_path: Path) -> None:
    every = _telemetry(tmp_path / "c.jsonl")
    modules, edges, grid = conflict_grid(tmp_path / "c.jsonl", "ctc", 3)
    assert edges == [0, 2, 4, 6] and len(grid) == len(modules)
    assert modules[0] == "subsample"  # kinds in a fixed order: subsampler first
    for row, module in enumerate(modules):  # bin b holds steps 2b and 2b + 1
        for column in range(3):
            flags = [r.conflict for stats in every[2 * column : 2 * column + 2]
                     for r in stats.records if r.module == module and r.tasks[1] == "ctc"]
            expected = sum(flags) / len(flags) if flags else math.nan
            assert grid[row][column] == pytest.approx(expected, nan_ok=True), (module, column)


def test_script_draws_the_png(tmp_path: Path) -> None:
    _telemetry(tmp_path / "c.jsonl")
    png = tmp_path / "out" / "c.png"
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "plot_conflicts.py"),
                          str(tmp_path / "c.jsonl"), str(png), "--bins", "3"],
                         cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_bad_line_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    _telemetry(bad, steps=2)
    with bad.open("a") as f:
        f.write("not json\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:2"):
        conflict_grid(bad, "ctc", 3)
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "plot_conflicts.py"),
                          str(bad), str(tmp_path / "x.png")],
                         cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "bad.jsonl:2" in run.stderr
    assert not (tmp_path / "x.png").exists()
