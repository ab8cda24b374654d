"""The plain PyTorch example of docs/conflict.md (DDP on gloo, bf16 autocast, an active
GradScaler), extracted from the doc and run as written."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def doc_example() -> str:
    text = (ROOT / "docs" / "conflict.md").read_text()
    match = re.search(r"<!-- example: plain-pytorch -->\n```python\n(.*?)```", text, re.DOTALL)
    assert match, "docs/conflict.md lost its plain-pytorch example"
    return match.group(1)


def test_the_doc_example_runs(tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(doc_example())
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    steps = [line for line in run.stdout.splitlines() if line.startswith("step ")]
    assert len(steps) == 4
    assert all(" scale 1024 " in line for line in steps)  # the scaler scaled, and no overflow
    assert any("'encoder.self_attn'" in line for line in steps)  # MGCM found conflicts
