"""run.sh's options: the parser, the recipe-file reader and every check, in process (fast).

The end-to-end wiring (run.sh exits 2 before writing, prints these messages) is checked once
per kind in tests/recipe/test_run_sh.py; the combinations are here.
"""
import logging
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from fairseq_mgcm.recipe.checks import check
from fairseq_mgcm.recipe.configure import corpus_command, shell_assignments
from fairseq_mgcm.recipe.options import OPTIONS, BadOption, help_text, parse

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _at_root(monkeypatch):
    """run.sh works from the repository root; relative config paths resolve from there."""
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("MUSTC_ROOT", raising=False)


def settings(*args: str):
    values = parse(["--corpus", "builtin", *args])
    assert values is not None
    return check(values)


@pytest.mark.parametrize("args, message", [
    (["--stage", "abc"], "--stage 'abc': expected a non-negative integer"),
    (["--ngpus", "two"], "--ngpus 'two': expected a non-negative integer"),
    (["--master-port", "-1"], "--master-port '-1': expected a non-negative integer"),
    (["--nprocs", "x"], "--nprocs 'x': expected a non-negative integer"),
    (["--eval-max-instances", "2.5"], "--eval-max-instances '2.5': expected a non-negative"),
    (["--k-list", "1 x"], "--k-list '1 x': 'x' is not an integer"),
    (["--k-list", " "], "--k-list is empty"),
    (["--corpus-sizes", "10 10"], "--corpus-sizes '10 10': expected 3 integers"),
    (["--seeds", "1 2 1"], "--seeds '1 2 1': seed 1 is repeated (each seed is one run per method)"),
    (["--seeds", "1 01"], "--seeds '1 01': seed 01 is repeated"),
    (["--seeds", "1 two"], "--seeds '1 two': 'two' is not an integer"),
    (["--jobs", "0"], "--jobs 0: at least one run at a time"),
    (["--jobs", "2", "--ngpus", "1"], "--jobs 2: side-by-side runs are for CPU (--ngpus 0)"),
    (["--corpus", "wiki"], "--corpus wiki: use mustc, builtin or text"),
    (["--tgt-lang", "ja"], "--tgt-lang ja: MuST-C v1.0 has de es fr it nl pt ro ru"),
    (["--src-lang", "de"], "--src-lang de: MuST-C v1.0 is English -> X (use en)"),
    (["--specaugment", "xx"], "--specaugment xx: use lb, ld, sm or ss"),
    (["--asr-pretrain", "yes"], "--asr-pretrain yes: use true or false"),
    (["--nnodes", "2", "--node-rank", "2"], "--node-rank 2: must be below --nnodes 2"),
    (["--ngpus", "2", "--nprocs", "1"], "--nprocs 1: with GPUs there is one process per GPU"),
    (["--ngpus", "0", "--nnodes", "2"], "--nnodes 2 needs GPUs (--ngpus)"),
    (["--methods", ""], "--methods is empty"),
    (["--methods", "mgcm fancy"], "--methods: no configs/methods/fancy.args for method 'fancy'"),
    (["--model-args", "configs/model/xl.args"], "--model-args configs/model/xl.args: no such file"),
    (["--hardware-args", "x.args"], "--hardware-args x.args: no such file"),
    (["--asr-pretrain", "true", "--asr-args", "x.args"], "--asr-args x.args: no such file"),
    (["--overlays", "configs/overlays/nope.args"],
     "--overlays: configs/overlays/nope.args: no such file"),
    (["--corpus", "mustc", "--mustc-root", ""], "MUSTC_ROOT is not set"),
    (["--corpus", "mustc", "--mustc-root", "docs"], "--mustc-root docs: no en-de/data inside"),
    (["--corpus", "text"], "--corpus text needs --src-text and --tgt-text"),
    (["--corpus", "text", "--src-text", "nope.en", "--tgt-text", "README.md"],
     "--src-text nope.en: no such file"),
    (["--corpus", "text", "--src-text", "README.md", "--tgt-text", "README.md",
      "--dev-text", "val.en"], "--dev-text 'val.en': expected two files, SRC TGT"),
    (["--corpus", "text", "--src-text", "README.md", "--tgt-text", "README.md",
      "--test-text", "README.md nope.de"], "--test-text: nope.de: no such file"),
    (["--exp-dir", "README.md"], "--exp-dir README.md: exists and is not a folder"),
    # issue 20 item 7: values that used to be accepted and fail after training
    (["--k-list", "3 0 7"], "--k-list '3 0 7': k 0 must be at least 1 (wait-k reads k steps"),
    (["--policies", "waitk alignatt"], "--policies alignatt: give alignatt's f values"),
    (["--policies", "edatt:0.4,2"], "--policies edatt: --edatt-alpha 2.0: must be in (0, 1]"),
    (["--policies", "beam-search"], "--policies beam-search: unknown policy 'beam-search'"),
    (["--n-average", "0"], "--n-average 0: must be at least 1 (stage 4 averages at least one"),
    (["--beam", "0"], "--beam 0: must be at least 1 (stage 5 decodes with at least one"),
    (["--recipe", "configs/recipes/demo.sh", "--extra-train-args", "--max-update 2"],
     "--extra-train-args: --max-update 2 ends training before the end of epoch 3 (every epoch "
     "takes at least one update), so it leaves fewer than the 3 epoch checkpoints stage 4 "
     "averages (--n-average 3); budget in epochs (--max-epoch 3 --max-update 0)"),
    (["--recipe", "configs/recipes/demo.sh", "--train-budget", "--max-epoch 2"],
     "--train-budget: --max-epoch 2 leaves 2, fewer than the 3 epoch checkpoints stage 4 "
     "averages (--n-average 3); raise it to 3, lower --n-average, or stop at --stop-stage 3"),
    (["--extra-train-args", "--max-epoch 12 --save-interval=3"],
     "--extra-train-args: --max-epoch 12 leaves 4 (one per --save-interval 3 epochs), fewer"),
    (["--extra-train-args", "--no-epoch-checkpoints"],
     "--extra-train-args: --no-epoch-checkpoints writes none of the 5 epoch checkpoints"),
    (["--model-args", "configs/model/tiny.args", "--n-average", "4"],
     "configs/model/tiny.args:10: --keep-last-epochs 3 keeps fewer than the 4 epoch checkpoints"),
    (["--extra-train-args", "--max-epoch x"], "--extra-train-args: --max-epoch 'x' is not an int"),
    (["--extra-train-args", "--conflict-telemetry-jsonl t.jsonl"],
     "--extra-train-args: --conflict-telemetry-jsonl: the recipe sets it per run (in --exp-dir)"),
    (["--train-budget", "--save-dir=/tmp/x"], "--train-budget: --save-dir: the recipe sets it"),
    (["--exp-dir", "README.md/exp"], "--exp-dir README.md/exp: lies below the file README.md"),
    (["--data-dir", "README.md"], "--data-dir README.md: exists and is not a folder"),
    (["--data-dir", "docs/recipe.md/data"], "--data-dir docs/recipe.md/data: lies below the file"),
    (["--PATH", "/x"], "unknown option --PATH (see --help)"),
    (["--no-such-flag", "1"], "unknown option --no-such-flag"),
    (["--stage"], "option --stage needs a value"),
    (["stage", "3"], "unexpected argument stage (options are --name value)"),
    (["--recipe", "configs/recipes/nope.sh"], "--recipe configs/recipes/nope.sh: no such file"),
])
def test_each_bad_option_is_named_in_one_line(args, message):
    with pytest.raises(BadOption) as error:
        settings(*args)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_defaults_flags_and_recipes_combine_in_order(tmp_path):
    recipe = tmp_path / "r.sh"
    recipe.write_text("source configs/recipes/demo.sh\n# note\n\nmethods='none  mgcm'  # two\n"
                      'seeds="1 2"\n')
    got = settings("--beam=3", "--recipe", str(recipe), "--k-list", "3 7", "--ngpus", "0")
    assert got.values["beam"] == "1"  # the recipe (demo.sh) came after --beam=3
    assert got.values["k_list"] == "3 7" and got.k_list == ["3", "7"]  # given after it
    assert got.methods == ["none", "mgcm"] and got.seeds == ["1", "2"]
    assert got.values["nprocs"] == "1" and got.values["data_dir"] == "exp/demo/data"
    assert settings("--ngpus", "4").values["nprocs"] == "4"


