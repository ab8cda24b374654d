"""Every file the report and the plots read is checked (docs/hostile_inputs.md, section
"Results readers"): a torn or edited row is one line naming file and line, exit 2, and neither
results.md nor a plot is written; a torn number is never read as a shorter one."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest
from sacrebleu.metrics.bleu import BLEU

from fairseq_mgcm.recipe.result_files import ResultFileError, match_bleu_line, number
from fairseq_mgcm.recipe.results import collect

REPO = Path(__file__).resolve().parents[2]
HEADER = "k\tsegment_size\tBLEU\tAL\tLAAL\tAP\tDAL\tATD\tStartOffset\tEndOffset\tAL_CA\toutput\n"
HYPS = ["der mann sieht den hund", "die frau liest", "ein kleiner vogel", "wir singen heute"]
REFS = ["der mann sieht den hund", "die frau liest ein buch", "ein kleiner vogel fliegt",
        "wir singen"]


def _bleu_line() -> str:
    return f"Generate tst-COMMON with beam=1: {BLEU().corpus_score(HYPS, [REFS]).format()}\n"


def _run(root: Path) -> Path:
    """A finished run folder, as scripts/run.sh leaves it (real formats)."""
    run = root / "none"
    (run / "simul" / "k3_seg160").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    (run / "generate-tst-COMMON.txt").write_text("".join(
        f"S-{i}\tsrc\nT-{i}\t{r}\nH-{i}\t-0.5\t{h}\nD-{i}\t-0.5\t{h}\nP-{i}\t-0.1 -0.2\n"
        for i, (h, r) in enumerate(zip(HYPS, REFS))) + _bleu_line())
    (run / "offline_bleu.txt").write_text(_bleu_line())
    (run / "simul" / "k3_seg160" / "instances.log").write_text("".join(
        json.dumps({"index": i, "prediction": h, "reference": r}) + "\n"
        for i, (h, r) in enumerate(zip(HYPS, REFS))))
    (run / "simul" / "results.tsv").write_text(
        HEADER + "3\t160\t49.012\t900.5\t905.0\t0.7\t950.0\t1.0\t1.0\t1.0\t920.0\tk3_seg160\n")
    (run / "train_peak.json").write_text(json.dumps({"peak_rss_mb": 812.4, "wall_s": 61.0,
                                                     "cpu_s": 100.0}, indent=1) + "\n")
    (run / "conflict.jsonl").write_text(json.dumps({
        "schema": 2, "method": "none", "first_step": 0, "last_step": 1, "calls": 2,
        "columns": ["module", "kind", "pair", "n", "conflicts", "cos_mean", "cos_n"],
        "rows": [["m", "ffn", "ctc", 2, 1, 0.25, 2]]}) + "\n")
    (run / "checkpoints" / "train.log").write_text(
        "2026 | INFO | dev | epoch 001 | valid on 'dev' subset | loss 9.1 | nll_loss 4.7 | "
        "st_loss 5.2 | ppl 26\n")
    return run


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def _cut(path: Path, tail: int) -> None:
    """Cut the file short by its last ``tail`` bytes (a full disk, an interrupted copy)."""
    data = path.read_bytes()
    path.write_bytes(data[:-tail])


# (case, file in the run folder, damage, its line, message after "<file>:<line>: ")
CASES = [
    ("offline_bleu_torn_number", "offline_bleu.txt",
     lambda p: p.write_text("Generate tst-COMMON with beam=1: BLEU = 49.0x\n"), 1,
     "not fairseq-generate's 'Generate <split> with beam=N: BLEU = ... (BP ...)' line"),
    ("offline_bleu_number_with_junk", "offline_bleu.txt",
     lambda p: _replace(p, "BLEU = ", "BLEU = 4x"), 1, "BLEU '4x"),
    ("offline_bleu_cut_short", "offline_bleu.txt", lambda p: _cut(p, 40), 1,
     "expected one line ending in a newline, found 1 line(s), the last one cut short"),
    ("results_row_cut_short", "simul/results.tsv", lambda p: _cut(p, 54), 2,  # "...\t49.0"
     "the last row has no newline: the table was cut short"),
    ("results_number_torn", "simul/results.tsv", lambda p: _replace(p, "49.012", "49.0x"), 2,
     "BLEU '49.0x' is not a number"),
    ("results_row_short", "simul/results.tsv",
     lambda p: _replace(p, "\t920.0\tk3_seg160\n", "\n"), 2, "10 fields, expected 12"),
    ("results_empty", "simul/results.tsv", lambda p: p.write_text(""), 1,
     "empty file, not a sweep table"),
    ("generate_cut_short", "generate-tst-COMMON.txt",
     lambda p: _replace(p, _bleu_line(), ""), 20, "not fairseq-generate's 'Generate"),
    ("generate_bad_score", "generate-tst-COMMON.txt", lambda p: _replace(p, "D-2\t-0.5", "D-2\tx"),
     14, "score 'x' is not a number"),
    ("generate_item_twice", "generate-tst-COMMON.txt",
     lambda p: _replace(p, "D-3\t", "D-2\t"), 19, "item 2 appears twice"),
    ("instances_torn_line", "simul/k3_seg160/instances.log", lambda p: _cut(p, 10), 4,
     "not a SimulEval instance"),
    ("instances_fractional_index", "simul/k3_seg160/instances.log",
     lambda p: _replace(p, '"index": 1,', '"index": 1.5,'), 2, "index 1.5 is not a non-negative"),
    ("train_peak_torn", "train_peak.json", lambda p: _cut(p, 12), 4, "not JSON"),
    ("train_peak_string", "train_peak.json", lambda p: _replace(p, "812.4", '"812.4x"'), None,
     "peak_rss_mb '812.4x' is not a finite number"),
    ("telemetry_fractional_count", "conflict.jsonl",
     lambda p: _replace(p, '"ctc", 2, 1,', '"ctc", 2.5, 1,'), 1, "n 2.5 is not a count"),
    ("telemetry_count_as_text", "conflict.jsonl",
     lambda p: _replace(p, '"ctc", 2, 1,', '"ctc", "2", 1,'), 1, "n '2' is not a count"),
    ("dev_curve_torn_number", "checkpoints/train.log", lambda p: _replace(p, "4.7 |", "4.7x |"),
     1, "nll_loss '4.7x' is not a number"),
]


def _report_main(monkeypatch, argv: list[str]) -> int:
    """scripts/report_results.py's main, in this process."""
    spec = importlib.util.spec_from_file_location("report_results", REPO / "scripts"
                                                  / "report_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(sys, "argv", ["report_results.py", *argv])
    return module.main()


def test_a_whole_run_is_read_as_written(tmp_path):
    run = _run(tmp_path)
    [result] = collect(tmp_path, ["none"])
    assert result.offline_bleu == round(BLEU().corpus_score(HYPS, [REFS]).score, 2) == 79.19
    assert result.simul[0]["BLEU"] == 49.012 and result.simul[0]["AL_CA"] == 920.0
    assert result.simul_logs == [run / "simul" / "k3_seg160" / "instances.log"]
    assert (result.peak_rss_mb, result.train_cpu_s) == (812.4, 100.0)
    assert result.conflict_rate == {"ctc": 0.5} and result.dev_curve == {1: 4.7}


@pytest.mark.parametrize("case,name,damage,line,message", CASES, ids=[c[0] for c in CASES])
def test_a_damaged_result_file_is_one_line_naming_it_exit_2_nothing_written(
        tmp_path, monkeypatch, capsys, case, name, damage, line, message):
    run = _run(tmp_path)
    damage(run / name)
    code = _report_main(monkeypatch, ["--exp-dir", str(tmp_path), "--methods", "none"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    place = f"{run / name}:{line}" if line else f"{run / name}"
    assert err.strip().splitlines() == [err.strip()]
    assert err.startswith(f"report_results.py: error: {place}: ") and message in err
    assert not (tmp_path / "results.md").exists() and not (tmp_path / "bleu_al.png").exists()


def test_the_same_report_succeeds_on_the_whole_run(tmp_path, monkeypatch, capsys):
    _run(tmp_path)
    assert _report_main(monkeypatch, ["--exp-dir", str(tmp_path), "--methods", "none"]) == 0
    table = (tmp_path / "results.md").read_text()
    assert "| none | waitk | k=3 | 49.01 | 900 | 920 |" in table


@pytest.mark.parametrize("text,value", [("49.012", 49.012), ("-0.5", -0.5), ("1e3", 1000.0),
                                        ("inf", float("inf")), (".5", 0.5)])
def test_numbers_parse_whole(text, value):
    assert number(text, "f:1") == value


@pytest.mark.parametrize("text", ["49.0x", "49.0.1", "", " 49", "4 9", "1_000", "0x10", "--1"])
def test_a_number_with_anything_else_is_refused(text):
    with pytest.raises(ResultFileError, match=r"^f:1: value .* is not a number"):
        number(text, "f:1")


def test_plot_conflicts_refuses_a_fractional_count_and_draws_nothing(tmp_path, capsys):
    run = _run(tmp_path)
    _replace(run / "conflict.jsonl", '"ctc", 2, 1,', '"ctc", 2, 0.5,')
    spec = importlib.util.spec_from_file_location("plot_conflicts", REPO / "scripts"
                                                  / "plot_conflicts.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    png = tmp_path / "conflicts.png"
    assert module.main([str(run / "conflict.jsonl"), str(png)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"plot_conflicts: {run / 'conflict.jsonl'}:1: not a conflict telemetry "
                          f"line (conflicts 0.5 is not a count)")
    assert not png.exists()


@pytest.mark.parametrize("line,bleu", [
    # --scoring sacrebleu (what run.sh uses), as a recipe run wrote it
    ("Generate tst-COMMON with beam=1: BLEU = 2.95 41.6/7.9/1.4/0.4 (BP = 0.806 ratio = 0.822 "
     "hyp_len = 185 ref_len = 225)\n", 2.95),
    # --scoring bleu (fairseq's own scorer)
    ("Generate test with beam=5: BLEU4 = 40.48, 71.2/47.5/33.1/24.0 (BP=1.000, ratio=1.010, "
     "syslen=100, reflen=99)\n", 40.48),
])
def test_both_fairseq_bleu_lines_are_read(line, bleu):
    assert match_bleu_line(line, "f:1") == bleu
