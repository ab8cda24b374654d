"""scripts/simuleval_sweep.py on a trained checkpoint: every run in one process equals the
``simuleval`` command, no stale result, nothing lost to a kill."""
from __future__ import annotations

import csv
import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from agent_testing import single_thread_env

pytestmark = pytest.mark.slow
REPO = Path(__file__).parents[2]
READ_STEP_MS = 4 * 40  # tests/tiny_models.py trains r = 4


def sweep_command(checkpoint: Path, data: Path, out: Path, *flags: str) -> list[str]:
    return [
        sys.executable, str(REPO / "scripts" / "simuleval_sweep.py"),
        "--checkpoint", str(checkpoint), "--data-dir", str(data), "--output-dir", str(out),
        *flags,
    ]  # fmt: skip


def sweep(checkpoint: Path, data: Path, out: Path, *flags: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        sweep_command(checkpoint, data, out, *flags), env=single_thread_env(),
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def sweep_here(caplog: pytest.LogCaptureFixture, checkpoint: Path, data: Path, out: Path,
               *flags: str) -> str:
    """The sweep in this process (the command's own ``main``; the command line itself is run by
    the other tests here); returns what it logged."""
    from fairseq_mgcm.agents.sweep import main

    caplog.clear()
    with caplog.at_level(logging.INFO):
        main(["--checkpoint", str(checkpoint), "--data-dir", str(data), "--output-dir", str(out),
              *flags])
    return caplog.text


def rows(out: Path) -> list[dict[str, str]]:
    with open(out / "results.tsv", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def predictions(run: Path) -> list[str]:
    lines = (run / "instances.log").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["prediction"] for line in lines]


def logged_commands(stderr: str) -> dict[int, list[str]]:
    """The ``simuleval`` command the sweep logs for each k (``... as a command: simuleval ...``)."""
    commands = {}
    for line in stderr.splitlines():
        if "as a command: simuleval " in line:
            words = shlex.split(line.split("as a command: simuleval ", 1)[1])
            commands[int(words[words.index("--waitk") + 1])] = words
    return commands


def test_runs_in_one_process_equal_the_simuleval_command(
    trained_tiny: dict[str, Path], prepared_tiny: Path, tmp_path: Path
) -> None:
    """Two k values in one sweep process: the model is loaded once, and the second run (on the
    reused model, with a fresh agent) writes what a ``simuleval`` process writes for its k."""
    out = tmp_path / "simul"
    result = sweep(trained_tiny["chunk-causal"], prepared_tiny, out, "--k", "1", "3")
    assert result.stderr.count("| fairseq_mgcm.agents.checkpoint | loaded ") == 1
    assert result.stderr.count("reusing the model loaded from") == 1
    runs = {k: out / f"k{k}_seg{READ_STEP_MS}" for k in (1, 3)}
    logs = {k: [json.loads(line) for line in (run / "instances.log").read_text().splitlines()]
            for k, run in runs.items()}
    assert all(len(log) == 10 for log in logs.values())  # tst-COMMON of prepared_tiny
    first_delays = {k: [ins["delays"][0] for ins in log if ins["delays"]]
                    for k, log in logs.items()}
    assert sum(first_delays[3]) > sum(first_delays[1])  # the second run's agent has k = 3

    command = logged_commands(result.stderr)[3]
    command[command.index("--output") + 1] = str(tmp_path / "cli")
    cli = subprocess.run(
        [str(Path(sys.executable).parent / "simuleval"), *command], env=single_thread_env(),
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr[-4000:]
    expected = [json.loads(line) for line in (tmp_path / "cli" / "instances.log").open()]
    assert [(i["index"], i["prediction"], i["delays"]) for i in logs[3]] == [
        (i["index"], i["prediction"], i["delays"]) for i in expected]
    assert any(i["prediction"] for i in expected)


def test_changed_checkpoint_or_max_instances_is_evaluated_again(
    trained_tiny: dict[str, Path], prepared_tiny: Path, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    checkpoint = tmp_path / "checkpoint_avg.pt"
    shutil.copy(trained_tiny["chunk-causal"], checkpoint)
    out = tmp_path / "simul"
    sweep_here(caplog, checkpoint, prepared_tiny, out, "--k", "2", "--max-instances", "2")
    run = out / f"k2_seg{READ_STEP_MS}"  # the default segment size is the model's read step
    assert [(r["segment_size"], r["n_instances"]) for r in rows(out)] == [(str(READ_STEP_MS), "2")]
    first = (run / "instances.log").stat().st_mtime_ns

    again = sweep_here(caplog, checkpoint, prepared_tiny, out, "--k", "2", "--max-instances", "2")
    assert "done before with the same checkpoint" in again
    assert (run / "instances.log").stat().st_mtime_ns == first  # not re-run

    more = sweep_here(caplog, checkpoint, prepared_tiny, out, "--k", "2", "--max-instances", "3")
    assert "changed: max_instances" in more
    assert rows(out)[0]["n_instances"] == "3"

    # Retrained / replaced: another model at the same path.
    shutil.copy(trained_tiny["bidirectional"], checkpoint)
    replaced = sweep_here(caplog, checkpoint, prepared_tiny, out, "--k", "2",
                          "--max-instances", "3")
    assert "changed: checkpoint" in replaced
    fresh = tmp_path / "fresh"
    sweep_here(caplog, trained_tiny["bidirectional"], prepared_tiny, fresh, "--k", "2",
               "--max-instances", "3")
    assert predictions(run) == predictions(fresh / f"k2_seg{READ_STEP_MS}")
    assert not list(out.glob("*.partial"))


def test_killed_sweep_rerun_is_complete_and_keeps_finished_runs(
    trained_tiny: dict[str, Path], prepared_tiny: Path, tmp_path: Path
) -> None:
    out = tmp_path / "simul"
    flags = ("--k", "1", "2", "--segment-size", "80", "--max-instances", "10")
    process = subprocess.Popen(
        sweep_command(trained_tiny["chunk-causal"], prepared_tiny, out, *flags),
        env=single_thread_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    second = out / "k2_seg80.partial" / "instances.log"
    deadline = time.monotonic() + 300
    while not second.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # the sweep and its simuleval, mid-run
    process.wait()
    assert second.exists(), "the sweep did not reach its second run"
    assert (out / "k1_seg80" / ".done").is_file() and not (out / "k2_seg80").exists()
    finished = (out / "k1_seg80" / "instances.log").stat().st_mtime_ns

    result = sweep(trained_tiny["chunk-causal"], prepared_tiny, out, *flags)
    assert "k=1 segment=80 ms: done before" in result.stderr
    assert (out / "k1_seg80" / "instances.log").stat().st_mtime_ns == finished
    assert [(r["k"], r["n_instances"]) for r in rows(out)] == [("1", "10"), ("2", "10")]
    assert len(predictions(out / "k2_seg80")) == 10
    assert not list(out.glob("*.partial"))


def test_sweep_where_no_instance_writes_a_word_reports_nan_latency(
    trained_tiny: dict[str, Path], prepared_tiny: Path, tmp_path: Path
) -> None:
    """Empty wavs only: SimulEval's own scorer would end in ``StatisticsError``; the sweep
    scores the log itself (BLEU 0, latency nan) and exits 0."""
    import soundfile as sf

    data = tmp_path / "data"
    shutil.copytree(prepared_tiny, data, ignore=shutil.ignore_patterns("*.zip", "simuleval"))
    split = data / "simuleval" / "empty"
    split.mkdir(parents=True)
    for i in range(2):
        sf.write(split / f"e{i}.wav", [], 16000, subtype="PCM_16")
    (split / "source.txt").write_text("".join(f"{split / f'e{i}.wav'}\n" for i in range(2)))
    (split / "target.txt").write_text("ein Satz\nnoch einer\n")
    out = tmp_path / "simul"
    sweep(trained_tiny["chunk-causal"], data, out, "--split", "empty", "--k", "2")
    (row,) = rows(out)
    assert row["n_instances"] == "2" and float(row["BLEU"]) == 0.0
    assert row["AL"] == "nan" and row["AL_CA"] == "nan"


def test_policies_on_the_same_checkpoint(trained_tiny: dict[str, Path], prepared_tiny: Path,
                                         tmp_path: Path, caplog: pytest.LogCaptureFixture
                                         ) -> None:
    """One sweep runs wait-k, AlignAtt, EDAtt and local agreement on one checkpoint: a row and
    a run each; an AlignAtt f beyond every source writes only at the end, exactly what wait-k
    with a k beyond every source writes; a small f writes earlier."""
    out = tmp_path / "simul"
    policies = ["--policies", "waitk", "alignatt:2,100000", "edatt:0.4", "local-agreement:2"]
    logged = sweep_here(caplog, trained_tiny["chunk-causal"], prepared_tiny, out, "--k", "3",
                        "1000", *policies, "--max-instances", "4")
    table = rows(out)
    assert [(r["policy"], r["value"], r["k"]) for r in table] == [
        ("waitk", "3", "3"), ("waitk", "1000", "1000"), ("alignatt", "2", "nan"),
        ("alignatt", "100000", "nan"), ("edatt", "0.400", "nan"),
        ("local-agreement", "2", "nan")]
    assert [Path(r["output"]).name for r in table] == [
        f"{name}_seg{READ_STEP_MS}" for name in ("k3", "k1000", "alignatt_f2",
                                                  "alignatt_f100000", "edatt_a0.4",
                                                  "local-agreement_n2")]
    assert all(r["n_instances"] == "4" for r in table)
    assert "--policy alignatt --alignatt-frames 2 " in logged
    assert predictions(out / f"alignatt_f100000_seg{READ_STEP_MS}") == predictions(
        out / f"k1000_seg{READ_STEP_MS}")
    al = {(r["policy"], r["value"]): float(r["AL"]) for r in table}
    assert al[("alignatt", "2")] < al[("alignatt", "100000")]
    again = sweep_here(caplog, trained_tiny["chunk-causal"], prepared_tiny, out, "--k", "3",
                       "1000", *policies, "--max-instances", "4")
    assert again.count("done before with the same checkpoint") == 6