def test_mustc_root_defaults_to_the_environment(monkeypatch, tmp_path):
    (tmp_path / "en-de" / "data").mkdir(parents=True)
    monkeypatch.setenv("MUSTC_ROOT", str(tmp_path))
    values = parse(["--corpus", "mustc"])
    assert values is not None and check(values).values["mustc_root"] == str(tmp_path)


@pytest.mark.parametrize("line, message", [
    ("vocab_sise=300", "{f}:3: unknown setting 'vocab_sise' (see scripts/run.sh --help)"),
    ("recipe=other.sh", "{f}:3: unknown setting 'recipe'"),
    ("exp_dir=$HOME/x", "{f}:3: 'exp_dir': a recipe file sets plain values (no $ or `)"),
    ("echo hi", "{f}:3: expected 'name=value', got: echo hi"),
    ("a=1 b=2", "{f}:3: expected 'name=value', got: a=1 b=2"),
    ("beam='1", "{f}:3: cannot read the line"),
    ("source nope.sh", "{f}:3: sources nope.sh, no such file"),
])
def test_a_recipe_file_error_names_file_and_line(tmp_path, line, message):
    recipe = tmp_path / "mine.sh"
    recipe.write_text(f"source configs/recipes/demo.sh\n# comment\n{line}\n")
    with pytest.raises(BadOption, match="^" + message.format(f=recipe).replace("(", r"\(")
                       .replace(")", r"\)").replace("$", r"\$")):
        parse(["--recipe", str(recipe)])


