"""Run SimulEval 1.1.4's own evaluation inside this process, as ``simuleval`` would in a new one.

Why: a sweep evaluates one checkpoint at many k and segment sizes. A ``simuleval`` process per
run imports fairseq and loads the model every time, which costs more than evaluating a small
test set. Here every run goes through the functions ``simuleval.cli`` calls
(``build_system_args``, then ``build_evaluator`` and the evaluator itself) with the flags the
command line would get, so a run writes the same ``instances.log``; only the model is shared
(``load_model_cached``), each run still builds a fresh agent with fresh states.

SimulEval reads its flags from ``sys.argv`` (``check_argument``, ``general_parser``), so the
run's flags are put there while the agent and the evaluator are built, and restored after; the
system list that ``@entrypoint`` and ``--agent-class`` add to is restored too. Flags that make
``simuleval`` do something other than evaluate our agent (serve it, submit to slurm, score
only, another agent) cannot be honoured here and are refused by ``check_extra_flags``.

Usage::

    evaluate(["--agent-class", AGENT_CLASS, "--source", "source.txt", "--target", "target.txt",
              "--checkpoint", "checkpoint.pt", "--waitk", "3", "--output", "out"])
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

from simuleval import options
from simuleval.evaluator import build_evaluator
from simuleval.utils.agent import EVALUATION_SYSTEM_LIST, build_system_args

AGENT_CLASS = "fairseq_mgcm.agents.waitk_agent.WaitkAgent"

# SimulEval's flags (argparse destinations) that run something else than one evaluation of the
# agent here: what ``simuleval.cli.main`` does instead, and which flag of ours to use.
_OTHER_MODES = {
    "remote_eval": "evaluates a remote agent",
    "standalone": "serves the agent",
    "slurm": "submits a slurm job",
    "score_only": "only scores an existing log (the sweep scores every run itself)",
    "agent": "loads another agent file",
    "agent_class": "evaluates another agent class",
    "system_dir": "loads another system",
}
# Destinations the sweep sets from its own options: a second value would make the run differ
# from what its done marker records.
_SWEEP_OWNED = {
    "source": "--data-dir/--split",
    "target": "--data-dir/--split",
    "source_segment_size": "--segment-size",
    "waitk": "--k",
    "policy": "--policies",
    "alignatt_frames": "--policies alignatt:F,...",
    "edatt_alpha": "--policies edatt:ALPHA,...",
    "la_agreement": "--policies local-agreement:N,...",
    "checkpoint": "--checkpoint",
    "data_dir": "--data-dir",
    "config_yaml": "--config-yaml",
    "device": "--device",
    "fp16": "--fp16",
    "dtype": "--fp16",
    "end_index": "--max-instances",
    "output": "--output-dir",
}


class FlagError(ValueError):
    """A flag SimulEval or the agent rejects, or one this in-process path cannot honour."""


class _RaisingParser(argparse.ArgumentParser):
    """SimulEval's parser, raising instead of printing usage and exiting the whole sweep."""

    def error(self, message: str) -> NoReturn:
        raise FlagError(message)


@contextmanager
def _simuleval_argv(argv: list[str]) -> Iterator[None]:
    """``sys.argv`` as the ``simuleval`` command with ``argv``, for SimulEval's flag look-ups."""
    saved_argv, saved_systems = sys.argv, list(EVALUATION_SYSTEM_LIST)
    sys.argv = ["simuleval", *argv]
    try:
        yield
    finally:
        sys.argv = saved_argv
        EVALUATION_SYSTEM_LIST[:] = saved_systems


def _full_parser(argv: list[str]) -> argparse.ArgumentParser:
    """Every flag ``simuleval`` accepts with ``argv``: SimulEval's groups and the agent's own."""
    from fairseq_mgcm.agents.waitk_agent import WaitkAgent  # imports fairseq: only when needed

    parser = _RaisingParser(add_help=False, conflict_handler="resolve")
    with _simuleval_argv(argv):
        options.general_parser(None, parser)
        options.add_evaluator_args(parser)
        options.add_scorer_args(parser, argv)
        options.add_slurm_args(parser)
        options.add_dataloader_args(parser, argv)
    WaitkAgent.add_args(parser)
    return parser


def check_extra_flags(base: list[str], extra: list[str]) -> None:
    """Refuse ``extra`` flags (added to a run's ``base`` flags) that SimulEval or the agent does
    not know, that this in-process path cannot honour, or that the sweep already sets.

    What each extra flag changes is found by parsing with and without it, so abbreviations
    and ``--flag=value`` forms are judged by what they do, as argparse reads them.
    """
    if any(word in ("-h", "--help") for word in extra):
        raise FlagError("--help: run `simuleval --agent-class "
                        f"{AGENT_CLASS} --help` for SimulEval's and the agent's flags")
    try:
        parser = _full_parser(base + extra)
        without, _ = parser.parse_known_args(base)
        with_extra, unknown = parser.parse_known_args(base + extra)
    # ValueError covers FlagError; RuntimeError: an unknown metric; the rest: a dataloader
    except (ValueError, RuntimeError, KeyError, ImportError, AttributeError) as error:
        raise FlagError(f"SimulEval rejects {' '.join(extra)}: {error}") from None
    if unknown:
        raise FlagError(f"unknown to SimulEval and the agent: {' '.join(unknown)}")
    changed = [name for name, value in vars(with_extra).items()
               if getattr(without, name, None) != value]
    for name in changed:
        if name in _OTHER_MODES:
            raise FlagError(
                f"--{name.replace('_', '-')} {_OTHER_MODES[name]}; the sweep evaluates "
                f"{AGENT_CLASS} in its own process and cannot honour it"
            )
        if name in _SWEEP_OWNED:
            raise FlagError(
                f"--{name.replace('_', '-')} is set by the sweep; use its {_SWEEP_OWNED[name]}"
            )


def evaluate(argv: list[str]) -> None:
    """One SimulEval evaluation with ``argv`` (``simuleval``'s flags), in this process."""
    with _simuleval_argv(argv):
        system, args = build_system_args()
        evaluator = build_evaluator(args)
    evaluator(system)
