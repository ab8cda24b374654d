"""scripts/run.sh's options: the one table of defaults, the command line and recipe files.

Every option is a ``--flag`` of run.sh (underscores become dashes) and a setting a recipe file
(``configs/recipes/*.sh``) may assign. Keeping the table here, next to the code that reads it,
means ``--help``, the parser and the recipe-file reader can never disagree about the names.

A recipe file is ``name=value`` lines in shell quoting (no ``$`` expansion), ``#`` comments and
``source OTHER`` lines; it is read where ``--recipe`` stands, so later flags override it. Any
other line, or an unknown name, stops the run with ``FILE:LINE: ...``.
"""
from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

__all__ = ["OPTIONS", "BadOption", "Option", "defaults", "flag", "help_text", "parse",
           "read_recipe"]


class BadOption(Exception):
    """A wrong option or setting; ``str()`` is the one-line message (run.sh exits 2)."""


@dataclass(frozen=True)
class Option:
    name: str
    default: str
    comment: str


OPTIONS: tuple[Option, ...] = (
    Option("stage", "0", "first stage to run"),
    Option("stop_stage", "100", "last stage to run"),
    Option("recipe", "", "file of settings below, read where it stands (configs/recipes/)"),
    Option("corpus", "mustc", "mustc | builtin (the grammar corpus) | text (--src/tgt-text)"),
    Option("mustc_root", "$MUSTC_ROOT", "MuST-C v1.0 root (holds en-de/ ...); for corpus=mustc"),
    Option("src_lang", "en", "MuST-C v1.0 is English -> X"),
    Option("tgt_lang", "de", "de es fr it nl pt ro ru: reads (or makes) en-<tgt_lang>/"),
    Option("src_text", "", "corpus=text: English side, line-aligned with --tgt-text"),
    Option("tgt_text", "", "corpus=text: target side"),
    Option("dev_text", "", 'corpus=text: "SRC TGT" files for dev (default: held out of text)'),
    Option("test_text", "", 'corpus=text: "SRC TGT" files for tst-COMMON (e.g. an official test)'),
    Option("corpus_sizes", "2000 100 100", "corpus=builtin|text: train dev tst-COMMON sizes"),
    Option("corpus_seed", "1", "seed of the corpus maker"),
    Option("exp_dir", "exp/mustc_s", "everything this run writes"),
    Option("data_dir", "", "prepared data (default: $exp_dir/data)"),
    Option("vocab_size_tgt", "8000", "SentencePiece vocabulary of the target"),
    Option("vocab_size_src", "5000", "SentencePiece vocabulary of the transcript"),
    Option("specaugment", "", "lb | ld | sm | ss: fairseq's SpecAugment policy on train splits"),
    Option("model_args", "configs/model/s.args", "model, losses, optimiser, schedule"),
    Option("hardware_args", "configs/hardware/1gpu.args", "batch size, precision, workers"),
    Option("train_budget", "", 'e.g. "--max-epoch 12" (the recipes\' budgets)'),
    Option("extra_train_args", "", 'flags appended after all others, e.g. "--max-update 2"'),
    Option("methods", "none mgcm pcgrad discard", "each has configs/methods/<method>.args"),
    Option("overlays", "", ".args files joined after the method's (e.g. configs/overlays/mt.args)"),
    Option("asr_pretrain", "false", "true: stage 2, the encoder of every method starts from it"),
    Option("asr_args", "configs/overlays/asr_pretrain.args", "stage 2's overlay"),
    Option("ngpus", "1", "GPUs per node; 0 trains on CPU"),
    Option("nprocs", "", "training processes per node (default: ngpus, or 1 on CPU)"),
    Option("nnodes", "1", ">1: multi-node through torchrun"),
    Option("node_rank", "0", "this node's rank"),
    Option("master_addr", "localhost", "torchrun's rendezvous host"),
    Option("master_port", "29500", "torchrun's rendezvous port"),
    Option("seed", "1", "the seed of the single run per method (without --seeds)"),
    Option("seeds", "", 'e.g. "1 2 3": every method once per seed, in <method>/seed<N>/'),
    Option("jobs", "1", "CPU: runs side by side (stages 3-6), each on nproc/jobs threads"),
    Option("n_average", "5", "stage 4 averages the last N checkpoints"),
    Option("test_set", "tst-COMMON", "split evaluated in stages 5 and 6"),
    Option("beam", "5", "stage 5's beam"),
    Option("k_list", "1 3 5 7 9 1000", "wait-k values for the simultaneous sweep (1000 = offline)"),
    Option("policies", "waitk", "policies for the sweep: waitk (the --k-list), alignatt:F,..., "
           "edatt:ALPHA,..., local-agreement:N,... (agent.md)"),
    Option("segment_size", "", "ms of audio SimulEval sends per read (default: model's read step)"),
    Option("eval_max_instances", "", "evaluate only the first N instances (quick checks)"),
    Option("longform", "false", "true: stage 6 also streams every test talk whole (longform.md)"),
    Option("agent_device", "", "cpu | cuda (default: cuda when ngpus > 0)"),
)
_NAMES = {option.name for option in OPTIONS}


