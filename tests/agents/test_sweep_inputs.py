"""The sweep's run key (``sweep_inputs``) follows what the agent reads from the data folder, so
re-prepared data (another CMVN, another dictionary) is evaluated again, never re-scored."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from fairseq_mgcm.agents.sweep import parse_args, sweep_inputs


def _inputs(checkpoint: Path, data: Path) -> dict[str, object]:
    args, extra = parse_args(["--checkpoint", str(checkpoint), "--data-dir", str(data),
                              "--k", "3", "--output-dir", str(data.parent / "simul")])
    return sweep_inputs(args, extra)


@pytest.mark.parametrize("changed", ["gcmvn.npz", "spm_tgt.txt", "config.yaml"])
def test_a_changed_data_file_the_agent_reads_changes_the_run_key(
    prepared_tiny: Path, tmp_path: Path, changed: str
) -> None:
    data = tmp_path / "data"
    shutil.copytree(prepared_tiny, data, symlinks=True)
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"the same checkpoint bytes")
    before = _inputs(checkpoint, data)
    path = data / changed
    stat = path.stat()
    content = path.read_bytes()
    path.write_bytes(content[::-1])  # same size and mtime: only the content differs
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    after = _inputs(checkpoint, data)
    assert after["data_key"] != before["data_key"]
    assert {k: v for k, v in after.items() if k != "data_key"} == {
        k: v for k, v in before.items() if k != "data_key"}
    path.write_bytes(content)
    assert _inputs(checkpoint, data) == before
