"""Wait-k simultaneous speech translation agent for SimulEval 1.1.4.

Usage (a checkpoint trained with ``--task speech_to_text_multitask``)::

    simuleval --agent-class fairseq_mgcm.agents.waitk_agent.WaitkAgent \\
        --source data/simuleval/tst-COMMON/source.txt \\
        --target data/simuleval/tst-COMMON/target.txt \\
        --checkpoint exp/st/checkpoint_best.pt --waitk 5 --source-segment-size 320 \\
        --output exp/st/simul_k5 [--data-dir data] [--device cuda --fp16] [--computation-aware]

(``--agent fairseq_mgcm/agents/waitk_agent.py`` works too.) SimulEval calls :meth:`policy` once
per source chunk; the call that sees the last chunk (``source_finished``) is the last call for the
sentence and returns the rest of the translation with ``finished=True``.

The default policy is wait-k at the model's pre-decision granularity: target token i (0-based) is
written once ``(k + i) * r`` encoder states exist (r = ``model.pre_decision_ratio``), or once the
source has ended. ``--policy alignatt|edatt|local-agreement`` decides on the same checkpoint from
one decoder layer's encoder attention or from the agreement of consecutive hypotheses
(``policies.py``); the encoder and decoder caches are kept under every policy. Tokens are chosen
greedily. SentencePiece pieces are assembled into words and a word
is written only when complete, because SimulEval charges every word the delay of the write that
carries it. Multi-channel wavs are down-mixed to mono with a warning, as in data preparation
(``mono_source.py``).

With ``--longform`` the source is a whole talk (docs/longform.md): an end-of-sentence before the
end of the source closes the current sentence and the agent goes on with the next one on the
audio that follows (``longform.py``); without it, such a prediction is taken back and the agent
reads on, as the model was trained on single sentences.
"""
from __future__ import annotations

import logging
from argparse import ArgumentParser, Namespace
from pathlib import Path

from simuleval.agents import ReadAction, SpeechToTextAgent, WriteAction
from simuleval.agents.actions import Action
from simuleval.utils import entrypoint

from fairseq_mgcm.agents import mono_source  # noqa: F401  SimulEval reads wavs as mono
from fairseq_mgcm.agents.checkpoint import LoadedModel, load_model_cached
from fairseq_mgcm.agents.longform import LongformPolicy, ms_to_states
from fairseq_mgcm.agents.policies import POLICIES, PolicyOptions, agreed_prefix
from fairseq_mgcm.agents.read_step import FRAME_SHIFT_MS, read_step_ms
from fairseq_mgcm.agents.source_check import check_source_list
from fairseq_mgcm.agents.states import WaitkStates
from fairseq_mgcm.errors import BadValue, install_excepthook

logger = logging.getLogger("fairseq_mgcm.agents.waitk")
# `simuleval --agent-class ...WaitkAgent` runs SimulEval's main, which calls the agent: a
# UserError from it (bad checkpoint, data config, wav, flag) prints one line, no traceback.
install_excepthook()
_POLICY = PolicyOptions()  # the flags' defaults


