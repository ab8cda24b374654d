"""run.sh's first step: read its arguments, check them all, and hand the settings back.

Usage (scripts/run.sh does this, then ``eval "$settings"``)::

    settings=$(python -m fairseq_mgcm.recipe.configure ARGS...) || exit $?

Prints shell assignments: every option (``name=value``), the lists (``methods_arr``,
``k_arr``, ``overlays_arr``, ``seed_list``) and the run matrix (``run_dir[method,seed]``,
``run_name[method,seed]``). Before printing, every training-flag combination the recipe will
form is parsed by fairseq-train's own parser (``train_flags``), so a wrong flag stops the run
before it writes anything. A bad option or flag prints one line and exits 2; ``--help`` prints
code that shows the help and exits 0. Runs started by the ``--jobs`` scheduler skip the flag
check (``MGCM_RECIPE_FLAGS_CHECKED=1``): their parent checked the same flags.

The check builds fairseq's parser (about 5 s, fairseq's import), so a combination that passed
is remembered in ``$MGCM_CACHE`` (default ``~/.cache/fairseq-mgcm``) under a hash of what decides
the answer: the flag files' bytes, the other flags, the plugin's source and fairseq's version.
A re-run with the same flags skips it; any change to them checks again. Failures are never
remembered.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shlex
import sys
import time
from pathlib import Path

from fairseq_mgcm.recipe.checks import Settings, check
from fairseq_mgcm.recipe.matrix import run_matrix
from fairseq_mgcm.recipe.options import BadOption, help_text, parse

__all__ = ["corpus_command", "corpus_inputs", "main", "shell_assignments"]

RUN_SH = Path(__file__).resolve().parents[2] / "scripts" / "run.sh"
FLAGS_CHECKED = "MGCM_RECIPE_FLAGS_CHECKED"


def log_error(message: str) -> None:
    """One line on stderr in run.sh's log format."""
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} (run.sh) ERROR: {message}", file=sys.stderr)


def _array(name: str, words: list[str]) -> str:
    return f"{name}=({' '.join(shlex.quote(w) for w in words)})"


def corpus_command(values: dict[str, str]) -> list[str]:
    """Stage 0's command: scripts/make_corpus.py for ``--corpus builtin`` or ``text`` (for text,
    enough sentences for train plus the dev and test sets held out of it)."""
    n_train, n_dev, n_test = values["corpus_sizes"].split()
    command = ["python", "scripts/make_corpus.py", "--out", f"{values['exp_dir']}/corpus",
               "--tgt-lang", values["tgt_lang"], "--n-train", n_train, "--n-dev", n_dev,
               "--n-test", n_test, "--seed", values["corpus_seed"]]
    if values["corpus"] == "text":
        held_out = (0 if values["dev_text"] else int(n_dev)) + (
            0 if values["test_text"] else int(n_test))
        command += ["--src-text", values["src_text"], "--tgt-text", values["tgt_text"],
                    "--max-sentences", str(int(n_train) + held_out)]
        for name in ("dev_text", "test_text"):
            if values[name]:
                command += [f"--{name.replace('_', '-')}", *values[name].split()]
    return command


def corpus_inputs(values: dict[str, str]) -> list[str]:
    """The files stage 0 reads (``--corpus text``): their content keys its marker."""
    if values["corpus"] != "text":
        return []
    return [values["src_text"], values["tgt_text"], *values["dev_text"].split(),
            *values["test_text"].split()]


