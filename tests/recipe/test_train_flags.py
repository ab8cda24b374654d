"""Every training-flag combination scripts/run.sh can form parses with fairseq-train's parser.

run.sh joins a model base, a hardware overlay, a method (or the ASR pre-training overlay) and
its own flags; the check it runs before stage 0 is the function tested here, so a config that
would fail hours into a recipe fails here and at the recipe's start.
"""
import itertools
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from fairseq_mgcm.recipe.train_flags import BadFlag, Flag, check_combination, read_flags

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
MODELS = sorted((CONFIGS / "model").glob("*.args"))
HARDWARE = sorted((CONFIGS / "hardware").glob("*.args"))
METHODS = sorted((CONFIGS / "methods").glob("*.args"))
OVERLAYS = sorted((CONFIGS / "overlays").glob("*.args"))
RUN_SH_FLAGS = ["--config-yaml", "config.yaml", "--train-subset", "train", "--valid-subset",
                "dev", "--save-dir", "SAVE", "--seed", "1", "--conflict-telemetry-jsonl", "T"]


def test_the_shipped_config_folders_are_not_empty():
    assert MODELS and HARDWARE and METHODS and OVERLAYS


@pytest.mark.parametrize(
    "files", [pytest.param(c, id="+".join(f.stem for f in c))
              for c in itertools.product(MODELS, HARDWARE, METHODS + OVERLAYS)])
def test_every_combination_parses(files):
    flags = [flag for path in files for flag in read_flags(path)]
    check_combination(flags + [Flag(token, "run.sh") for token in RUN_SH_FLAGS])


def test_a_bad_flag_is_named_with_its_file_and_line(tmp_path):
    bad = tmp_path / "bad.args"
    bad.write_text("# a comment line\n--max-tokens 100\n--report-accuracy\n")
    flags = read_flags(MODELS[0]) + read_flags(bad)
    with pytest.raises(BadFlag, match=rf"{bad}:3: --report-accuracy: unrecognized"):
        check_combination(flags)


def test_a_bad_choice_is_named_with_its_file_and_line(tmp_path):
    bad = tmp_path / "method.args"
    bad.write_text("--conflict-method mgmc\n")
    with pytest.raises(BadFlag, match=rf"{bad}:1: --conflict-method: .*invalid choice: 'mgmc'"):
        check_combination(read_flags(MODELS[0]) + read_flags(bad))


def test_the_command_line_exits_2_naming_the_extra_flags():
    run = subprocess.run([sys.executable, "-m", "fairseq_mgcm.recipe.train_flags",
                          "--extra", "--max-updat 3", str(MODELS[0])],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert "--extra-train-args: --max-updat: unrecognized" in run.stderr


def test_print_splits_like_the_check(tmp_path):
    args = tmp_path / "a.args"
    args.write_text("--lr 1e-3  # comment\n--eval-bleu-args '{\"beam\": 1}'\n")
    run = subprocess.run([sys.executable, str(ROOT / "fairseq_mgcm/recipe/train_flags.py"),
                          "--print", "--budget", "--max-epoch 2", str(args)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert shlex.split(run.stdout) == ["--lr", "1e-3", "--eval-bleu-args", '{"beam": 1}',
                                       "--max-epoch", "2"]


def test_print_on_cpu_drops_half_precision_and_says_so(tmp_path):
    args = tmp_path / "a.args"
    args.write_text("--fp16 --lr 1e-3\n--amp\n")
    run = subprocess.run([sys.executable, "-m", "fairseq_mgcm.recipe.train_flags", "--print",
                          "--cpu", "--recipe-flags", "--save-dir 'a b'", str(args)],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert shlex.split(run.stdout) == ["--lr", "1e-3", "--save-dir", "a b"]
    assert "CPU run: dropping --fp16 (half precision runs in fp32 on CPU)" in run.stderr
    assert "CPU run: dropping --amp" in run.stderr
