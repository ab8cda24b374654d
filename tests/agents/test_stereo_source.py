"""Stereo wavs reach the agent as their mono mix, as in data preparation (issue 20, item 4).

SimulEval 1.1.4 reads a stereo wav as ``[left, right]`` pairs; flattened, the channels were
interleaved into one stream at twice the length (BLEU 40.5 -> 2.9, no warning at 16 kHz).
"""
from __future__ import annotations

import json
import logging
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from agent_testing import simulate

from fairseq_mgcm.agents.checkpoint import load_model_cached
from fairseq_mgcm.agents.simuleval_inprocess import AGENT_CLASS, evaluate
from fairseq_mgcm.agents.waitk_agent import WaitkAgent

pytestmark = pytest.mark.slow
SEGMENT_MS = 160  # the tiny model's read step (r = 4)


def stereo_copy(mono: Path, dest: Path) -> Path:
    """``mono`` (16-bit) as two different channels whose mean is exactly ``mono``."""
    x, rate = sf.read(mono, dtype="int16")
    x = x.astype(np.int32)
    room = 32767 - np.abs(x)
    d = np.clip(np.random.default_rng(0).integers(-3000, 3001, x.shape), -room, room)
    sf.write(dest, np.stack([x + d, x - d], axis=1).astype(np.int16), rate, subtype="PCM_16")
    return dest


def one_utterance(prepared_tiny: Path, tmp_path: Path) -> tuple[Path, Path, str]:
    """The first tst-COMMON utterance: its mono wav, a stereo copy and its reference."""
    split = prepared_tiny / "simuleval" / "tst-COMMON"
    mono = split / (split / "source.txt").read_text().splitlines()[0]
    reference = (split / "target.txt").read_text().splitlines()[0]
    return mono, stereo_copy(mono, tmp_path / "stereo.wav"), reference


def simuleval_prediction(wav: Path, reference: str, checkpoint: Path, data: Path,
                         out: Path) -> str:
    """SimulEval's own evaluation (as the ``simuleval`` command runs it) of one wav."""
    out.mkdir()
    (out / "source.txt").write_text(f"{wav}\n")
    (out / "target.txt").write_text(f"{reference}\n")
    evaluate([
        "--agent-class", AGENT_CLASS, "--source", str(out / "source.txt"),
        "--target", str(out / "target.txt"), "--checkpoint", str(checkpoint),
        "--data-dir", str(data), "--waitk", "3", "--source-segment-size", str(SEGMENT_MS),
        "--output", str(out / "run"), "--no-scoring", "--no-progress-bar",
    ])  # fmt: skip
    lines = (out / "run" / "instances.log").read_text(encoding="utf-8").splitlines()
    return json.loads(lines[0])["prediction"]


def test_simuleval_translates_a_stereo_copy_as_the_mono_wav_and_warns(
    trained_tiny: dict[str, Path], prepared_tiny: Path, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    mono, stereo, reference = one_utterance(prepared_tiny, tmp_path)
    checkpoint = trained_tiny["chunk-causal"]
    expected = simuleval_prediction(mono, reference, checkpoint, prepared_tiny, tmp_path / "mono")
    assert expected.strip()  # the model says something: equal outputs are not both empty
    with caplog.at_level(logging.WARNING, logger="fairseq_mgcm.agents.mono_source"):
        got = simuleval_prediction(stereo, reference, checkpoint, prepared_tiny,
                                   tmp_path / "stereo")
    assert got == expected
    assert f"{stereo} has 2 channels; averaging them to mono" in caplog.text


def test_agent_given_stereo_pairs_translates_as_mono(
    trained_tiny: dict[str, Path], prepared_tiny: Path, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Stereo samples from another reader (SimulEval's own: ``[left, right]`` per sample) are
    down-mixed by the agent itself, with a warning."""
    mono, stereo, _ = one_utterance(prepared_tiny, tmp_path)
    loaded = load_model_cached(trained_tiny["chunk-causal"], prepared_tiny)
    agent = WaitkAgent(Namespace(waitk=3, max_len_a=0.2, max_len_b=10), loaded=loaded)
    audio, rate = sf.read(mono, dtype="float32")
    pairs, _ = sf.read(stereo, dtype="float32")  # [n, 2], as SimulEval's reader gives it
    expected = simulate(agent, torch.from_numpy(audio), rate, SEGMENT_MS)
    with caplog.at_level(logging.WARNING, logger="fairseq_mgcm.agents.states"):
        got = simulate(agent, torch.from_numpy(pairs), rate, SEGMENT_MS)
    assert [w.text for w in got] == [w.text for w in expected] and any(w.text for w in got)
    assert [w.delay_ms for w in got] == [w.delay_ms for w in expected]
    assert "has 2 channels; averaging them to mono" in caplog.text
