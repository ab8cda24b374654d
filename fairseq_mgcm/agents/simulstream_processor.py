"""simulstream 1.0 speech processor for our wait-k checkpoints (docs/agent.md, "simulstream").

simulstream's server and its offline runner (``simulstream_inference``) build a processor from
a YAML file (``configs/simulstream/waitk.yaml``), hand it float32 chunks in [-1, 1] at 16 kHz
(their ``MessageProcessor`` converts the client's 16-bit PCM and resamples other rates), call
``end_of_stream()`` when the client says so, and ``clear()`` before the next stream. This one
drives :class:`~fairseq_mgcm.agents.waitk_agent.WaitkAgent` through SimulEval's own
``push``/``pop``, so it translates exactly as the agent does under SimulEval.

Why native rather than simulstream's ``SimulEvalWrapper`` (which runs the same agent too,
``tests/agents/test_simulstream_wrapper.py``):

- **The words do not depend on the client's chunks.** The wrapper calls the policy once per
  chunk, and the policy predicts over every encoder state it has, so a client sending 0.5 s
  chunks gets other words than one sending 0.1 s chunks. Here the audio is cut into the model's
  read steps (``pre_decision_ratio`` encoder states), and the agent sees exactly what SimulEval
  gives it with ``--source-segment-size`` equal to the read step: the same words as our
  SimulEval evaluation, whatever ``speech_chunk_size`` is.
- **End of stream, as SimulEval ends a source.** The audio short of a read step goes to the
  agent as the last, finished segment (the wrapper sends it unfinished, then marks the states
  finished with no audio), so the end of a stream, one that stops mid-word included, is
  translated as our SimulEval evaluation translates it: the word in progress and the rest.
- **The agent's own options and checks.** The YAML keys are parsed by the agent's argparse
  options, defaults included (types and choices checked, an error is one line naming the key
  instead of exiting the server; the wrapper needs every option spelled out in the YAML);
  ``device`` is the config's, where the wrapper takes CUDA whenever it exists. ``load_model``
  loads the checkpoint once, before the server's pool of processors shares it.
- **Sample rate.** simulstream always passes 16 kHz; a model trained at another rate gets the
  agent's streaming resampler (``resample.py``, equal to resampling the whole stream, with a
  warning), as under SimulEval. A chunk that is not 1-D float audio is refused in one line.

Strings in the YAML may name environment variables (``checkpoint: ${MGCM_CHECKPOINT}``): the
server and the runner take no overrides, so the shipped file reads the checkpoint from one.
"""
from __future__ import annotations

import logging
import math
import os
import re
from argparse import ArgumentParser, Namespace
from pathlib import Path
from types import SimpleNamespace
from typing import NoReturn

import numpy as np
from simuleval.data.segments import SpeechSegment
from simulstream.server.speech_processors import SAMPLE_RATE, SpeechProcessor
from simulstream.server.speech_processors.incremental_output import IncrementalOutput

from fairseq_mgcm.agents.checkpoint import LoadedModel, load_model_cached
from fairseq_mgcm.agents.waitk_agent import WaitkAgent
from fairseq_mgcm.errors import BadValue

logger = logging.getLogger(__name__)

# YAML keys that are simulstream's (``type``, ``speech_chunk_size``), not the agent's options.
SIMULSTREAM_KEYS = ("type", "speech_chunk_size")
_VARIABLE = re.compile(r"\$\{?(\w+)\}?")


class _ConfigParser(ArgumentParser):
    """The agent's options; a bad value raises instead of exiting the server."""

    def error(self, message: str) -> NoReturn:
        raise BadValue(f"simulstream config: {message}")


def _expanded(key: str, value: object) -> str:
    """``value`` as a command-line word, environment variables expanded; an unset one is an
    error naming it (a path like ``${MGCM_CHECKPOINT}`` would otherwise be a missing file)."""
    text = os.path.expandvars(str(value))
    unset = _VARIABLE.search(text)
    if unset:
        raise BadValue(f"simulstream config: {key}: {value}: environment variable "
                       f"{unset.group(1)} is not set")
    return text


def agent_args(config: SimpleNamespace) -> Namespace:
    """The agent's Namespace from the processor's YAML: every key but simulstream's becomes the
    agent option of that name (``max_len_a`` is ``--max-len-a``), parsed by its own parser with
    SimulEval's ``--device``/``--fp16``/``--dtype``; a key no option has is kept, with a warning
    (the agent ignores it)."""
    if not getattr(config, "checkpoint", None):
        raise BadValue("simulstream config: no 'checkpoint' key (the fairseq checkpoint to "
                       "serve; configs/simulstream/waitk.yaml reads it from $MGCM_CHECKPOINT)")
    parser = _ConfigParser(add_help=False, allow_abbrev=False)
    WaitkAgent.add_args(parser)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--fp16", action="store_true")
    parser.add_argument("--dtype", choices=["fp16", "fp32"], default=None)
    keys = {k: v for k, v in vars(config).items() if k not in SIMULSTREAM_KEYS}
    argv: list[str] = []
    for key, value in keys.items():
        if value is None or value is False:
            continue  # the option's default / a flag left off
        flag = "--" + key.replace("_", "-")
        argv += [flag] if value is True else [flag, _expanded(key, value)]
    args, _ = parser.parse_known_args(argv)
    for key in keys.keys() - vars(args).keys():
        logger.warning("simulstream config: '%s' is not an option of the agent: ignored", key)
        setattr(args, key, keys[key])
    return args


