"""Every check on run.sh's settings, made before the recipe writes anything.

A wrong value found hours into a run (a typo in ``--k-list``, a missing overlay file) wastes
the hours before it; so each setting is checked here first, and the first problem stops the
run with one line naming the flag and the value (run.sh exits 2). The checks return the
settings in the types the recipe uses (lists, the defaults that depend on other settings).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from fairseq_mgcm.agents.sweep_points import sweep_points
from fairseq_mgcm.errors import BadValue
from fairseq_mgcm.recipe.budget import BudgetError, check_budget
from fairseq_mgcm.recipe.matrix import run_matrix
from fairseq_mgcm.recipe.options import BadOption, flag
from fairseq_mgcm.recipe.train_flags import BadFlag, Flag, given_flags, read_flags

__all__ = ["INTEGERS", "Settings", "check"]

# Settings that must be non-negative integers (the optional ones may also be empty).
INTEGERS = ("stage", "stop_stage", "corpus_seed", "vocab_size_tgt", "vocab_size_src", "ngpus",
            "nnodes", "node_rank", "master_port", "seed", "n_average", "beam", "jobs")
OPTIONAL_INTEGERS = ("nprocs", "segment_size", "eval_max_instances")
# Integer settings where 0 is accepted by the parser but fails after training.
POSITIVE = {"n_average": "stage 4 averages at least one checkpoint",
            "beam": "stage 5 decodes with at least one hypothesis"}
# Training flags the recipe sets per run: given in a layer, every run would write the same path.
RECIPE_OWNED = ("--save-dir", "--conflict-telemetry-jsonl")
MUSTC_TARGETS = ("de", "es", "fr", "it", "nl", "pt", "ro", "ru")
_INTEGER = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class Settings:
    """The checked settings: every option as text (run.sh's variables) and the lists."""

    values: dict[str, str]
    methods: list[str]
    seeds: list[str]  # --seeds as given, or [--seed]: the runs per method
    k_list: list[str]
    overlays: list[str]
    policies: list[str]

    def int(self, name: str) -> int:
        return int(self.values[name])


def _integer(values: dict[str, str], name: str) -> int:
    if not _INTEGER.fullmatch(values[name]):
        raise BadOption(f"{flag(name)} '{values[name]}': expected a non-negative integer")
    return int(values[name])


def _integers(values: dict[str, str], name: str, count: int | None = None) -> list[str]:
    """A space-separated list of non-negative integers (``count`` of them when given)."""
    words = values[name].split()
    if not words:
        raise BadOption(f"{flag(name)} is empty")
    if count is not None and len(words) != count:
        raise BadOption(f"{flag(name)} '{values[name]}': expected {count} integers")
    for word in words:
        if not _INTEGER.fullmatch(word):
            raise BadOption(f"{flag(name)} '{values[name]}': '{word}' is not an integer")
    return words


def _one_of(values: dict[str, str], name: str, allowed: tuple[str, ...], hint: str) -> None:
    if values[name] not in allowed:
        raise BadOption(f"{flag(name)} {values[name]}: {hint}")


def _file(values: dict[str, str], name: str) -> None:
    if not Path(values[name]).is_file():
        raise BadOption(f"{flag(name)} {values[name]}: no such file")


def _numbers(values: dict[str, str]) -> list[str]:
    """The integer settings, the run counts, the seeds; returns the seed list."""
    for name in INTEGERS:
        _integer(values, name)
    jobs, ngpus = int(values["jobs"]), int(values["ngpus"])
    if jobs < 1:
        raise BadOption(f"--jobs {values['jobs']}: at least one run at a time")
    if jobs != 1 and ngpus != 0:
        raise BadOption(f"--jobs {values['jobs']}: side-by-side runs are for CPU (--ngpus 0); "
                        "on GPUs use --ngpus")
    for name in OPTIONAL_INTEGERS:
        if values[name]:
            _integer(values, name)
    for name, why in POSITIVE.items():
        if int(values[name]) < 1:
            raise BadOption(f"{flag(name)} {values[name]}: must be at least 1 ({why})")
    for word in _integers(values, "k_list"):
        if int(word) < 1:
            raise BadOption(f"--k-list '{values['k_list']}': k {word} must be at least 1 (wait-k "
                            "reads k steps before its first word; 1000 is offline)")
    try:
        sweep_points(values["policies"].split(), [int(k) for k in values["k_list"].split()])
    except BadValue as error:
        raise BadOption(str(error)) from None
    _integers(values, "corpus_sizes", 3)
    if not values["seeds"]:
        return [values["seed"]]
    seeds = _integers(values, "seeds")
    for i, seed in enumerate(seeds):
        if int(seed) in map(int, seeds[:i]):
            raise BadOption(f"--seeds '{values['seeds']}': seed {seed} is repeated "
                            "(each seed is one run per method)")
    return seeds


def _machine(values: dict[str, str]) -> None:
    """Languages, corpus kind, GPUs, processes and nodes; fills in --nprocs."""
    _one_of(values, "corpus", ("mustc", "builtin", "text"), "use mustc, builtin or text")
    _one_of(values, "tgt_lang", MUSTC_TARGETS, "MuST-C v1.0 has " + " ".join(MUSTC_TARGETS))
    _one_of(values, "src_lang", ("en",), "MuST-C v1.0 is English -> X (use en)")
    _one_of(values, "specaugment", ("", "lb", "ld", "sm", "ss"),
            "use lb, ld, sm or ss (fairseq's policies) or leave it empty")
    _one_of(values, "asr_pretrain", ("true", "false"), "use true or false")
    _one_of(values, "longform", ("true", "false"), "use true or false")
    ngpus, nnodes = int(values["ngpus"]), int(values["nnodes"])
    if int(values["node_rank"]) >= nnodes:
        raise BadOption(f"--node-rank {values['node_rank']}: must be below --nnodes {nnodes}")
    if not values["nprocs"]:
        values["nprocs"] = str(ngpus) if ngpus > 0 else "1"
    if ngpus > 0 and int(values["nprocs"]) != ngpus:
        raise BadOption(f"--nprocs {values['nprocs']}: with GPUs there is one process per GPU "
                        f"(--ngpus {ngpus})")
    if nnodes > 1 and ngpus == 0:
        raise BadOption(f"--nnodes {nnodes} needs GPUs (--ngpus)")


def _files(values: dict[str, str]) -> tuple[list[str], list[str]]:
    """The flag files and the corpus; returns the methods and overlays."""
    methods = values["methods"].split()
    if not methods:
        raise BadOption("--methods is empty")
    for method in methods:
        if not Path(f"configs/methods/{method}.args").is_file():
            raise BadOption(f"--methods: no configs/methods/{method}.args for method '{method}'")
    _file(values, "model_args")
    _file(values, "hardware_args")
    if values["asr_pretrain"] == "true":
        _file(values, "asr_args")
    overlays = values["overlays"].split()
    for overlay in overlays:
        if not Path(overlay).is_file():
            raise BadOption(f"--overlays: {overlay}: no such file")
    if values["corpus"] == "mustc":
        root, pair = values["mustc_root"], f"{values['src_lang']}-{values['tgt_lang']}"
        if not root:
            raise BadOption("MUSTC_ROOT is not set: pass --mustc-root /path/to/MUSTC_v1.0 (the "
                            "folder holding en-de/), or --corpus builtin")
        if not Path(root, pair, "data").is_dir():
            raise BadOption(f"--mustc-root {root}: no {pair}/data inside (expected MuST-C v1.0 "
                            "layout; --tgt-lang picks the pair)")
    elif values["corpus"] == "text":
        if not values["src_text"] or not values["tgt_text"]:
            raise BadOption("--corpus text needs --src-text and --tgt-text")
        _file(values, "src_text")
        _file(values, "tgt_text")
        for name in ("dev_text", "test_text"):
            files = values[name].split()
            if values[name] and len(files) != 2:
                raise BadOption(f"{flag(name)} '{values[name]}': expected two files, SRC TGT")
            for path in files:
                if not Path(path).is_file():
                    raise BadOption(f"{flag(name)}: {path}: no such file")
    return methods, overlays


def _runs(values: dict[str, str], stage: int) -> bool:
    return int(values["stage"]) <= stage <= int(values["stop_stage"])


def _output_folder(values: dict[str, str], name: str, written: bool) -> None:
    """``--exp-dir``/``--data-dir``: a folder or one that can be made, writable when ``written``
    (every error here used to surface only when a stage first wrote there)."""
    path = Path(values[name])
    if path.exists() and not path.is_dir():
        raise BadOption(f"{flag(name)} {path}: exists and is not a folder")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise BadOption(f"{flag(name)} {path}: lies below the file {existing}, not a folder")
    if written and not os.access(existing, os.W_OK | os.X_OK):
        what = "the folder" if existing == path else f"{existing}, where it would be made,"
        raise BadOption(f"{flag(name)} {path}: {what} is not writable")


def _run_folders(values: dict[str, str], methods: list[str], seeds: list[str]) -> None:
    """Each run's folder and telemetry path (``<run>/conflict.jsonl``) can be written."""
    runs = run_matrix(Path(values["exp_dir"]), methods, seeds if values["seeds"] else None,
                      values["seed"])
    for run in runs:
        if run.folder.exists() and not run.folder.is_dir():
            raise BadOption(f"--exp-dir: {run.folder} (the folder of run {run.label}) exists "
                            "and is not a folder")
        telemetry = run.folder / "conflict.jsonl"
        if telemetry.is_dir():
            raise BadOption(f"--exp-dir: {telemetry} (the conflict telemetry of run "
                            f"{run.label}) is a folder, not a file")


def _training_flags(values: dict[str, str], methods: list[str], overlays: list[str]
                    ) -> dict[str, list[Flag]]:
    """Each method's training flags in run.sh's order (placeholders for the per-run paths);
    none when a file cannot be read (``configure.check_training_flags``, or with that check
    skipped stage 3 itself, stops the run naming its line)."""
    own = "--save-dir SAVE --conflict-telemetry-jsonl TELEMETRY"
    try:
        given = given_flags(values["train_budget"], own, values["extra_train_args"])
        base = [f for name in ("model_args", "hardware_args")
                for f in read_flags(Path(values[name]))]
        extra = [f for path in overlays for f in read_flags(Path(path))]
        combos = {m: base + read_flags(Path(f"configs/methods/{m}.args")) + extra + given
                  for m in methods}
    except BadFlag:  # a line that cannot be split: the training-flag check names it
        return {}
    for flags in combos.values():
        for item in flags:
            name = item.token.split("=", 1)[0]
            if name in RECIPE_OWNED and item.source != "scripts/run.sh's own flags":
                raise BadOption(f"{item.source}: {name}: the recipe sets it per run (in "
                                "--exp-dir); given here, every run would write the same path")
    return combos


def _budget(values: dict[str, str], methods: list[str], overlays: list[str]) -> None:
    """Training flags that would write over the recipe's per-run paths, and (when stage 4 runs)
    a budget that cannot give it --n-average epoch checkpoints (``budget.py``)."""
    combos = _training_flags(values, methods, overlays)
    if not _runs(values, 4):
        return
    for flags in combos.values():  # the error names the file (or flag) the budget came from
        try:
            check_budget(flags, int(values["n_average"]))
        except BudgetError as error:
            raise BadOption(str(error)) from None


def check(values: dict[str, str]) -> Settings:
    """Check ``values`` (run.sh's settings, as :func:`options.parse` returns them, relative
    paths from the repository root); raise :class:`BadOption` at the first problem."""
    values = dict(values)
    seeds = _numbers(values)
    _machine(values)
    methods, overlays = _files(values)
    _budget(values, methods, overlays)
    values["data_dir"] = values["data_dir"] or f"{values['exp_dir']}/data"
    _output_folder(values, "exp_dir", written=True)  # markers, logs, runs
    _output_folder(values, "data_dir", written=_runs(values, 1))
    _run_folders(values, methods, seeds)
    return Settings(values, methods, seeds, values["k_list"].split(), overlays,
                    values["policies"].split())