def shell_assignments(settings: Settings) -> str:
    """The settings as bash code for run.sh to ``eval``."""
    lines = [f"{name}={shlex.quote(value)}" for name, value in settings.values.items()]
    lines += [_array("methods_arr", settings.methods), _array("k_arr", settings.k_list),
              _array("policies_arr", settings.policies),
              _array("overlays_arr", settings.overlays), _array("seed_list", settings.seeds),
              _array("corpus_cmd", corpus_command(settings.values)),
              _array("corpus_inputs", corpus_inputs(settings.values))]
    runs = run_matrix(Path(settings.values["exp_dir"]), settings.methods,
                      settings.seeds if settings.values["seeds"] else None,
                      settings.values["seed"])
    dirs = " ".join(f"[{shlex.quote(f'{r.method},{r.seed}')}]={shlex.quote(str(r.folder))}"
                    for r in runs)
    names = " ".join(f"[{shlex.quote(f'{r.method},{r.seed}')}]={shlex.quote(r.label)}"
                     for r in runs)
    lines.append(f"declare -A run_dir=({dirs}) run_name=({names})")
    return "\n".join(lines) + "\n"


PLUGIN = Path(__file__).resolve().parents[1]


def _checked_marker(combos: list[list[Path]], given: list[str]) -> Path:
    """Where a passed check of these combinations is remembered (see the module docstring)."""
    from importlib.metadata import version

    digest = hashlib.sha256(version("fairseq-fixed").encode())
    for combo in combos:
        for path in combo:
            digest.update(b"\0file\0" + path.read_bytes())
        digest.update(b"\0combo\0")
    digest.update("\0".join(given).encode())
    for source in sorted(PLUGIN.rglob("*.py")):
        digest.update(b"\0" + str(source.relative_to(PLUGIN)).encode() + b"\0")
        digest.update(source.read_bytes())
    cache = Path(os.environ.get("MGCM_CACHE") or Path.home() / ".cache" / "fairseq-mgcm")
    return cache / "checked-flags" / digest.hexdigest()


def check_training_flags(settings: Settings) -> None:
    """Parse every combination of training flags the recipe will form (raises BadFlag),
    unless the same combinations passed before."""
    from fairseq_mgcm.atomic_files import write_text
    from fairseq_mgcm.recipe.train_flags import check_combination, given_flags, read_flags

    v = settings.values
    overlays = [Path(f) for f in settings.overlays]
    combos = [[Path(v["model_args"]), Path(v["hardware_args"]),
               Path(f"configs/methods/{m}.args"), *overlays] for m in settings.methods]
    if v["asr_pretrain"] == "true":
        combos.append([Path(v["model_args"]), Path(v["hardware_args"]), Path(v["asr_args"])])
    # What the recipe itself adds (placeholders for paths), so a clash with it shows up too.
    own = ("--config-yaml config.yaml --train-subset train --valid-subset dev --save-dir SAVE "
           f"--seed {v['seed']} --conflict-telemetry-jsonl TELEMETRY"
           + (" --cpu" if v["ngpus"] == "0" else ""))
    given = given_flags(v["train_budget"], own, v["extra_train_args"])
    marker = _checked_marker(combos, [flag.token for flag in given])
    if marker.is_file():
        return
    disabled = logging.root.manager.disable
    logging.disable(logging.INFO)  # fairseq's registry chatter; errors still show
    try:
        for combo in combos:
            check_combination([flag for path in combo for flag in read_flags(path)] + given)
    finally:
        logging.disable(disabled)  # a caller in this process (a test) keeps its logging
    try:
        write_text(marker, "passed\n")
    except OSError:  # a read-only cache only costs the next run the check
        pass


def main(argv: list[str] | None = None) -> int:
    from fairseq_mgcm.recipe.train_flags import BadFlag

    try:
        values = parse(sys.argv[1:] if argv is None else argv)
        if values is None:
            header = RUN_SH.read_text(encoding="utf-8").split("\nset -euo", 1)[0]
            text = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#")
                             for line in header.splitlines()[1:])
            print(f"printf '%s\\n' {shlex.quote(help_text(text))}; exit 0")
            return 0
        settings = check(values)
    except BadOption as error:
        log_error(str(error))
        return 2
    if os.environ.get(FLAGS_CHECKED) != "1":
        try:
            check_training_flags(settings)
        except BadFlag as error:
            print(f"error: {error}", file=sys.stderr)
            log_error("fix the training flags above (nothing was run)")
            return 2
    print(shell_assignments(settings), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
