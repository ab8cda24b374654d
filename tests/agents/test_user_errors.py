"""Issue 20 item 9: a user error in every entry point is one line naming the file or flag, with
no traceback, and a nonzero exit (fairseq_mgcm/errors.py).

One parametrised test per entry point: ``simuleval`` with our agent, ``fairseq-generate
--user-dir fairseq_mgcm``, ``scripts/simuleval_sweep.py``. One case of each runs the real
command (what the user sees: the line, no traceback, the exit status); the others run the same
entry point in this process (~5 s of fairseq's import saved each) and check that it raises a
UserError whose one line is the expected one, which the command prints as the first case shows.
Only the wrong ``--config-yaml`` cases need a trained checkpoint (the config is read after the
checkpoint); every other error is found before any model is built.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from agent_testing import single_thread_env

from fairseq_mgcm.errors import UserError, one_line

pytestmark = pytest.mark.slow
REPO = Path(__file__).parents[2]
BIN = Path(sys.executable).parent
AGENT = "fairseq_mgcm.agents.waitk_agent.WaitkAgent"


def bad_checkpoint(kind: str, folder: Path) -> Path:
    """A checkpoint path that is missing, truncated (half of a torch file) or foreign (a torch
    file that is not a fairseq checkpoint)."""
    path = folder / f"{kind}.pt"
    if kind == "truncated":
        torch.save({"model": {"w": torch.ones(64, 64)}}, path)
        path.write_bytes(path.read_bytes()[:1000])
    elif kind == "foreign":
        torch.save({"weights": torch.ones(2)}, path)
    return path


def source_list(folder: Path, data: Path, case: str) -> tuple[Path, Path]:
    """``source.txt`` and ``target.txt``: the prepared test split's first wav, then a 0-byte
    wav for ``zero_byte_wav``; two wavs of no samples for ``all_silent_wavs``."""
    split = data / "simuleval" / "tst-COMMON"
    wavs = [split / split.joinpath("source.txt").read_text().split()[0]]
    if case == "zero_byte_wav":
        (folder / "zero.wav").write_bytes(b"")
        wavs.append(folder / "zero.wav")
    if case == "all_silent_wavs":
        wavs = [folder / "silent1.wav", folder / "silent2.wav"]
        for wav in wavs:
            sf.write(wav, np.zeros(0, dtype=np.float32), 16000)
    (folder / "source.txt").write_text("".join(f"{w}\n" for w in wavs))
    (folder / "target.txt").write_text("ein Satz\n" * len(wavs))
    return folder / "source.txt", folder / "target.txt"


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=single_thread_env(), capture_output=True, text=True,
                          timeout=300, cwd=cwd, check=False)


def assert_in_process(prog: str, expected: str, call: Callable[[], object]) -> None:
    """``call`` raises a UserError that the entry point ``prog`` prints as ``expected``."""
    with pytest.raises(UserError) as raised:
        call()
    assert f"{prog}: error: {one_line(raised.value)}" == expected


# The case of each entry point that runs as the real command.
AS_COMMAND = {"simuleval": "waitk_0", "fairseq-generate": "missing_checkpoint",
              "simuleval_sweep": "truncated_checkpoint"}


def assert_one_line(result: subprocess.CompletedProcess, expected: str) -> None:
    """Nonzero exit, no traceback, and ``expected`` as the whole of one stderr line."""
    assert result.returncode != 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-4000:]
    lines = result.stderr.splitlines()
    assert expected in lines, f"{expected!r} not a line of:\n{result.stderr[-3000:]}"


# Each case: (what the test changes, the line the user sees). {c}: the checkpoint, {d}: the data
# folder, {w}: the 0-byte wav, {s}: the source list.
AGENT_CASES = {
    "missing_checkpoint": "simuleval: error: checkpoint {c} not found (--checkpoint)",
    "truncated_checkpoint": "simuleval: error: {c}: not a PyTorch checkpoint (1000 bytes that "
                            "are not a torch.save archive; truncated or corrupt?)",
    "foreign_checkpoint": "simuleval: error: {c}: no 'model', 'cfg' (or 'args'), "
                          "'optimizer_history' entry (top-level keys: weights); not a fairseq "
                          "checkpoint?",
    "zero_byte_wav": "simuleval: error: {w}: empty file (0 bytes), not a wav ({s}:2)",
    "all_silent_wavs": "simuleval: error: {s}: every wav it lists has no samples, so no word "
                       "would be written, and SimulEval's scorer fails on such a run; pass "
                       "--no-scoring to keep the (empty) instances.log",
    "waitk_0": "simuleval: error: --waitk 0: must be >= 1 (read steps before the first write; a "
               "k beyond the source length is offline)",
    "wrong_config_yaml": "simuleval: error: data config {d}/nope.yaml not found (set "
                         "--data-dir/--config-yaml to the prepared data the checkpoint was "
                         "trained on)",
}


@pytest.fixture
def checkpoint_for(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], Path]:
    """The checkpoint a case runs with: a bad one, or (only when asked) the trained model."""

    def choose(case: str) -> Path:
        kind = case.removesuffix("_checkpoint")
        if kind in ("missing", "truncated", "foreign"):
            return bad_checkpoint(kind, tmp_path)
        if case == "wrong_config_yaml":
            return request.getfixturevalue("trained_tiny")["chunk-causal"]
        return tmp_path / "never_read.pt"  # found wrong before the checkpoint is opened

    return choose


@pytest.mark.parametrize("case", sorted(AGENT_CASES))
def test_simuleval_agent_user_errors_are_one_line(
    case: str, checkpoint_for: Callable[[str], Path], prepared_tiny: Path, tmp_path: Path
) -> None:
    checkpoint = checkpoint_for(case)
    source, target = source_list(tmp_path, prepared_tiny, case)
    flags = {"waitk_0": ["--waitk", "0"], "wrong_config_yaml": ["--config-yaml", "nope.yaml"]}
    argv = [
        "--agent-class", AGENT, "--source", str(source),
        "--target", str(target), "--checkpoint", str(checkpoint), "--data-dir",
        str(prepared_tiny), "--output", str(tmp_path / "out"), "--no-progress-bar",
        "--source-segment-size", "160", *flags.get(case, ["--waitk", "2"]),
    ]  # fmt: skip
    expected = AGENT_CASES[case].format(
        c=checkpoint, d=prepared_tiny, w=tmp_path / "zero.wav", s=source)
    if case == AS_COMMAND["simuleval"]:
        assert_one_line(run([str(BIN / "simuleval"), *argv], cwd=tmp_path), expected)
    else:
        from fairseq_mgcm.agents.simuleval_inprocess import evaluate

        assert_in_process("simuleval", expected, lambda: evaluate(argv))


GENERATE_CASES = {
    "missing_checkpoint": "fairseq-generate: error: {c}: checkpoint not found (--path)",
    "foreign_checkpoint": AGENT_CASES["foreign_checkpoint"].replace("simuleval",
                                                                    "fairseq-generate"),
    "wrong_config_yaml": "fairseq-generate: error: {d}/nope.yaml: no such data config "
                         "(--config-yaml, relative to the data folder)",
}


@pytest.mark.parametrize("case", sorted(GENERATE_CASES))
def test_fairseq_generate_user_errors_are_one_line(
    case: str, prepared_tiny: Path, tmp_path: Path
) -> None:
    """The plugin (``--user-dir``) turns them into one line; none needs a trained model (the
    data config is read before the checkpoint)."""
    kind = "missing" if case == "wrong_config_yaml" else case.removesuffix("_checkpoint")
    checkpoint = bad_checkpoint(kind, tmp_path)
    config = "nope.yaml" if case == "wrong_config_yaml" else "config.yaml"
    argv = [
        str(prepared_tiny), "--user-dir",
        str(REPO / "fairseq_mgcm"), "--config-yaml", config, "--gen-subset", "tst-COMMON",
        "--task", "speech_to_text_multitask", "--path", str(checkpoint), "--beam", "1",
        "--batch-size", "4", "--cpu",
    ]  # fmt: skip
    expected = GENERATE_CASES[case].format(c=checkpoint, d=prepared_tiny)
    if case == AS_COMMAND["fairseq-generate"]:
        result = run([str(BIN / "fairseq-generate"), *argv], cwd=tmp_path)
        assert_one_line(result, expected)
        assert "D-0" not in result.stdout
    else:
        from fairseq import options
        from fairseq_cli.generate import main

        def generate() -> None:
            parser = options.get_generation_parser()
            main(options.parse_args_and_arch(parser, input_args=argv))

        assert_in_process("fairseq-generate", expected, generate)


SWEEP_CASES = {
    "truncated_checkpoint": "simuleval_sweep: " + AGENT_CASES["truncated_checkpoint"].split(
        "error: ", 1)[1],
    "zero_byte_wav": "simuleval_sweep: waitk k=2, segment 160 ms: {w}: empty file (0 bytes), not a "
                     "wav ({s}:2)",
    "wrong_config_yaml": "simuleval_sweep: waitk k=2, segment 160 ms: "
                         + AGENT_CASES["wrong_config_yaml"].split("error: ", 1)[1],
}


@pytest.mark.parametrize("case", sorted(SWEEP_CASES))
def test_sweep_user_errors_are_one_line(
    case: str, trained_tiny: dict[str, Path], prepared_tiny: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The agent's errors inside the sweep's in-process SimulEval runs are one line too, named
    with the run's k and segment size. The split ``mine``: a good wav, and a 0-byte one."""
    data = tmp_path / "data"
    shutil.copytree(prepared_tiny, data, ignore=shutil.ignore_patterns("*.zip", "simuleval"))
    split = data / "simuleval" / "mine"
    (split / "wav").mkdir(parents=True)
    tst = prepared_tiny / "simuleval" / "tst-COMMON"
    shutil.copy(tst / (tst / "source.txt").read_text().split()[0], split / "wav" / "a.wav")
    names = ["a", "zero"] if case == "zero_byte_wav" else ["a"]
    (split / "wav" / "zero.wav").write_bytes(b"")
    (split / "source.txt").write_text("".join(f"wav/{n}.wav\n" for n in names))
    (split / "target.txt").write_text("ein Satz\n" * len(names))
    checkpoint = (bad_checkpoint("truncated", tmp_path) if case == "truncated_checkpoint"
                  else trained_tiny["chunk-causal"])
    out = tmp_path / "out"
    argv = [
        "--checkpoint",
        str(checkpoint), "--data-dir", str(data), "--split", "mine", "--k", "2",
        "--segment-size", "160", "--output-dir", str(out),
        *(["--config-yaml", "nope.yaml"] if case == "wrong_config_yaml" else []),
    ]  # fmt: skip
    expected = SWEEP_CASES[case].format(
        c=checkpoint, d=data, w=(split / "wav" / "zero.wav").resolve(),
        s=out / "source_mine.txt")
    if case == AS_COMMAND["simuleval_sweep"]:
        script = str(REPO / "scripts" / "simuleval_sweep.py")
        assert_one_line(run([sys.executable, script, *argv], cwd=tmp_path), expected)
    else:  # the sweep prints the line itself and exits 2
        from fairseq_mgcm.agents.sweep import main

        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2
        assert expected in capsys.readouterr().err.splitlines()
    assert not (out / "results.tsv").exists()
