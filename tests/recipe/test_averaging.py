"""Checkpoint averaging: the recipe's stage 4."""
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fairseq_mgcm.recipe.averaging import average_checkpoints, last_checkpoints


def _save(path, value, epoch):
    torch.save({"model": {"w": torch.full((2,), float(value)), "n": torch.tensor([value])},
                "extra_state": {"epoch": epoch}}, path)


def test_last_checkpoints_picks_the_newest_by_epoch_number(tmp_path):
    for epoch in (1, 2, 10, 3):
        _save(tmp_path / f"checkpoint{epoch}.pt", epoch, epoch)
    _save(tmp_path / "checkpoint_last.pt", 99, 99)
    assert [p.name for p in last_checkpoints(tmp_path, 2)] == ["checkpoint3.pt", "checkpoint10.pt"]


def test_average_is_the_mean_in_each_tensors_dtype_and_keeps_newest_metadata(tmp_path):
    paths = []
    for epoch, value in enumerate((1, 2, 6), start=1):
        paths.append(tmp_path / f"checkpoint{epoch}.pt")
        _save(paths[-1], value, epoch)
    out = average_checkpoints(paths, tmp_path / "avg.pt")
    state = torch.load(out, map_location="cpu")
    assert torch.equal(state["model"]["w"], torch.full((2,), 3.0))
    assert state["model"]["n"].dtype == torch.int64 and state["model"]["n"].item() == 3
    assert state["extra_state"]["epoch"] == 3
    assert not (tmp_path / "avg.pt.tmp").exists()


def test_mismatched_checkpoints_are_refused_naming_the_file(tmp_path):
    _save(tmp_path / "checkpoint1.pt", 1, 1)
    torch.save({"model": {"other": torch.zeros(1)}}, tmp_path / "checkpoint2.pt")
    with pytest.raises(ValueError, match="checkpoint2.pt"):
        average_checkpoints([tmp_path / "checkpoint1.pt", tmp_path / "checkpoint2.pt"],
                            tmp_path / "avg.pt")
    assert not (tmp_path / "avg.pt").exists()


def test_no_numbered_checkpoints_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        last_checkpoints(tmp_path, 3)


SCRIPT = Path(__file__).parents[2] / "scripts" / "average_checkpoints.py"


def _average_cli(*flags, monkeypatch=None, capsys=None):
    """scripts/average_checkpoints.py with ``flags``: in this process (its ``main``, stderr from
    ``capsys``) when given the fixtures, else as the subprocess a user starts."""
    if monkeypatch is None:
        return subprocess.run([sys.executable, str(SCRIPT), *map(str, flags)],
                              check=False, capture_output=True, text=True)
    script = runpy.run_path(str(SCRIPT))  # defines main(); __name__ is not __main__
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *map(str, flags)])
    try:
        code = script["main"]()
    except SystemExit as exit_:  # argparse's refusal of a flag value
        code = exit_.code
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(SCRIPT, code, out, err)


@pytest.mark.parametrize("num", ["0", "-1"])
def test_cli_refuses_a_count_below_one(tmp_path, num, monkeypatch, capsys):
    _save(tmp_path / "checkpoint1.pt", 1, 1)
    result = _average_cli("--save-dir", tmp_path, "--num", num, "--output", tmp_path / "avg.pt",
                          monkeypatch=monkeypatch, capsys=capsys)
    assert result.returncode == 2 and "--num" in result.stderr and "must be >= 1" in result.stderr
    assert not (tmp_path / "avg.pt").exists()


def test_last_checkpoints_refuses_a_count_below_one(tmp_path):
    _save(tmp_path / "checkpoint1.pt", 1, 1)
    with pytest.raises(ValueError, match=">= 1"):
        last_checkpoints(tmp_path, 0)


@pytest.mark.parametrize(
    "content", [b"", b"\x00garbage" * 100, None], ids=["empty", "random", "not-fairseq"]
)
def test_cli_names_a_bad_checkpoint_in_one_line(tmp_path, content, monkeypatch, capsys):
    """In a subprocess for one case: nothing else (no fairseq import, no notice) is printed."""
    _save(tmp_path / "checkpoint1.pt", 1, 1)
    bad = tmp_path / "checkpoint2.pt"
    if content is None:
        torch.save({"a": 1}, bad)
    else:
        bad.write_bytes(content)
    in_process = {} if content == b"" else {"monkeypatch": monkeypatch, "capsys": capsys}
    result = _average_cli("--save-dir", tmp_path, "--num", "2", "--output", tmp_path / "avg.pt",
                          **in_process)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()  # the error alone (no fairseq import, no notice)
    assert len(lines) == 1 and str(bad) in lines[0] and "weights_only" not in lines[0]
    assert not (tmp_path / "avg.pt").exists()


OVERWRITES = [
    ("checkpoint3.pt", "one of the checkpoints being averaged"),
    ("checkpoint_last.pt", "named like a checkpoint fairseq-train writes"),
    ("checkpoint_best.pt", "named like a checkpoint fairseq-train writes"),
    ("checkpoint9.pt", "named like a checkpoint fairseq-train writes"),
    ("checkpoint_3_300.pt", "named like a checkpoint fairseq-train writes"),
    ("checkpoint.best_loss_2.31.pt", "named like a checkpoint fairseq-train writes"),
]


@pytest.mark.parametrize("output, reason", [pytest.param(*case, id=case[0]) for case in OVERWRITES])
def test_averaging_never_overwrites_an_input_or_a_trainings_checkpoint(tmp_path, output, reason):
    """--output among the inputs (it was overwritten with the average), or named like what a
    training writes (a resume or a later averaging would take the average for an epoch)."""
    for epoch in (1, 2, 3):
        _save(tmp_path / f"checkpoint{epoch}.pt", epoch, epoch)
    _save(tmp_path / "checkpoint_last.pt", 3, 3)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(ValueError) as refused:
        average_checkpoints(last_checkpoints(tmp_path, 2), tmp_path / output)
    assert str(refused.value) == (f"--output {tmp_path / output}: {reason}; choose another name "
                                  "(e.g. checkpoint_avg.pt)")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_cli_refuses_an_output_among_its_inputs_in_one_line(tmp_path, monkeypatch, capsys):
    for epoch in (1, 2):
        _save(tmp_path / f"checkpoint{epoch}.pt", epoch, epoch)
    before = (tmp_path / "checkpoint2.pt").read_bytes()
    result = _average_cli("--save-dir", tmp_path, "--num", "2", "--output",
                          tmp_path / "checkpoint2.pt", monkeypatch=monkeypatch, capsys=capsys)
    assert result.returncode == 2
    assert result.stderr == (f"average_checkpoints: --output {tmp_path / 'checkpoint2.pt'}: one "
                             "of the checkpoints being averaged; choose another name (e.g. "
                             "checkpoint_avg.pt)\n")
    assert (tmp_path / "checkpoint2.pt").read_bytes() == before


def test_an_input_reached_through_a_link_is_still_an_input(tmp_path):
    _save(tmp_path / "checkpoint1.pt", 1, 1)
    (tmp_path / "avg.pt").symlink_to(tmp_path / "checkpoint1.pt")
    with pytest.raises(ValueError, match="one of the checkpoints being averaged"):
        average_checkpoints([tmp_path / "checkpoint1.pt"], tmp_path / "avg.pt")
    assert torch.load(tmp_path / "checkpoint1.pt")["model"]["n"].item() == 1