@entrypoint
class WaitkAgent(SpeechToTextAgent):
    """Reads audio chunks, writes German words: the wait-k rule over a streaming encoder."""

    def __init__(self, args: Namespace, loaded: LoadedModel | None = None) -> None:
        """Load ``args.checkpoint`` (or use an already ``loaded`` model, as tests do).

        The model comes from ``load_model_cached``: a sweep that builds one agent per k and
        segment size in one process loads the checkpoint once; every agent gets fresh states.
        """
        if args.waitk is not None and args.waitk < 1:
            raise BadValue(f"--waitk {args.waitk}: must be >= 1 (read steps before the first "
                           "write; a k beyond the source length is offline)")
        self._check_sources(args)  # before the model loads: a bad wav costs nothing
        if loaded is None:
            loaded = load_model_cached(
                Path(args.checkpoint), args.data_dir, args.config_yaml, device=args.device,
                fp16=args.fp16 or args.dtype == "fp16",
            )  # fmt: skip
        self.loaded = loaded
        model = self.loaded.model
        self.lagging = args.waitk if args.waitk is not None else self._training_lagging()
        if self.lagging < 1:
            raise BadValue(f"--waitk must be >= 1, got {self.lagging}")
        self.ratio = int(model.pre_decision_ratio)
        self.read_step_ms = read_step_ms(model)
        self.max_len_a = args.max_len_a
        self.max_len_b = args.max_len_b
        self.longform = LongformPolicy.from_args(args)
        self.policy_options = PolicyOptions.from_args(args)
        n_layers = len(model.decoder.layers)
        self.attention_layer = (self.policy_options.layer(n_layers)
                                if self.policy_options.reads_attention else None)
        logger.info(
            "%s: k=%d, %d encoder states (%d ms) per read step", self.policy_options.describe(),
            self.lagging, self.ratio, self.read_step_ms,
        )  # fmt: skip
        self._check_segment_size(getattr(args, "source_segment_size", None))  # SimulEval's flag
        super().__init__(args)

    def _check_segment_size(self, segment_ms: int | None) -> None:
        """Warn when SimulEval's segments are far below the read step (its default is 1 ms).

        Such calls are cheap (no prediction without a new read step) but numerous; the read
        step is the natural segment: the policy decides once per read step.
        """
        if segment_ms is not None and 4 * segment_ms < self.read_step_ms:
            logger.warning(
                "--source-segment-size %d ms is far below the model's read step of %d ms: the "
                "agent is called %d times per decision; pass --source-segment-size %d",
                segment_ms, self.read_step_ms, self.read_step_ms // max(segment_ms, 1),
                self.read_step_ms,
            )  # fmt: skip

    @staticmethod
    def _check_sources(args: Namespace) -> None:
        """Every wav SimulEval will read exists and is audio (``source_check.py``), before the
        first instance; only for SimulEval's own file-list dataloader."""
        source = getattr(args, "source", None)
        if source is None or getattr(args, "dataloader", None) is not None:
            return
        end = getattr(args, "end_index", -1)
        check_source_list(source, getattr(args, "start_index", 0), None if end < 0 else end,
                          scoring=not getattr(args, "no_scoring", False))

    def _training_lagging(self) -> int:
        k = self.loaded.model.decoder.waitk_lagging
        if k is None:
            raise BadValue("the checkpoint was trained offline (no wait-k); pass --waitk")
        return int(k)

    def build_states(self) -> WaitkStates:
        return WaitkStates(self.loaded, self.longform, self.attention_layer)

    @staticmethod
    def add_args(parser: ArgumentParser) -> None:
        parser.add_argument("--checkpoint", type=str, required=True, help="fairseq checkpoint")
        parser.add_argument(
            "--data-dir", type=str, default=None,
            help="prepared data directory (config, CMVN, dictionaries); default: the "
            "checkpoint's --data",
        )  # fmt: skip
        parser.add_argument(
            "--config-yaml", type=str, default=None,
            help="data config file name in --data-dir; default: the checkpoint's",
        )  # fmt: skip
        parser.add_argument(
            "--waitk", type=int, default=None, help="lagging k in read steps; default: training k"
        )
        parser.add_argument(
            "--max-len-a", type=float, default=0.2,
            help="at most a * (fbank frames so far) + b target tokens (runaway guard)",
        )  # fmt: skip
        parser.add_argument("--max-len-b", type=int, default=10, help="see --max-len-a")
        parser.add_argument(
            "--policy", choices=POLICIES, default=_POLICY.name,
            help="when to write: wait-k (--waitk), AlignAtt (--alignatt-frames), EDAtt "
            "(--edatt-frames, --edatt-alpha) or local agreement (--la-agreement)",
        )  # fmt: skip
        parser.add_argument(
            "--attention-layer", type=int, default=None,
            help="alignatt/edatt: the decoder layer (0-based) whose encoder attention decides; "
            "default: two thirds up the stack",
        )  # fmt: skip
        parser.add_argument(
            "--alignatt-frames", type=int, default=_POLICY.alignatt_frames,
            help="alignatt: no write while the most attended encoder state is among the last f",
        )  # fmt: skip
        parser.add_argument(
            "--edatt-frames", type=int, default=_POLICY.edatt_frames,
            help="edatt: lambda, the last encoder states whose attention is summed",
        )  # fmt: skip
        parser.add_argument(
            "--edatt-alpha", type=float, default=_POLICY.edatt_alpha,
            help="edatt: write while the attention on the last lambda states is below alpha",
        )  # fmt: skip
        parser.add_argument(
            "--la-agreement", type=int, default=_POLICY.agreement,
            help="local-agreement: write the prefix the last n hypotheses (one per read step) "
            "agree on",
        )  # fmt: skip
        LongformPolicy.add_args(parser)

    def to(self, device: str, *args: object, fp16: bool = False, **kwargs: object) -> None:
        """Move the model (SimulEval calls this with ``--device``/``--fp16`` after building).

        SimulEval passes the device and precision the model was just loaded with, so for a
        model shared through ``load_model_cached`` this changes nothing.
        """
        model = self.loaded.model
        model.to(device)
        if fp16:
            model.half()
        else:
            model.float()
        self.states.reset()

    # ---------------------------------------------------------------- policy

    def frames_needed(self, i: int) -> int:
        """Encoder states that target token i may read: ``(k + i) * r``."""
        return (self.lagging + i) * self.ratio

    def max_target_tokens(self) -> int:
        """Runaway guard, as fairseq's ``max_len_a * src_len + max_len_b``, on the prefix."""
        n = int(self.max_len_a * self.states.encoder.n_input_frames + self.max_len_b)
        return min(n, self.loaded.model.decoder.max_positions() - 1)

    def may_write(self) -> bool:
        """Whether to predict the next token i. Wait-k: once (k + i) * r encoder states exist;
        AlignAtt and EDAtt: once the sentence has states and, after a refusal, more of them
        (their rule then decides on the prediction's attention).

        After an end of sentence before the end of the source, not until one more read step
        has arrived (``states.retry_at``): on the same states greedy decoding would end it
        again, so a call without a new read step costs no prediction, whatever the segment size.
        """
        states = self.states
        i = states.decoder.n_written
        if self.policy_options.reads_attention:
            needed = max(1, states.retry_at)
            if states.encoder.n_frames <= states.refused_at:
                return False
        else:
            needed = max(self.frames_needed(i), states.retry_at)
        return states.sentence_states >= needed and i < self.max_target_tokens()

    def policy(self, states: WaitkStates | None = None) -> Action:
        """One decision: read, or write the words that became complete (SimulEval calls it as
        ``policy()``, simulstream's SimulEval bridge as ``policy(agent.states)``)."""
        if states is not None:
            self.states = states
        states = self.states
        states.encode_new_source()
        words: list[str] = []
        if self.longform is not None and not states.source_finished:
            words += self._cut_overlong_sentence()
            states.close_sentence_at_pause()
        pieces: list[str] = []
        finished = False
        while True:
            # the source of this sentence has ended: the talk's, or a pause (--longform)
            closed = states.sentence_closed
            if closed and states.sentence_states <= 0:  # no (more) audio: nothing to translate
                if states.source_finished:
                    finished = True
                    break
                states.start_next_sentence(states.encoder.n_frames)
                continue
            if not closed and self.policy_options.name == "local-agreement":
                pieces += self._agreed_pieces()
                break  # read
            if not closed and not self.may_write():
                break  # read
            if states.decoder.n_written >= self.max_target_tokens():
                token = states.decoder.eos  # runaway guard at the end of the source
            else:
                token = states.predict_next()
            if (not closed and token != states.decoder.eos and self.policy_options.reads_attention
                    and not self.policy_options.writes(states.decoder.attention)):
                states.refuse()  # the rule says the token needs more audio: read
                break
            if token != states.decoder.eos:
                pieces.append(states.commit(token))
            elif states.source_finished:
                finished = True
                break
            elif self.longform is not None:
                # this sentence of the talk ends here; the next starts on the audio that follows
                words += states.words.push(pieces) + states.words.flush()
                pieces = []
                states.start_next_sentence(states.encoder.n_frames if closed
                                           else self._boundary())
            else:
                states.take_back(wait_states=self.ratio)  # early end of sentence: read on
                break
        words += states.words.push(pieces)
        if finished:
            words += states.words.flush()
            return WriteAction(" ".join(words), finished=True)
        if words:
            return WriteAction(" ".join(words), finished=False)
        return ReadAction()

    def _agreed_pieces(self) -> list[str]:
        """Local agreement, once per read step: decode the whole hypothesis on the states so
        far and write what the last n hypotheses agree on beyond the written tokens."""
        states = self.states
        if states.sentence_states <= 0 or states.encoder.n_frames <= states.hypothesis_at:
            return []
        states.hypothesis_at = states.encoder.n_frames
        states.hypotheses.append(states.hypothesis(self.max_target_tokens()))
        n = self.policy_options.agreement
        del states.hypotheses[:-n]
        if len(states.hypotheses) < n:
            return []
        pieces = []
        for token in agreed_prefix(states.hypotheses)[states.decoder.n_written:]:
            states.predict_next()  # extends the caches to this position
            pieces.append(states.commit(token))
        return pieces

    # ---------------------------------------------------------------- long-form

    def _boundary(self) -> int:
        """Encoder state where the next sentence starts: the end of the last pause in the audio
        the decoder read in its last k + 1 read steps, else where it ended this sentence
        (``longform.py``)."""
        assert self.longform is not None
        states = self.states
        per_state = states.fbank_frames_per_state
        end = states.encoder.n_frames * per_state  # fbank frames of the stream read so far
        start = end - self.frames_needed(1) * per_state
        min_pause = -(-self.longform.min_pause_ms // FRAME_SHIFT_MS)
        pause_end = states.tail.last_pause_end(max(start, states.context_states * per_state),
                                               end, min_pause)
        if pause_end is None:
            return states.encoder.n_frames
        return pause_end // per_state

    def _cut_overlong_sentence(self) -> list[str]:
        """A sentence longer than ``--max-sentence-ms`` (no end of sentence came: a long
        silence, a run-on) ends here; its last k read steps, not yet translated, start the next
        one. Returns the words this writes."""
        assert self.longform is not None
        states = self.states
        limit = ms_to_states(self.longform.max_sentence_ms, states.fbank_frames_per_state)
        if states.sentence_states <= limit:
            return []
        words = states.words.flush()
        keep = self.frames_needed(0)
        states.start_next_sentence(max(states.context_states, states.encoder.n_frames - keep))
        return words
