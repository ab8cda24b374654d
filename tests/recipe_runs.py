"""Running the shipped recipes in tests, and reading what a user reads off a run.

Every recipe in configs/recipes/ runs end to end through its shipped file, once, on a small
budget, in its own test file (tests/test_recipe_<name>.py; xdist hands out whole files, so the
long ones run side by side).

The recipes in configs/recipes/ are what users run. Each run here goes through scripts/run.sh
(the demo through scripts/demo.sh, the README's command) on CPU, overriding only sizes and
budgets (corpus size, vocabulary size, seeds, --extra-train-args, --eval-max-instances), and
is checked for what a user reads off it: BLEU above a floor, the results table equal to sacrebleu
recomputed from the hypothesis files, conflict rates strictly between 0 and 1 for every
auxiliary, auxiliary losses that fall, and a re-run that rewrites nothing. Each run is made once
per test run and shared by the tests that read it (tests/build_once.py); a test that changes a
run works on a copy.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sacrebleu
from docs_commands import command_starting

from fairseq_mgcm.conflict.telemetry import read_windows
from fairseq_mgcm.recipe.hypotheses import read_generate, read_instances

ROOT = Path(__file__).resolve().parents[1]
RUN_SH = ROOT / "scripts" / "run.sh"
DEMO_SH = ROOT / "scripts" / "demo.sh"
README = ROOT / "README.md"
RECIPE_DOC = ROOT / "docs" / "recipe.md"
COMPARISON_DOC = ROOT / "docs" / "comparison.md"
README_RECIPE = "scripts/run.sh --recipe configs/recipes/mustc_s.sh --mustc-root /data/MUSTC_v1.0"
README_COMPARISON = "scripts/run.sh --recipe configs/recipes/compare_grammar.sh"
MULTI30K = "scripts/run.sh --recipe configs/recipes/multi30k.sh"
SMALL = ["--vocab-size-tgt", "120", "--vocab-size-src", "100", "--eval-max-instances", "2"]
BUDGET = "--max-epoch 1 --max-tokens 4000"  # epoch checkpoints, for stage 4 to average

def _env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", MGCM_VENV=sys.prefix,
                PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
                PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")


def run_recipe(*args: str, timeout: int = 1500, script: Path = RUN_SH
               ) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(script), *args], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=timeout)


def recipe_run(folder: Path, *args: str, script: Path = RUN_SH) -> Path:
    """Run a recipe into ``folder/exp`` for a ``build_once`` fixture; its stderr goes to
    ``folder/run.log``. Returns the experiment folder."""
    exp = folder / "exp"
    run = run_recipe(*args, "--exp-dir", str(exp), script=script, timeout=1800)
    (folder / "run.log").write_text(run.stderr)
    assert run.returncode == 0, run.stderr[-4000:]
    return exp


def readme_command(prefix: str) -> list[str]:
    """A README command as written, without the script (run_recipe adds it)."""
    words = command_starting(README, prefix)
    assert words[0] == "scripts/run.sh"
    return words[1:]


def snapshot(folder: Path) -> dict[str, int]:
    """Modification time of every file under ``folder`` (markers included)."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns
            for p in folder.rglob("*") if p.is_file()}


# ---------------------------------------------------------------------------------------------
# what a user reads off a run
# ---------------------------------------------------------------------------------------------


def table_rows(results_md: Path, section: str = "## Runs") -> list[list[str]]:
    """The cells of every table row under ``section`` of ``results.md`` (up to the next ``## ``
    heading; header and rule rows left out)."""
    text = results_md.read_text(encoding="utf-8")
    body = text.split(section + "\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in body.splitlines():
        if line.startswith("|") and not line.startswith("|---") and not line.startswith("| run "):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def sacrebleu_bleu(hypotheses: dict[int, str], references: dict[int, str]) -> float:
    order = sorted(hypotheses)
    return sacrebleu.corpus_bleu([hypotheses[i] for i in order],
                                 [[references[i] for i in order]]).score


def assert_table_equals_recomputed(exp: Path, run: str, label: str, test_set: str) -> None:
    """``results.md``'s offline BLEU and every k's BLEU of ``run`` (a folder under ``exp``,
    labelled ``label`` in the table) equal sacrebleu recomputed from the hypothesis files."""
    rows = table_rows(exp / "results.md")
    offline = read_generate(exp / run / f"generate-{test_set}.txt")
    [offline_row] = [r for r in rows if r[0] == label and len(r) == 5]
    assert float(offline_row[1]) == pytest.approx(
        sacrebleu_bleu(offline.hypotheses, offline.references), abs=0.006)
    simul = sorted((exp / run / "simul").glob("*_seg*/instances.log"))
    assert simul, f"no SimulEval runs under {exp / run / 'simul'}"
    for log in simul:
        policy, parameter = _policy_point(log.parent.name)
        [row] = [r for r in rows if r[:3] == [label, policy, parameter]]
        instances = read_instances(log)
        assert float(row[3]) == pytest.approx(
            sacrebleu_bleu(instances.hypotheses, instances.references), abs=0.006), log


_RUN_FOLDER = re.compile(r"(?:(?P<k>k)|(?P<policy>alignatt|edatt|local-agreement)_(?P<knob>[fan]))"
                         r"(?P<value>[0-9.]+)_seg\d+")
_KNOB = {"f": "f", "a": "alpha", "n": "n"}


def _policy_point(folder: str) -> tuple[str, str]:
    """The results.md policy and parameter of a sweep run folder (``k3_seg160`` -> waitk,
    k=3; ``edatt_a0.1_seg160`` -> edatt, alpha=0.1)."""
    match = _RUN_FOLDER.fullmatch(folder)
    assert match, f"not a sweep run folder: {folder}"
    if match["k"]:
        return "waitk", f"k={match['value']}"
    return match["policy"], f"{_KNOB[match['knob']]}={match['value']}"


def conflict_rates(telemetry: Path) -> dict[str, float]:
    """Per task pair, the share of (update, module) checks that conflicted."""
    conflicts: dict[str, int] = {}
    checks: dict[str, int] = {}
    for window in read_windows(telemetry):
        for tally in window.modules:
            conflicts[tally.pair] = conflicts.get(tally.pair, 0) + tally.conflicts
            checks[tally.pair] = checks.get(tally.pair, 0) + tally.n
    return {pair: conflicts[pair] / checks[pair] for pair in checks}


def assert_conflicts_seen_and_not_everywhere(telemetry: Path, auxiliaries: set[str]) -> None:
    rates = conflict_rates(telemetry)
    assert auxiliaries <= set(rates), rates
    for pair in auxiliaries:
        assert 0 < rates[pair] < 1, f"{telemetry}: conflict rate {pair} {rates[pair]}"


_EPOCH = re.compile(r"\| train \| epoch (\d+) \|(.*)")


def epoch_losses(train_log: Path, task: str) -> list[float]:
    """``<task>_loss`` of each training epoch's summary line in fairseq's log."""
    losses = []
    for line in train_log.read_text(encoding="utf-8").splitlines():
        found = _EPOCH.search(line)
        if found:
            value = re.search(rf"\b{task}_loss[ =]([0-9.]+)", found.group(2))
            assert value, line
            losses.append(float(value.group(1)))
    return losses


def assert_losses_fall(train_log: Path, tasks: tuple[str, ...]) -> None:
    for task in tasks:
        losses = epoch_losses(train_log, task)
        assert len(losses) >= 2 and losses[-1] < losses[0], f"{train_log}: {task} {losses}"


