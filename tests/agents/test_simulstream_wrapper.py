"""Our SimulEval agent, unchanged, under simulstream 1.0's SimulEval bridge (issue 21, item 1).

``SimulEvalWrapper`` builds the agent from the speech processor's YAML namespace and calls
``agent.policy(agent.states)`` once per chunk; the agent used to take no argument (TypeError on
the first chunk). Here the whole simulstream path runs: YAML -> ``build_speech_processor`` ->
``MessageProcessor`` (16-bit PCM bytes in, as from a client) -> the wrapper -> the agent.
"""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import soundfile as sf
import yaml
from simulstream.config import yaml_config
from simulstream.server.message_processor import MessageProcessor
from simulstream.server.speech_processors import build_speech_processor

from fairseq_mgcm.agents.simuleval_inprocess import AGENT_CLASS, evaluate
from fairseq_mgcm.agents.waitk_agent import WaitkAgent

STEP_S = 0.16  # the tiny model's read step (r = 4): one chunk per policy call


def test_agent_under_simulevalwrapper_writes_what_it_writes_under_simuleval(
    trained_tiny: dict[str, Path], prepared_tiny: Path, tmp_path: Path
) -> None:
    config = {
        "type": "simulstream.server.speech_processors.simuleval_wrapper.SimulEvalWrapper",
        "simuleval_agent": "fairseq_mgcm.agents.waitk_agent.WaitkAgent",
        "speech_chunk_size": STEP_S, "latency_unit": "word", "detokenizer_type": "simuleval",
        # the agent's options, as SimulEval's parser would give them
        "checkpoint": str(trained_tiny["chunk-causal"]), "data_dir": None, "config_yaml": None,
        "waitk": None, "max_len_a": 0.2, "max_len_b": 10, "fp16": False, "dtype": None,
        "longform": True,
    }  # fmt: skip
    (tmp_path / "wrapper.yaml").write_text(yaml.safe_dump(config))
    wrapper = build_speech_processor(yaml_config(str(tmp_path / "wrapper.yaml")))
    agent = wrapper.simuleval_agent
    assert isinstance(agent, WaitkAgent) and agent.longform is not None

    split = prepared_tiny / "simuleval" / "tst-COMMON"
    wav = split / (split / "source.txt").read_text().split()[0]
    pcm, rate = sf.read(wav, dtype="int16")
    messages = MessageProcessor(0, wrapper)
    chunk = int(rate * STEP_S)
    outputs = [messages.process_speech(pcm[i : i + chunk].tobytes())
               for i in range(0, len(pcm), chunk)]
    outputs.append(messages.end_of_stream())
    got = [word for out in outputs if out is not None for word in out.new_tokens]

    # SimulEval's own evaluation of the same wav (as the `simuleval` command runs it)
    (tmp_path / "source.txt").write_text(f"{wav}\n")
    (tmp_path / "target.txt").write_text("-\n")
    evaluate([
        "--agent-class", AGENT_CLASS, "--source", str(tmp_path / "source.txt"),
        "--target", str(tmp_path / "target.txt"), "--checkpoint", str(config["checkpoint"]),
        "--source-segment-size", str(int(STEP_S * 1000)), "--longform",
        "--output", str(tmp_path / "run"), "--no-scoring", "--no-progress-bar",
    ])  # fmt: skip
    (line,) = (tmp_path / "run" / "instances.log").read_text(encoding="utf-8").splitlines()
    expected = json.loads(line)["prediction"].split()
    assert got == expected and expected
    assert any(out is not None and out.new_tokens for out in outputs[:-1])  # while streaming


def test_the_wrappers_words_depend_on_the_chunk_size_the_processors_do_not(
    trained_tiny: dict[str, Path], prepared_tiny: Path
) -> None:
    """Why the native processor exists (its docstring): the wrapper calls the policy once per
    client chunk, so 1 s chunks give other words than 160 ms ones; the processor cuts the audio
    into read steps, so both give the same words."""
    agent_options = {
        "checkpoint": str(trained_tiny["chunk-causal"]), "data_dir": None, "config_yaml": None,
        "waitk": None, "max_len_a": 0.2, "max_len_b": 10, "fp16": False, "dtype": None,
        "longform": True,
    }  # fmt: skip
    wrapper = {"type": "simulstream.server.speech_processors.simuleval_wrapper.SimulEvalWrapper",
               "simuleval_agent": "fairseq_mgcm.agents.waitk_agent.WaitkAgent",
               "latency_unit": "word", "detokenizer_type": "simuleval"}
    native = {"type": "fairseq_mgcm.agents.simulstream_processor.WaitkSpeechProcessor"}
    split = prepared_tiny / "simuleval" / "tst-COMMON"
    pcms = [sf.read(split / wav, dtype="int16")[0]
            for wav in (split / "source.txt").read_text().split()[:5]]

    def translations(kind: dict, seconds: float) -> list[list[str]]:
        processor = build_speech_processor(SimpleNamespace(
            **kind, **agent_options, speech_chunk_size=seconds))
        found = []
        for pcm in pcms:
            messages, got = MessageProcessor(0, processor), []
            for i in range(0, len(pcm), int(16000 * seconds)):
                out = messages.process_speech(pcm[i : i + int(16000 * seconds)].tobytes())
                got += out.new_tokens if out is not None else []
            found.append(got + messages.end_of_stream().new_tokens)
        return found

    assert translations(wrapper, STEP_S) != translations(wrapper, 1.0)
    assert translations(native, STEP_S) == translations(native, 1.0)
