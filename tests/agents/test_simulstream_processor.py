"""simulstream's speech processor for our checkpoints (issue 21, items 1 and 7), built from the
shipped ``configs/simulstream/waitk.yaml`` as simulstream builds it, on the tiny trained model.

Every comparison is with what the same agent writes under SimulEval's loop (``simulate``, with
``--source-segment-size`` equal to the read step), word for word.
"""
from __future__ import annotations

import json
import logging
import sys
from argparse import Namespace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch
from agent_testing import make_loaded, simulate, speechlike
from simulstream.config import yaml_config
from simulstream.server.speech_processors import build_speech_processor

from fairseq_mgcm.agents.simuleval_inprocess import AGENT_CLASS, evaluate
from fairseq_mgcm.agents.simulstream_processor import WaitkSpeechProcessor, agent_args
from fairseq_mgcm.agents.waitk_agent import WaitkAgent
from fairseq_mgcm.errors import BadValue

SHIPPED = Path(__file__).parents[2] / "configs" / "simulstream" / "waitk.yaml"
RATE = 16000


def stream(processor: WaitkSpeechProcessor, audio: np.ndarray, chunk: int) -> list[list[str]]:
    """The words of each call: ``audio`` in chunks of ``chunk`` samples, then end of stream."""
    outputs = [processor.process_chunk(audio[i : i + chunk]) for i in range(0, len(audio), chunk)]
    outputs.append(processor.end_of_stream())
    for output in outputs:
        assert output.deleted_tokens == [] and output.deleted_string == ""
    return [output.new_tokens for output in outputs]


def words(calls: list[list[str]]) -> list[str]:
    return [word for call in calls for word in call]


def simuleval_words(args: Namespace, audio: np.ndarray, step_ms: int, **kwargs) -> list[str]:
    """What a fresh agent with the same options writes under SimulEval's loop."""
    agent = WaitkAgent(args, **kwargs)
    writes = simulate(agent, torch.from_numpy(audio), RATE, step_ms)
    return " ".join(w.text for w in writes).split()


@pytest.fixture(scope="module")
def shipped(trained_tiny: dict[str, Path]) -> WaitkSpeechProcessor:
    """The shipped YAML, as ``simulstream_inference``/the server load it, with the checkpoint
    (its one placeholder, ``${MGCM_CHECKPOINT}``) set to the tiny chunk-causal model."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MGCM_CHECKPOINT", str(trained_tiny["chunk-causal"]))
        processor = build_speech_processor(yaml_config(str(SHIPPED)))
    assert isinstance(processor, WaitkSpeechProcessor)
    return processor


@pytest.fixture(scope="module")
def utterances(prepared_tiny: Path) -> list[np.ndarray]:
    """tst-COMMON's first three wavs, float32 as simulstream passes them (16-bit / 2**15)."""
    split = prepared_tiny / "simuleval" / "tst-COMMON"
    wavs = (split / "source.txt").read_text().split()[:3]
    audio = [sf.read(split / wav, dtype="float32")[0] for wav in wavs]
    assert all(a.ndim == 1 for a in audio)
    return audio


def test_shipped_config_gives_the_agent_its_options(shipped: WaitkSpeechProcessor,
                                                   trained_tiny: dict[str, Path]) -> None:
    args = shipped.agent.args
    assert args.checkpoint == str(trained_tiny["chunk-causal"])
    assert (args.waitk, args.max_len_a, args.max_len_b, args.device, args.fp16) == (
        None, 0.2, 10, "cpu", False)
    assert args.longform is True
    assert shipped.agent.lagging == 3  # the training k (tests/tiny_models.py)
    assert shipped.speech_chunk_size == 0.16  # null: the tiny model's read step, r = 4


def test_words_equal_simuleval_and_do_not_depend_on_the_chunk_size(
    shipped: WaitkSpeechProcessor, utterances: list[np.ndarray]
) -> None:
    step = shipped.step
    assert step == 2560
    for audio in utterances:
        assert len(audio) % step  # a stream ending on a read step would end in an empty push
        expected = simuleval_words(shipped.agent.args, audio, shipped.agent.read_step_ms)
        assert expected
        for chunk in (step, 800, 3 * step + 7, len(audio)):
            shipped.clear()
            calls = stream(shipped, audio, chunk)
            assert words(calls) == expected, chunk
        shipped.clear()
        # the words come while the audio streams, not all at the end
        assert words(stream(shipped, audio, step)[:-1])