def flag(name: str) -> str:
    """The command-line flag of a setting: ``vocab_size_tgt`` -> ``--vocab-size-tgt``."""
    return "--" + name.replace("_", "-")


def defaults() -> dict[str, str]:
    """Every setting at its default (``mustc_root`` from the environment's MUSTC_ROOT)."""
    values = {option.name: option.default for option in OPTIONS}
    values["mustc_root"] = os.environ.get("MUSTC_ROOT", "")
    return values


def help_text(header: str = "") -> str:
    """``header`` (run.sh's opening comment) and every option with its default and comment."""
    lines = []
    for o in OPTIONS:
        left = f"  {flag(o.name)} {shlex.quote(o.default) if o.default else chr(39) * 2}"
        lines.append(f"{left:<40} {o.comment}" if len(left) < 40
                     else f"{left}\n{'':<40} {o.comment}")
    return (header.rstrip() + "\n\n" if header else "") + "Options (default):\n" + "\n".join(lines)


_ASSIGNMENT = re.compile(r"([a-z_]+)=(.*)", re.S)


def read_recipe(path: Path, values: dict[str, str], seen: tuple[Path, ...] = ()) -> None:
    """Apply a recipe file's settings to ``values``; raise :class:`BadOption` naming FILE:LINE
    at the first line that is not a comment, ``source FILE`` or ``known_name=value``."""
    if not path.is_file():
        raise BadOption(f"--recipe {path}: no such file")
    if path.resolve() in seen:
        raise BadOption(f"--recipe {path}: sources itself")
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        where = f"{path}:{number}"
        try:
            words = shlex.split(line, comments=True)
        except ValueError as error:
            raise BadOption(f"{where}: cannot read the line ({error}): {line}") from None
        if not words:
            continue
        if words[0] == "source" and len(words) == 2:
            if not Path(words[1]).is_file():
                raise BadOption(f"{where}: sources {words[1]}, no such file")
            read_recipe(Path(words[1]), values, (*seen, path.resolve()))
            continue
        match = _ASSIGNMENT.fullmatch(words[0])
        if len(words) != 1 or not match:
            raise BadOption(f"{where}: expected 'name=value', got: {line}")
        name, value = match.groups()
        if "$" in value or "`" in value:
            raise BadOption(f"{where}: '{name}': a recipe file sets plain values (no $ or `)")
        if name not in _NAMES or name == "recipe":
            raise BadOption(f"{where}: unknown setting '{name}' (see scripts/run.sh --help)")
        values[name] = value


def parse(argv: list[str]) -> dict[str, str] | None:
    """The settings from run.sh's arguments (``--name value`` or ``--name=value``, recipes read
    in place); None when ``--help`` was asked for."""
    values = defaults()
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg in ("--help", "-h"):
            return None
        if not arg.startswith("--"):
            raise BadOption(f"unexpected argument {arg} (options are --name value)")
        if "=" in arg:
            arg, value = arg.split("=", 1)
            args.insert(0, value)
        name = arg[2:].replace("-", "_")
        if name not in _NAMES:
            raise BadOption(f"unknown option {arg} (see --help)")
        if not args:
            raise BadOption(f"option {arg} needs a value")
        value = args.pop(0)
        if name == "recipe":
            read_recipe(Path(value), values)
        else:
            values[name] = value
    return values
