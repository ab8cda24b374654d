"""End to end: the ``simuleval`` CLI, as a user runs it, with the agent on trained checkpoints."""
from __future__ import annotations

import csv
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
import yaml
from agent_testing import single_thread_env

from fairseq_mgcm.agents.checkpoint import load_model
from fairseq_mgcm.agents.online_fbank import OnlineFbank

pytestmark = pytest.mark.slow
REPO = Path(__file__).parents[2]
BIN = Path(sys.executable).parent
METRICS = ["AL", "LAAL", "AP", "DAL", "ATD", "StartOffset", "EndOffset"]


def simuleval(checkpoint: Path, data: Path, output: Path, *flags: str, check: bool = True):
    split = data / "simuleval" / "tst-COMMON"
    command = [
        str(BIN / "simuleval"), "--source", str(split / "source.txt"),
        "--target", str(split / "target.txt"), "--checkpoint", str(checkpoint),
        "--output", str(output), "--no-progress-bar", *flags,
    ]  # fmt: skip
    if "--agent" not in flags:
        command += ["--agent-class", "fairseq_mgcm.agents.waitk_agent.WaitkAgent"]
    result = subprocess.run(  # in the list's folder: its wav paths are relative to it
        command, env=single_thread_env(), capture_output=True, text=True, timeout=300, cwd=split
    )
    if check and result.returncode != 0:
        raise AssertionError(f"simuleval failed:\n{result.stderr[-4000:]}")
    return result


