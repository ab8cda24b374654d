"""The sweep's checks before and around its in-process SimulEval runs (no model is loaded)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from fairseq_mgcm.agents import sweep
from fairseq_mgcm.agents.simuleval_inprocess import FlagError, check_extra_flags


@pytest.fixture
def inputs(tmp_path: Path) -> list[str]:
    """Sweep options over files that exist (the checks never open the checkpoint)."""
    split = tmp_path / "data" / "simuleval" / "tst-COMMON"
    split.mkdir(parents=True)
    (split / "source.txt").write_text("a.wav\n")
    (split / "target.txt").write_text("ein Satz\n")
    (tmp_path / "model.pt").write_bytes(b"not read")
    return ["--checkpoint", str(tmp_path / "model.pt"), "--data-dir", str(tmp_path / "data"),
            "--k", "2", "--segment-size", "160", "--output-dir", str(tmp_path / "out")]


BASE = ["--agent-class", "fairseq_mgcm.agents.waitk_agent.WaitkAgent", "--source", "s.txt",
        "--target", "t.txt", "--checkpoint", "m.pt", "--waitk", "2", "--output", "out",
        "--no-scoring", "--no-progress-bar"]


@pytest.mark.parametrize(("extra", "message"), [
    (["--slurm"], "--slurm submits a slurm job; the sweep evaluates"),
    (["--standalone"], "--standalone serves the agent"),
    (["--remote-eval"], "--remote-eval evaluates a remote agent"),
    (["--agent", "other.py"], "--agent loads another agent file"),
    (["--system-dir", "sys"], "--system-dir loads another system"),
    (["--waitk", "9"], "--waitk is set by the sweep; use its --k"),
    (["--wait", "9"], "--waitk is set by the sweep"),  # argparse's abbreviation, judged too
    (["--output=elsewhere"], "--output is set by the sweep; use its --output-dir"),
    (["--end-index", "3"], "--end-index is set by the sweep; use its --max-instances"),
    (["--dtype", "fp16"], "--dtype is set by the sweep; use its --fp16"),
    (["--score-only"], "not allowed with argument --no-scoring"),
    (["--latency-metrics", "NOPE"], "No latency metric called NOPE"),
    (["--max-len-c", "1"], "unknown to SimulEval and the agent: --max-len-c 1"),
    (["--help"], "--help: run `simuleval --agent-class"),
])
def test_extra_flags_it_cannot_honour_are_refused(extra: list[str], message: str) -> None:
    with pytest.raises(FlagError, match=message.replace("(", r"\(").replace("?", r"\?")):
        check_extra_flags(BASE, extra)


@pytest.mark.parametrize("extra", [
    ["--max-len-a", "0.3", "--max-len-b", "20"],  # the agent's own
    ["--computation-aware", "--latency-metrics", "AL", "LAAL"],  # SimulEval's, harmless here
    ["--start-index", "1"],
])
def test_extra_flags_simuleval_honours_pass(extra: list[str]) -> None:
    check_extra_flags(BASE, extra)


def test_refused_extra_flag_is_a_one_line_error_before_any_run(
    inputs: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        sweep.main([*inputs, "--", "--slurm"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("simuleval_sweep: extra flag after --: --slurm submits a slurm job")
    assert "\n" not in error
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_a_failed_run_names_k_and_segment_size_and_leaves_no_finished_run(
    inputs: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(flags: list[str]) -> None:
        output = Path(flags[flags.index("--output") + 1])
        output.mkdir(parents=True)
        (output / "instances.log").write_text("")  # half done
        raise RuntimeError("out of memory")

    monkeypatch.setattr(sweep, "evaluate", broken)
    with pytest.raises(SystemExit, match=r"^simuleval failed for waitk k=2, segment 160 ms: "
                                         r"RuntimeError: out of memory$"):
        sweep.main(inputs)
    out = tmp_path / "out"
    assert (out / "k2_seg160.partial" / "instances.log").is_file()
    assert not (out / "k2_seg160").exists() and not (out / "results.tsv").exists()


def test_simuleval_sees_the_runs_flags_and_the_sweeps_come_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SimulEval reads ``sys.argv`` and appends to its system list while building a run: both
    are the sweep's again afterwards, even when the build fails."""
    from simuleval.utils.agent import EVALUATION_SYSTEM_LIST

    from fairseq_mgcm.agents.simuleval_inprocess import _simuleval_argv

    monkeypatch.setattr(sys, "argv", ["simuleval_sweep.py", "--k", "2"])
    systems = list(EVALUATION_SYSTEM_LIST)
    with pytest.raises(RuntimeError), _simuleval_argv(["--waitk", "3"]):
        assert sys.argv == ["simuleval", "--waitk", "3"]
        EVALUATION_SYSTEM_LIST.append(object)
        raise RuntimeError("the build failed")
    assert sys.argv == ["simuleval_sweep.py", "--k", "2"]
    assert EVALUATION_SYSTEM_LIST == systems