def test_every_shipped_recipe_reads_as_bash_would_source_it():
    """The reader agrees with bash on every shipped recipe (quoting, comments, source)."""
    names = [o.name for o in OPTIONS if o.name != "recipe"]
    for recipe in sorted((ROOT / "configs" / "recipes").glob("*.sh")):
        values = parse(["--recipe", str(recipe.relative_to(ROOT))])
        assert values is not None
        script = f"source {shlex.quote(str(recipe))}; " + "; ".join(
            f'printf "%s\\0" "${{{n}-__unset__}}"' for n in names)
        sourced = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True,
                                 text=True, check=True).stdout.split("\0")[:-1]
        for name, value in zip(names, sourced):
            if value != "__unset__":
                assert values[name] == value, (recipe.name, name)


def test_help_lists_every_option_with_its_default_and_comment():
    assert parse(["--stage", "1", "--help"]) is None
    text = help_text("Usage: run.sh")
    assert text.startswith("Usage: run.sh\n\nOptions (default):")
    for option in OPTIONS:
        assert f"--{option.name.replace('_', '-')} " in text and option.comment in text
    assert "  --k-list '1 3 5 7 9 1000'" in text


def test_the_shell_assignments_carry_lists_and_the_run_matrix(tmp_path):
    exp = tmp_path / "my exp"
    got = settings("--exp-dir", str(exp), "--methods", "none mgcm", "--seeds", "1 3",
                   "--k-list", "3 7", "--policies", "waitk alignatt:2,4")
    script = shell_assignments(got) + (
        'printf "%s|" "$exp_dir" "${methods_arr[@]}" "${seed_list[@]}" "${k_arr[@]}" '
        '"${policies_arr[@]}" "${run_dir[mgcm,3]}" "${run_name[none,1]}" "${#run_dir[@]}"')
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.split("|")[:-1] == [str(exp), "none", "mgcm", "1", "3", "3", "7",
                                          "waitk", "alignatt:2,4", f"{exp}/mgcm/seed3",
                                          "none (seed 1)", "4"]


def test_the_corpus_command_holds_out_dev_and_test_only_when_not_given():
    values = settings("--corpus-sizes", "40 5 6", "--exp-dir", "e").values
    assert corpus_command(values) == ["python", "scripts/make_corpus.py", "--out", "e/corpus",
                                      "--tgt-lang", "de", "--n-train", "40", "--n-dev", "5",
                                      "--n-test", "6", "--seed", "1"]
    text = dict(values, corpus="text", src_text="a.en", tgt_text="a.de", dev_text="d.en d.de")
    assert corpus_command(text)[-7:] == ["--tgt-text", "a.de", "--max-sentences", "46",
                                         "--dev-text", "d.en", "d.de"]