def instances(output: Path) -> list[dict]:
    with open(output / "instances.log", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def encoder_states_at(n_samples: int, chunk_size: int) -> int:
    """Encoder states a chunk-causal encoder has after ``n_samples`` (4x subsampling)."""
    fbank = OnlineFbank().n_frames_for(n_samples)
    states = math.ceil(math.ceil(fbank / 2) / 2) if fbank else 0
    return states // chunk_size * chunk_size


def test_instances_finish_with_wait_k_delays(
    trained_tiny: dict[str, Path], prepared_tiny: Path, tmp_path: Path
) -> None:
    k, ratio, chunk = 2, 4, 4  # tests/tiny_models.py trains r = 4, chunks of 4 states
    agent_file = REPO / "fairseq_mgcm" / "agents" / "waitk_agent.py"
    simuleval(
        trained_tiny["chunk-causal"], prepared_tiny, tmp_path, "--agent", str(agent_file),
        "--waitk", str(k), "--source-segment-size", "160",
    )  # fmt: skip
    n_sources = len((prepared_tiny / "simuleval/tst-COMMON/source.txt").read_text().split("\n")) - 1
    log = instances(tmp_path)
    assert [ins["index"] for ins in log] == list(range(n_sources))
    wrote_early = 0
    for ins in log:
        delays, words = ins["delays"], ins["prediction"].split()
        assert words, f"instance {ins['index']} wrote nothing"
        assert len(delays) == len(words) == len(ins["elapsed"])
        assert delays == sorted(delays)
        assert delays[-1] == ins["source_length"]  # the last word is flushed at the end
        assert all(e >= d for d, e in zip(delays, ins["elapsed"]))
        first = delays[0]
        assert first == ins["source_length"] or (
            encoder_states_at(round(first * 16), chunk) >= k * ratio
        ), f"instance {ins['index']}: first write at {first} ms, before {k} read steps"
        wrote_early += first < ins["source_length"]
    assert wrote_early >= len(log) // 2  # it is simultaneous, not offline


def fairseq_generate(checkpoint: Path, data: Path, a: float, b: int) -> dict[str, str]:
    """Greedy (beam 1) translations of tst-COMMON by utterance id."""
    command = [
        str(BIN / "fairseq-generate"), str(data), "--user-dir", str(REPO / "fairseq_mgcm"),
        "--config-yaml", "config.yaml", "--gen-subset", "tst-COMMON",
        "--task", "speech_to_text_multitask", "--path", str(checkpoint), "--beam", "1",
        "--batch-size", "1", "--max-len-a", str(a), "--max-len-b", str(b), "--cpu",
    ]  # fmt: skip
    result = subprocess.run(command, env=single_thread_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(data / "tst-COMMON.tsv", encoding="utf-8") as f:
        ids = [row["id"] for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]
    hypotheses = {}
    for line in result.stdout.splitlines():
        if line.startswith("D-"):
            tag, _, text = line.split("\t")
            hypotheses[ids[int(tag[2:])]] = text
    return hypotheses


@pytest.mark.parametrize("encoder", ["chunk-causal", "bidirectional"])
def test_k_beyond_source_equals_fairseq_generate(
    encoder: str, trained_tiny: dict[str, Path], prepared_tiny: Path, tmp_path: Path
) -> None:
    checkpoint = trained_tiny[encoder]
    simuleval(
        checkpoint, prepared_tiny, tmp_path, "--waitk", "1000", "--source-segment-size", "320",
        "--max-len-a", "0.2", "--max-len-b", "10",
    )  # fmt: skip
    expected = fairseq_generate(checkpoint, prepared_tiny, a=0.2, b=10)
    sources = (prepared_tiny / "simuleval/tst-COMMON/source.txt").read_text().split()
    log = instances(tmp_path)
    assert len(log) == len(sources) == len(expected)
    for ins, wav in zip(log, sources):
        assert set(ins["delays"]) <= {ins["source_length"]}  # read everything, then wrote
        assert ins["prediction"] == expected[Path(wav).stem], Path(wav).stem


def test_sweep_reports_plain_and_computation_aware(
    trained_tiny: dict[str, Path], prepared_tiny: Path, tmp_path: Path
) -> None:
    command = [
        sys.executable, str(REPO / "scripts" / "simuleval_sweep.py"),
        "--checkpoint", str(trained_tiny["chunk-causal"]), "--data-dir", str(prepared_tiny),
        "--k", "1", "3", "--segment-size", "320", "--output-dir", str(tmp_path),
        "--max-instances", "6",
    ]  # fmt: skip
    result = subprocess.run(command, env=single_thread_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "sacrebleu signature: nrefs:1|case:mixed|eff:no|tok:13a" in result.stdout
    with open(tmp_path / "results.tsv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert [(r["k"], r["segment_size"]) for r in rows] == [("1", "320"), ("3", "320")]
    for row in rows:
        assert row["n_instances"] == "6"
        for metric in ["BLEU", *METRICS, *(f"{m}_CA" for m in METRICS)]:
            assert math.isfinite(float(row[metric])), metric
        assert float(row["AL_CA"]) > float(row["AL"])  # computation takes time
        # The plain values are what SimulEval scores without --computation-aware.
        rescored = subprocess.run(
            [str(BIN / "simuleval"), "--score-only", "--output", row["output"],
             "--latency-metrics", *METRICS],
            env=single_thread_env(), capture_output=True, text=True,
        )  # fmt: skip
        header, values = rescored.stdout.strip().splitlines()[-2:]
        plain = dict(zip(header.split(), values.split()[1:]))
        for metric in ["BLEU", *METRICS]:
            assert float(plain[metric]) == pytest.approx(float(row[metric]), abs=1e-3), metric
    assert float(rows[1]["AL"]) > float(rows[0]["AL"])  # larger k, more lag


def copy_data(data: Path, dest: Path) -> Path:
    """A copy of the prepared data whose config points at the copy's CMVN file."""
    shutil.copytree(data, dest, ignore=shutil.ignore_patterns("*.zip", "simuleval"))
    config = yaml.safe_load((dest / "config.yaml").read_text())
    config["global_cmvn"]["stats_npz_path"] = str(dest / "gcmvn.npz")
    (dest / "config.yaml").write_text(yaml.safe_dump(config))
    return dest


@pytest.mark.parametrize("missing", ["gcmvn.npz", "spm_tgt.model", "spm_tgt.txt", "config.yaml"])
def test_missing_data_file_is_named(
    missing: str, trained_tiny: dict[str, Path], prepared_tiny: Path, tmp_path: Path
) -> None:
    data = copy_data(prepared_tiny, tmp_path / "data")
    (data / missing).unlink()
    with pytest.raises(FileNotFoundError, match=missing.replace(".", r"\.")):
        load_model(trained_tiny["chunk-causal"], data)


def test_odd_audio_through_the_cli(
    trained_tiny: dict[str, Path], prepared_tiny: Path, tmp_path: Path
) -> None:
    """An empty file, a 10 ms file and an 8 kHz file: every instance finishes."""
    first = (prepared_tiny / "simuleval/tst-COMMON/source.txt").read_text().split()[0]
    audio, rate = sf.read(prepared_tiny / "simuleval/tst-COMMON" / first, dtype="float32")
    sf.write(tmp_path / "empty.wav", audio[:0], rate, subtype="PCM_16")
    sf.write(tmp_path / "short.wav", audio[:160], rate, subtype="PCM_16")
    sf.write(tmp_path / "8k.wav", audio[::2], rate // 2, subtype="PCM_16")
    names = ["empty", "short", "8k"]
    (tmp_path / "source.txt").write_text("".join(f"{tmp_path / n}.wav\n" for n in names))
    (tmp_path / "target.txt").write_text("ein Satz\n" * len(names))
    command = [
        str(BIN / "simuleval"), "--agent-class", "fairseq_mgcm.agents.waitk_agent.WaitkAgent",
        "--source", str(tmp_path / "source.txt"), "--target", str(tmp_path / "target.txt"),
        "--checkpoint", str(trained_tiny["chunk-causal"]), "--output", str(tmp_path / "out"),
        "--no-progress-bar", "--waitk", "2",
    ]  # fmt: skip
    result = subprocess.run(
        command, env=single_thread_env(), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    log = instances(tmp_path / "out")
    assert [ins["prediction"] for ins in log[:2]] == ["", ""]
    assert log[2]["prediction"]  # 8 kHz audio was resampled and translated
    assert "resampling on the fly" in result.stderr
