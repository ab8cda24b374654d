"""Done markers (fairseq_mgcm/markers.py): what counts as done, atomic writes, the CLI run.sh
uses."""
import json
import os
import subprocess
import sys
from pathlib import Path

from fairseq_mgcm import markers

ROOT = Path(__file__).resolve().parents[1]


def test_a_text_record_is_done_only_when_equal_and_outputs_exist(tmp_path):
    marker, out = tmp_path / ".train.done", tmp_path / "model.pt"
    assert markers.stale_reason(marker, "--lr 1") == "not done before"
    markers.mark_done(marker, "--lr 1")
    assert marker.read_text() == "--lr 1"
    assert markers.is_done(marker, "--lr 1")
    assert markers.stale_reason(marker, "--lr 2") == "settings changed"
    assert markers.stale_reason(marker, "--lr 1", [out]) == f"output missing: {out}"
    out.write_bytes(b"x")
    assert markers.is_done(marker, "--lr 1", [out])
    markers.clear(marker)
    assert not marker.exists() and not markers.is_done(marker, "--lr 1")
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left no temporary file


def test_a_mapping_record_names_the_changed_keys_whatever_the_file_format(tmp_path):
    marker = tmp_path / ".done"
    marker.write_text(json.dumps({"k": 3, "checkpoint": ["a.pt", 10]}, indent=1) + "\n")
    assert markers.is_done(marker, {"checkpoint": ("a.pt", 10), "k": 3})  # tuple == JSON list
    assert markers.stale_reason(marker, {"checkpoint": ["a.pt", 11], "k": 3, "seg": 1}) == (
        "changed: checkpoint, seg")
    marker.write_text("not json")
    assert markers.stale_reason(marker, {"k": 3}) == f"{marker} does not hold a JSON record"
    markers.mark_done(marker, {"b": 1, "a": [1, 2]})
    assert json.loads(marker.read_text()) == {"a": [1, 2], "b": 1}


def test_up_to_date_compares_modification_times_and_ignores_missing_inputs(tmp_path):
    out, old, new = tmp_path / "out", tmp_path / "old", tmp_path / "new"
    for path, when in ((old, 1_000), (out, 2_000), (new, 3_000)):
        path.write_text(path.name)
        os.utime(path, ns=(when, when))
    assert not markers.up_to_date(tmp_path / "absent", [old])
    assert markers.up_to_date(out, [old, tmp_path / "gone"])
    assert markers.newer_inputs(out, [old, new]) == [new]


def test_signatures_change_with_contents(tmp_path):
    text = tmp_path / "a.txt"
    text.write_text("hallo")
    first = markers.file_signature([text], [text])
    text.write_text("hallx")
    os.utime(text, ns=(text.stat().st_atime_ns, int(first[str(text)][1])))
    second = markers.file_signature([text], [text])
    assert first[str(text)] == second[str(text)] and first != second  # only the hash differs
    assert markers.texts_signature(["a", "b"]) != markers.texts_signature(["ab"])


def test_the_command_line_answers_with_its_exit_status(tmp_path):
    def cli(*args: str) -> int:
        return subprocess.run([sys.executable, "-m", "fairseq_mgcm.markers", *map(str, args)],
                              cwd=ROOT, capture_output=True, timeout=60).returncode

    marker, ckpt = tmp_path / ".average.done", tmp_path / "checkpoint1.pt"
    assert cli("is-done", marker, "5") == 1
    assert cli("mark-done", marker, "5") == 0 and marker.read_text() == "5"
    assert cli("is-done", marker, "5") == 0 and cli("is-done", marker, "3") == 1
    ckpt.write_text("x")
    os.utime(ckpt, ns=(marker.stat().st_mtime_ns + 10**9,) * 2)
    assert cli("is-done", marker, "5", "--inputs", ckpt) == 1  # a newer checkpoint
    assert cli("up-to-date", ckpt, marker) == 0 and cli("up-to-date", marker, ckpt) == 1
    assert cli("clear", marker) == 0 and not marker.exists()