def test_a_passed_flag_check_is_remembered_until_a_flag_file_changes(tmp_path, monkeypatch):
    """configure's fairseq parse (about 5 s) runs once per set of flags: the same flags skip
    it, an edited flag file or other extra flags run it again, and a failure is not kept."""
    from fairseq_mgcm.recipe import configure, train_flags

    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("MGCM_CACHE", str(tmp_path / "cache"))
    model = tmp_path / "model.args"
    model.write_text((ROOT / "configs/model/tiny.args").read_text())
    parsed: list[int] = []
    real = train_flags.check_combination
    monkeypatch.setattr(train_flags, "check_combination",
                        lambda flags: parsed.append(len(flags)) or real(flags))

    def settings(*extra: str):
        return check(parse(["--recipe", "configs/recipes/demo.sh", "--model-args", str(model),
                            *extra]))

    disabled = logging.root.manager.disable
    configure.check_training_flags(settings())
    assert len(parsed) == 1  # demo.sh: one method
    assert logging.root.manager.disable == disabled  # fairseq's chatter muted only meanwhile
    configure.check_training_flags(settings())
    assert len(parsed) == 1  # remembered
    configure.check_training_flags(settings("--extra-train-args", "--max-epoch 4"))
    assert len(parsed) == 2
    model.write_text(model.read_text() + "--report-accuracy\n")
    with pytest.raises(train_flags.BadFlag):
        configure.check_training_flags(settings())
    with pytest.raises(train_flags.BadFlag):  # not remembered: checked again, refused again
        configure.check_training_flags(settings())
    assert len(parsed) == 4


@pytest.mark.parametrize("args", [
    ["--recipe", "configs/recipes/demo.sh", "--extra-train-args", "--max-update 2",
     "--stop-stage", "3"],  # training only: no epoch checkpoints needed
    ["--recipe", "configs/recipes/demo.sh", "--extra-train-args", "--max-epoch 3"],
    ["--extra-train-args", "--max-epoch 1", "--n-average", "1"],
    ["--extra-train-args", "--max-epoch 1 --max-epoch 6"],  # the last value counts
    ["--model-args", "configs/model/tiny.args", "--n-average", "3"],
])
def test_budgets_that_give_stage_4_its_checkpoints_pass(args):
    settings(*args)


def test_every_shipped_recipe_passes_the_checks():
    """Budgets included: the paper's 100k updates (configs/model/s.args) too, since how many
    epochs they make is known only once training runs (fairseq_mgcm/recipe/budget.py)."""
    for recipe in sorted((ROOT / "configs" / "recipes").glob("*.sh")):
        values = parse(["--recipe", str(recipe.relative_to(ROOT))])
        assert values is not None
        values["corpus"] = "builtin"  # MuST-C and the Multi30k text are not in the checkout
        assert check(values).values["n_average"] in ("3", "5"), recipe.name


def test_an_exp_dir_that_cannot_be_written_is_refused(tmp_path, monkeypatch):
    """Checked with os.access (the tests may run as root, for whom every folder is writable)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != locked
                        and real(path, mode))
    with pytest.raises(BadOption, match=f"--exp-dir {locked}/exp: {locked}, where it would be "
                       "made, is not writable"):
        settings("--exp-dir", str(locked / "exp"))
    with pytest.raises(BadOption, match=f"--data-dir {locked}: the folder is not writable"):
        settings("--exp-dir", str(tmp_path / "exp"), "--data-dir", str(locked))
    # prepared data that stage 1 does not write may be read-only
    settings("--exp-dir", str(tmp_path / "exp"), "--data-dir", str(locked), "--stage", "2")


def test_a_run_folder_or_telemetry_path_of_the_wrong_kind_is_refused(tmp_path):
    exp = tmp_path / "exp"
    (exp / "mgcm").mkdir(parents=True)
    (exp / "mgcm" / "conflict.jsonl").mkdir()
    with pytest.raises(BadOption, match="conflict.jsonl .the conflict telemetry of run mgcm. is "
                       "a folder, not a file"):
        settings("--exp-dir", str(exp), "--methods", "mgcm")
    (exp / "none").write_text("")
    with pytest.raises(BadOption, match="none .the folder of run none. exists and is not a"):
        settings("--exp-dir", str(exp), "--methods", "none")
