"""Check training flag files against fairseq-train's own parser before any work starts.

``scripts/run.sh`` builds each training command from several ``.args`` files (a model base, a
hardware overlay, a method, optional overlays such as ASR pre-training) plus its own flags.
A typo in one of them would otherwise surface only when that stage starts, hours into a run.
This module parses every combination the recipe will form with fairseq's parser (the plugin
registered, so our task, model, criterion and optimizer options count) and reports the first
bad flag with the file and line it came from.

Usage::

    python -m fairseq_mgcm.recipe.train_flags [--budget F] [--recipe-flags F] [--extra F] COMBO...
    python -m fairseq_mgcm.recipe.train_flags --print [--cpu] [--budget F] [--recipe-flags F]
        [--extra F] COMBO

where each ``COMBO`` is a comma-separated list of ``.args`` files, in the order run.sh joins
them. Exits 0 when all parse, 2 with ``FILE:LINE: message`` otherwise. ``--print`` writes the
combination's tokens as shell words (run.sh reads them with ``eval "flags=($words)"`` after a
plain assignment, so a failure here stops the recipe), so the recipe and this check split the
files the same way; with ``--cpu`` it drops half-precision flags, saying so on stderr.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["HALF_PRECISION", "BadFlag", "Flag", "check_combination", "given_flags", "read_flags",
           "without_half_precision"]

PLUGIN_DIR = Path(__file__).resolve().parents[1]
# On CPU a GPU config's half precision runs in fp32: fp16 matrix products are ~50x slower than
# fp32 on the CPUs this was measured on, and fairseq's FP16Optimizer needs a CUDA device.
HALF_PRECISION = ("--fp16", "--bf16", "--amp", "--memory-efficient-fp16", "--memory-efficient-bf16")


@dataclass(frozen=True)
class Flag:
    """One token of a flag file and where it came from."""

    token: str
    source: str  # "FILE:LINE", or a description for flags given on the command line


class BadFlag(Exception):
    """A flag fairseq-train would refuse; ``str()`` names the file and line."""


def read_flags(path: Path) -> list[Flag]:
    """The tokens of an ``.args`` file: flags and values, several per line, ``#`` comments."""
    if not path.is_file():
        raise BadFlag(f"{path}: no such flag file")
    flags: list[Flag] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError as error:
            raise BadFlag(f"{path}:{number}: cannot split the line into flags ({error})") from None
        flags.extend(Flag(token, f"{path}:{number}") for token in tokens)
    return flags


def check_combination(flags: list[Flag]) -> None:
    """Parse ``flags`` as ``fairseq-train DATA --user-dir fairseq_mgcm FLAGS``; raise
    :class:`BadFlag` naming the source of the first flag the parser refuses."""
    from fairseq_mgcm.fast_start import defer_unused_imports

    defer_unused_imports()  # before fairseq's first import in this process (configure.py)
    from fairseq import options

    import fairseq_mgcm

    fairseq_mgcm.register()  # before fairseq builds its parser

    tokens = [flag.token for flag in flags]
    argv = ["DATA", "--user-dir", str(PLUGIN_DIR), *tokens]
    parser = options.get_training_parser()
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            _, unknown = options.parse_args_and_arch(parser, input_args=argv, parse_known=True)
    except SystemExit:
        message = stderr.getvalue().strip().splitlines()
        reason = message[-1] if message else "rejected"
        raise BadFlag(_locate(reason, flags)) from None
    if unknown:
        raise BadFlag(_locate(f"unrecognized argument {unknown[0]}", flags, unknown[0]))


def _locate(reason: str, flags: list[Flag], token: str | None = None) -> str:
    """``SOURCE: reason`` for the flag the parser named (or the first flag ``reason`` quotes)."""
    reason = reason.split("error: ", 1)[-1]
    candidates = [token] if token else [f.token for f in flags if f.token in reason]
    for flag in flags:
        if flag.token in candidates or (token is None and flag.token.startswith("--")
                                        and f"{flag.token} " in reason + " "):
            return f"{flag.source}: {flag.token}: {reason}"
    files = ", ".join(sorted({f.source.split(":")[0] for f in flags}))
    return f"training flags ({files}): {reason}"


def given_flags(budget: str, recipe_flags: str, extra: str) -> list[Flag]:
    """The flags run.sh adds after the files, each named by where it came from."""
    groups = [(budget, "--train-budget"), (recipe_flags, "scripts/run.sh's own flags"),
              (extra, "--extra-train-args")]
    return [Flag(token, source) for text, source in groups for token in _split(text, source)]


def without_half_precision(flags: list[Flag]) -> tuple[list[Flag], list[str]]:
    """``flags`` without half-precision switches (for CPU runs), and the ones dropped."""
    kept = [flag for flag in flags if flag.token not in HALF_PRECISION]
    return kept, [flag.token for flag in flags if flag.token in HALF_PRECISION]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", default="", help="the recipe's --train-budget flags")
    parser.add_argument("--recipe-flags", default="", help="the flags run.sh itself adds")
    parser.add_argument("--extra", default="", help="--extra-train-args, appended last")
    parser.add_argument("--print", action="store_true",
                        help="print the tokens of each combination (shell words), do not check")
    parser.add_argument("--cpu", action="store_true", help="--print: drop half precision")
    parser.add_argument("combos", nargs="+",
                        help="comma-separated .args files, one combination ('' for none)")
    args = parser.parse_args(argv)
    try:
        given = given_flags(args.budget, args.recipe_flags, args.extra)
        for combo in args.combos:
            flags = [flag for name in combo.split(",") if name for flag in read_flags(Path(name))]
            if args.print:
                kept, dropped = without_half_precision(flags + given) if args.cpu else (
                    flags + given, [])
                for token in dropped:
                    print(f"CPU run: dropping {token} (half precision runs in fp32 on CPU)",
                          file=sys.stderr)
                print(shlex.join(flag.token for flag in kept))
            else:
                check_combination(flags + given)
    except BadFlag as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def _split(text: str, source: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as error:
        raise BadFlag(f"{source}: cannot split {text!r} into flags ({error})") from None


if __name__ == "__main__":
    sys.exit(main())