def test_words_equal_simulevals_own_evaluation(shipped: WaitkSpeechProcessor,
                                              prepared_tiny: Path, tmp_path: Path) -> None:
    """``simulate`` above is SimulEval's loop in a few lines; here SimulEval's own evaluator (as
    the ``simuleval`` command runs it) on one wav, with the shipped YAML's options."""
    split = prepared_tiny / "simuleval" / "tst-COMMON"
    wav = split / (split / "source.txt").read_text().split()[2]
    (tmp_path / "source.txt").write_text(f"{wav}\n")
    (tmp_path / "target.txt").write_text("-\n")
    args = shipped.agent.args
    evaluate([
        "--agent-class", AGENT_CLASS, "--source", str(tmp_path / "source.txt"),
        "--target", str(tmp_path / "target.txt"), "--checkpoint", args.checkpoint,
        "--source-segment-size", str(shipped.agent.read_step_ms), "--longform",
        "--history", args.history, "--output", str(tmp_path / "run"), "--no-scoring",
        "--no-progress-bar",
    ])  # fmt: skip
    (line,) = (tmp_path / "run" / "instances.log").read_text(encoding="utf-8").splitlines()
    shipped.clear()
    got = words(stream(shipped, sf.read(wav, dtype="float32")[0], 4000))
    assert got == json.loads(line)["prediction"].split() and got