class WaitkSpeechProcessor(SpeechProcessor):
    """Audio chunks in, German words out: our wait-k agent, one read step at a time."""

    def __init__(self, config: SimpleNamespace, loaded: LoadedModel | None = None) -> None:
        """Build the agent from ``config`` (or on an already ``loaded`` model, as tests do).

        ``speech_chunk_size`` (seconds, how much audio simulstream buffers per call) defaults to
        the model's read step; any size gives the same words.
        """
        super().__init__(config)
        self.agent = WaitkAgent(agent_args(config), loaded=loaded)
        step_ms = self.agent.read_step_ms
        size = getattr(config, "speech_chunk_size", None)
        if size is None:
            config.speech_chunk_size = step_ms / 1000
        elif isinstance(size, bool) or not isinstance(size, int | float) or size <= 0:
            raise BadValue(f"simulstream config: speech_chunk_size: {size!r}; expected seconds "
                           "> 0 (or null: the model's read step)")
        # Samples per read step, as SimulEval cuts a --source-segment-size of step_ms.
        self.step = math.ceil(step_ms / 1000 * SAMPLE_RATE)
        self.clear()

    @classmethod
    def load_model(cls, config: SimpleNamespace) -> None:
        """Load the checkpoint before the pool's processors are built: each of them then gets
        the same model from ``load_model_cached`` (the decoding state is per processor)."""
        args = agent_args(config)
        load_model_cached(Path(args.checkpoint), args.data_dir, args.config_yaml,
                          device=args.device, fp16=args.fp16 or args.dtype == "fp16")

    def clear(self) -> None:
        """Forget the stream: the agent's states (features, encoder, decoder, words) and the
        audio short of a read step."""
        self.agent.reset()
        self.pending = np.zeros(0, dtype=np.float32)
        self.emitted = False
        self.ended = False

    def process_chunk(self, waveform: np.ndarray) -> IncrementalOutput:
        """Append ``waveform`` (float32 in [-1, 1], 16 kHz); run the agent on every whole read
        step buffered; return the words it wrote."""
        if self.ended:  # simulstream's MessageProcessor clears itself; a direct caller may not
            self.clear()
        self.pending = np.concatenate([self.pending, _mono_float(waveform)])
        words: list[str] = []
        n_steps = len(self.pending) // self.step
        for i in range(n_steps):
            words += self._run(self.pending[i * self.step : (i + 1) * self.step], False)
        self.pending = self.pending[n_steps * self.step :]
        return self._output(words)

    def end_of_stream(self) -> IncrementalOutput:
        """The audio short of a read step as the last, finished segment: the agent writes the
        rest of the translation, the word in progress included."""
        words = [] if self.ended else self._run(self.pending, True)
        self.pending = np.zeros(0, dtype=np.float32)
        self.ended = True
        return self._output(words)

    def _run(self, samples: np.ndarray, finished: bool) -> list[str]:
        # A list: SimulEval's states do `source += content`, which numpy would broadcast
        # (ValueError). 0.2 ms per read step; the long-form agent drops what it has read.
        self.agent.push(SpeechSegment(content=samples.tolist(), sample_rate=SAMPLE_RATE,
                                      finished=finished))
        segment = self.agent.pop()
        return str(segment.content).split() if not segment.is_empty else []

    def _output(self, words: list[str]) -> IncrementalOutput:
        """Words are never taken back; ``new_string`` starts with a space after earlier words,
        so a client can append it as it is (as simulstream's wrapper does)."""
        text = self.tokens_to_string(words)
        if text and self.emitted:
            text = " " + text
        self.emitted = self.emitted or bool(words)
        return IncrementalOutput(new_tokens=words, new_string=text, deleted_tokens=[],
                                 deleted_string="")

    def tokens_to_string(self, tokens: list[str]) -> str:
        return " ".join(tokens)

    def set_source_language(self, language: str) -> None:
        """The model hears English only: nothing to set."""

    def set_target_language(self, language: str) -> None:
        """A checkpoint translates into its training language only: the request is logged."""
        logger.info("target language %r requested: this model translates into its training "
                    "language only", language)


def _mono_float(waveform: np.ndarray) -> np.ndarray:
    """``waveform`` as 1-D float32, or a one-line error: simulstream passes mono float32."""
    samples = np.asarray(waveform)
    if samples.ndim != 1:
        raise BadValue(f"simulstream chunk: shape {samples.shape}; expected 1-D mono samples")
    if not np.issubdtype(samples.dtype, np.floating):
        raise BadValue(f"simulstream chunk: {samples.dtype} samples; expected float32 in [-1, 1] "
                       "(simulstream's MessageProcessor converts 16-bit PCM)")
    return samples.astype(np.float32, copy=False)