def test_a_stream_that_stops_mid_word_writes_the_rest(
    shipped: WaitkSpeechProcessor, utterances: list[np.ndarray]
) -> None:
    audio = utterances[0]
    cut = audio[: int(len(audio) * 0.6) // 100 * 100 + 37]  # inside the speech, off the steps
    expected = simuleval_words(shipped.agent.args, cut, shipped.agent.read_step_ms)
    shipped.clear()
    calls = stream(shipped, cut, 1000)
    assert words(calls) == expected
    assert calls[-1]  # the end of stream wrote the word in progress (and any rest)
    output = shipped.end_of_stream()  # a second end of stream adds nothing
    assert output.new_tokens == [] and output.new_string == ""


def test_clear_between_streams_gives_identical_outputs(
    shipped: WaitkSpeechProcessor, utterances: list[np.ndarray]
) -> None:
    first, second = utterances[:2]
    shipped.clear()
    alone = stream(shipped, second, 1600)
    shipped.clear()
    one = stream(shipped, first, 1600)
    shipped.clear()
    after = stream(shipped, second, 1600)
    shipped.clear()
    again = stream(shipped, first, 1600)
    assert after == alone and again == one
    # a chunk after the end of stream starts a new stream (a caller that does not clear)
    assert stream(shipped, first, 1600) == one


def test_new_string_can_be_appended_as_it_is(shipped: WaitkSpeechProcessor,
                                            utterances: list[np.ndarray]) -> None:
    shipped.clear()
    audio = utterances[0]
    strings = [shipped.process_chunk(audio[i : i + 2560]).new_string
               for i in range(0, len(audio), 2560)]
    strings.append(shipped.end_of_stream().new_string)
    assert "".join(strings) == " ".join(simuleval_words(shipped.agent.args, audio, 160))
    assert json.loads(shipped.end_of_stream().strings_to_json()) == {"new": "", "deleted": ""}


def test_a_whole_talk_streams_to_its_end(shipped: WaitkSpeechProcessor,
                                         prepared_tiny: Path) -> None:
    """A talk of 10 sentences (26 s, the corpus's own wav) in 1 s chunks: the words equal the
    agent's under SimulEval with ``--longform`` (the shipped YAML's), and still come in the
    talk's last third (the agent no longer stops at the first end of sentence). ~4 s."""
    talk = sorted((prepared_tiny.parent / "corpus" / "en-de" / "data" / "tst-COMMON" / "wav")
                  .glob("*.wav"))[0]
    audio = sf.read(talk, dtype="float32")[0]
    assert len(audio) > 20 * RATE
    shipped.clear()
    calls = stream(shipped, audio, RATE)
    assert words(calls) == simuleval_words(shipped.agent.args, audio, shipped.agent.read_step_ms)
    assert any(calls[len(calls) * 2 // 3 : -1])


def test_a_model_at_another_sample_rate_gets_the_audio_resampled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """simulstream passes 16 kHz; a model trained at 8 kHz hears it resampled by the agent's
    streaming resampler, exactly as under SimulEval, with a warning naming both rates."""
    loaded = make_loaded(4)  # random weights, read step 80 ms
    loaded.sample_rate = 8000
    config = SimpleNamespace(checkpoint="unused.pt", waitk=2, longform=True)
    audio = speechlike(2.0, seed=5).numpy().astype(np.float32)
    with caplog.at_level(logging.WARNING, logger="fairseq_mgcm.agents.states"):
        processor = WaitkSpeechProcessor(config, loaded=loaded)
        got = words(stream(processor, audio, 1000))
    assert "audio at 16000 Hz, model trained at 8000 Hz: resampling on the fly" in caplog.text
    expected = simuleval_words(processor.agent.args, audio, 80, loaded=loaded)
    assert got == expected and got


@pytest.mark.parametrize("chunk, message", [
    (np.zeros(160, dtype=np.int16), "simulstream chunk: int16 samples; expected float32 in "
                                    "[-1, 1] (simulstream's MessageProcessor converts 16-bit PCM)"),
    (np.zeros((160, 2), dtype=np.float32), "simulstream chunk: shape (160, 2); expected 1-D mono "
                                           "samples"),
])
def test_a_chunk_that_is_not_mono_float_audio_is_refused(chunk: np.ndarray, message: str) -> None:
    processor = WaitkSpeechProcessor(SimpleNamespace(checkpoint="unused.pt"),
                                     loaded=make_loaded(4))
    with pytest.raises(BadValue) as error:
        processor.process_chunk(chunk)
    assert str(error.value) == message


@pytest.mark.parametrize("config, message", [
    ({}, "simulstream config: no 'checkpoint' key (the fairseq checkpoint to serve; "
         "configs/simulstream/waitk.yaml reads it from $MGCM_CHECKPOINT)"),
    ({"checkpoint": "${MGCM_UNSET_FOR_TEST}/c.pt"},
     "simulstream config: checkpoint: ${MGCM_UNSET_FOR_TEST}/c.pt: environment variable "
     "MGCM_UNSET_FOR_TEST is not set"),
    ({"checkpoint": "c.pt", "waitk": "three"},
     "simulstream config: argument --waitk: invalid int value: 'three'"),
    ({"checkpoint": "c.pt", "policy": "wait-if-worse"},
     "simulstream config: argument --policy: invalid choice: 'wait-if-worse' (choose from "
     "'waitk', 'alignatt', 'edatt', 'local-agreement')"),
])
def test_config_errors_are_one_line(config: dict, message: str) -> None:
    with pytest.raises(BadValue) as error:
        agent_args(SimpleNamespace(type="x", speech_chunk_size=0.2, **config))
    assert str(error.value) == message


@pytest.mark.parametrize("size", [0, -0.5, "1s", True])
def test_a_bad_chunk_size_is_one_line(size: object) -> None:
    config = SimpleNamespace(checkpoint="unused.pt", speech_chunk_size=size)
    with pytest.raises(BadValue) as error:
        WaitkSpeechProcessor(config, loaded=make_loaded(4))
    assert str(error.value) == (f"simulstream config: speech_chunk_size: {size!r}; expected "
                                "seconds > 0 (or null: the model's read step)")


def test_without_comet_only_the_quality_scorers_fail_to_import(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """docs/agent.md, "No COMET": simulstream's quality-scorer package loads its COMET module,
    which needs unbabel-comet (numpy < 2, not installed); the latency scorers do not. (A stand-in
    ``comet`` another test may have put in ``sys.modules`` is set aside meanwhile.)"""
    import simulstream.metrics.scorers.latency as latency
    for name in list(sys.modules):
        if name.split(".")[0] == "comet" or name.startswith("simulstream.metrics.scorers.quality"):
            monkeypatch.delitem(sys.modules, name)
    assert "stream_laal" in latency.LATENCY_SCORER_REGISTRY
    with pytest.raises(ModuleNotFoundError, match="No module named 'comet'"):
        import simulstream.metrics.scorers.quality  # noqa: F401


def test_config_keys_become_agent_options(caplog: pytest.LogCaptureFixture,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MGCM_TEST_DATA", "/data/x")
    with caplog.at_level(logging.WARNING, logger="fairseq_mgcm.agents.simulstream_processor"):
        args = agent_args(SimpleNamespace(
            type="x", speech_chunk_size=None, checkpoint="c.pt", data_dir="${MGCM_TEST_DATA}/d",
            waitk=5, max_len_a=0.3, fp16=True, device="cuda", not_an_option=1))
    assert (args.checkpoint, args.data_dir, args.waitk, args.max_len_a, args.max_len_b) == (
        "c.pt", "/data/x/d", 5, 0.3, 10)
    assert (args.fp16, args.device, args.not_an_option) == (True, "cuda", 1)
    assert "'not_an_option' is not an option of the agent: ignored" in caplog.text
    assert not hasattr(args, "type") and not hasattr(args, "speech_chunk_size")


def test_simulstream_inference_with_the_shipped_config(
    shipped: WaitkSpeechProcessor, prepared_tiny: Path, trained_tiny: dict[str, Path],
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """simulstream's offline runner (``python -m simulstream.inference``), in this process, on
    one wav: its metrics log, read back by simulstream's own ``LogReader`` (what its scorers
    read), holds the words our SimulEval loop writes, with one delay each."""
    from simulstream.inference import main
    from simulstream.metrics.logger import METRICS_LOGGER
    from simulstream.metrics.readers import LogReader

    split = prepared_tiny / "simuleval" / "tst-COMMON"
    wav = split / (split / "source.txt").read_text().split()[1]
    wavs = tmp_path / "wavs.txt"
    wavs.write_text(f"{wav}\n")
    monkeypatch.setenv("MGCM_CHECKPOINT", str(trained_tiny["chunk-causal"]))
    monkeypatch.setattr(METRICS_LOGGER, "level", logging.INFO)  # the CLI's basicConfig level
    # an earlier test in this worker may have run a logging config that disables existing
    # loggers (fairseq's and hydra's do) or raised logging's global threshold
    monkeypatch.setattr(METRICS_LOGGER, "disabled", False)
    monkeypatch.setattr(logging.root.manager, "disable", logging.NOTSET)
    log = tmp_path / "metrics.jsonl"
    try:
        main(Namespace(speech_processor_config=str(SHIPPED), wav_list_file=str(wavs),
                       tgt_lang="de", src_lang="en", metrics_log_file=str(log)))
    finally:
        for handler in list(METRICS_LOGGER.handlers):
            handler.close()
            METRICS_LOGGER.removeHandler(handler)
    reader = LogReader(SimpleNamespace(detokenizer_type="simuleval", latency_unit="word"), str(log))
    (output,) = reader.final_outputs_and_latencies().values()
    audio = sf.read(wav, dtype="float32")[0]
    expected = simuleval_words(shipped.agent.args, audio, shipped.agent.read_step_ms)
    assert output.final_text == " ".join(expected)
    assert len(output.ideal_delays) == len(expected)
    assert output.ideal_delays == sorted(output.ideal_delays)
    assert output.ideal_delays[0] < len(audio) / RATE  # the first word before the end


@pytest.mark.parametrize("policy,options", [
    ("alignatt", {"alignatt_frames": 2}), ("local-agreement", {"la_agreement": 2})])
def test_a_policy_from_the_yaml_writes_what_simuleval_writes(
        policy: str, options: dict, utterances: list[np.ndarray]) -> None:
    """``policy:`` and its parameters in the processor's YAML: the same words, call by call in
    total, as the agent with those options under SimulEval's loop."""
    loaded = make_loaded(4)
    config = SimpleNamespace(type="x", speech_chunk_size=None, checkpoint="unused.pt",
                             policy=policy, **options)
    processor = WaitkSpeechProcessor(config, loaded=loaded)
    assert processor.agent.policy_options.name == policy
    step = processor.agent.read_step_ms
    for audio in utterances[:2]:
        processor.clear()
        got = words(stream(processor, audio, chunk=RATE // 10))
        assert got == simuleval_words(agent_args(config), audio, step, loaded=loaded)
