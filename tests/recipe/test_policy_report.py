"""The report (results.md, the BLEU-AL plot, the comparison of methods) with the sweep's
``--policy`` rows: every policy's points under its own knob (``k=5``, ``f=4``, ``alpha=0.4``,
``n=2``), methods compared under each policy, and tables from before policies read as wait-k."""
from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path

import pytest

from fairseq_mgcm.agents.policies import POLICIES
from fairseq_mgcm.recipe import plot
from fairseq_mgcm.recipe.comparison import compare, comparison_markdown
from fairseq_mgcm.recipe.policy_labels import PARAMETER, decoding_name, point_label
from fairseq_mgcm.recipe.result_files import ResultFileError, read_sweep_table
from fairseq_mgcm.recipe.results import collect, markdown_table

NEW_HEADER = ("policy\tvalue\tk\tsegment_size\tBLEU\tAL\tLAAL\tAP\tDAL\tATD\tStartOffset\t"
              "EndOffset\tAL_CA\tn_instances\toutput\n")
OLD_HEADER = ("k\tsegment_size\tBLEU\tAL\tLAAL\tAP\tDAL\tATD\tStartOffset\tEndOffset\tAL_CA\t"
              "output\n")
WORDS = "der die das mann frau hund sieht gibt haus baum rot blau heute und nicht".split()
# (policy, value, folder) in the order the sweep writes them: alignatt before wait-k, so that
# the report's order (wait-k first) is its own doing.
POINTS = [("alignatt", "4", "alignatt_f4_seg160"), ("alignatt", "2", "alignatt_f2_seg160"),
          ("waitk", "3", "k3_seg160"), ("waitk", "inf", "kinf_seg160")]
TRIALS = 200


def _refs(n: int = 40) -> list[str]:
    rng = random.Random(0)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 9))) for _ in range(n)]


def _hyps(refs: list[str], drop: float, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(w for w in r.split() if rng.random() >= drop) or r.split()[0] for r in refs]


def _bleu(method: str, seed: int, policy: str, value: str) -> float:
    """A BLEU that says where it came from: method (none 20, mgcm 30), policy (+5 alignatt),
    value (+1 per unit, 9 for inf) and seed (+0.5 for seed 2)."""
    v = 9.0 if value == "inf" else float(value)
    return {"none": 20.0, "mgcm": 30.0}[method] + 5 * (policy == "alignatt") + v + 0.5 * (seed - 1)


def _run(exp: Path, method: str, seed: int, old: bool = False) -> None:
    """A run folder as scripts/run.sh --seeds leaves it, with the sweep's table in the new
    format (two policies) or the old one (wait-k only, no policy/value columns)."""
    root = exp / method / f"seed{seed}"
    refs = _refs()
    hyps = _hyps(refs, 0.4 if method == "none" else 0.05, seed)
    rows = []
    for policy, value, folder in POINTS:
        if old and policy != "waitk":
            continue
        (root / "simul" / folder).mkdir(parents=True)
        (root / "simul" / folder / "instances.log").write_text("".join(
            json.dumps({"index": i, "prediction": h, "reference": r}) + "\n"
            for i, (h, r) in enumerate(zip(hyps, refs))))
        al = 1000.0 + 100 * (9 if value == "inf" else float(value)) + 10 * seed
        k = value if policy == "waitk" else "nan"
        numbers = (f"{_bleu(method, seed, policy, value)}\t{al}\t{al + 5}\t0.7\t{al + 50}\t1\t1"
                   f"\t1\t{al + 20}")
        rows.append(f"{k}\t160\t{numbers}\t/elsewhere/{folder}\n" if old else
                    f"{policy}\t{value}\t{k}\t160\t{numbers}\t{len(refs)}\t/elsewhere/{folder}\n")
    (root / "simul" / "results.tsv").write_text((OLD_HEADER if old else NEW_HEADER)
                                                + "".join(rows))


@pytest.fixture()
def two_policies(tmp_path: Path) -> Path:
    for method in ("none", "mgcm"):
        for seed in (1, 2):
            _run(tmp_path, method, seed)
    return tmp_path


@pytest.fixture()
def old_tables(tmp_path: Path) -> Path:
    for method in ("none", "mgcm"):
        for seed in (1, 2):
            _run(tmp_path, method, seed, old=True)
    return tmp_path


# ---- 1. the reader -------------------------------------------------------------------------

def test_every_policy_has_a_knob_name_and_labels_read_as_the_papers_write_them():
    assert set(PARAMETER) == set(POLICIES)
    assert [point_label(p, v) for p, v in [("waitk", 5.0), ("alignatt", 4.0), ("edatt", 0.4),
                                           ("local-agreement", 2.0), ("waitk", math.inf)]] == [
        "k=5", "f=4", "alpha=0.4", "n=2", "k=inf"]
    assert [decoding_name(p, v) for p, v in [("waitk", 5.0), ("alignatt", 4.0), ("edatt", 0.4),
                                             ("local-agreement", 2.0), ("waitk", math.inf)]] == [
        "wait-k k=5", "alignatt f=4", "edatt alpha=0.4", "local agreement n=2",
        "agent, full source"]


def test_a_new_table_gives_each_row_its_policy_and_value(two_policies):
    table = read_sweep_table(two_policies / "mgcm" / "seed1" / "simul" / "results.tsv")
    assert table.policies == ["alignatt", "alignatt", "waitk", "waitk"]
    assert [row["value"] for row in table.rows] == [4.0, 2.0, 3.0, math.inf]
    assert math.isnan(table.rows[0]["k"]) and table.rows[2]["k"] == 3.0
    assert table.outputs[0] == "/elsewhere/alignatt_f4_seg160"
    [run] = collect(two_policies, ["mgcm"], [1])
    assert run.simul_policies == table.policies
    assert run.simul_logs[0] == (two_policies / "mgcm" / "seed1" / "simul" / "alignatt_f4_seg160"
                                 / "instances.log")


def test_an_old_table_is_wait_k_with_value_k(old_tables):
    table = read_sweep_table(old_tables / "none" / "seed1" / "simul" / "results.tsv")
    assert table.policies == ["waitk", "waitk"]
    assert [row["value"] for row in table.rows] == [3.0, math.inf] == [
        row["k"] for row in table.rows]


@pytest.mark.parametrize("old,new,message", [
    ("alignatt\t4\t", "wait-k\t4\t", "policy 'wait-k' is not one of waitk, alignatt, edatt, "
                                     "local-agreement"),
    ("alignatt\t4\t", "\t4\t", "policy '' is not one of"),
])
def test_a_policy_the_agent_does_not_have_is_an_error_naming_file_and_line(
        two_policies, old, new, message):
    path = two_policies / "none" / "seed1" / "simul" / "results.tsv"
    path.write_text(path.read_text().replace(old, new, 1))
    with pytest.raises(ResultFileError, match=f"^{re.escape(str(path))}:2: {re.escape(message)}"):
        read_sweep_table(path)


def test_a_non_wait_k_row_without_a_value_column_is_an_error(tmp_path):
    path = tmp_path / "results.tsv"
    path.write_text("policy\tk\tBLEU\toutput\nwaitk\t3\t20.0\tk3\nedatt\tnan\t21.0\tedatt\n")
    with pytest.raises(ResultFileError,
                       match=f"^{re.escape(str(path))}:3: policy edatt needs a value column"):
        read_sweep_table(path)


# ---- 2. results.md -------------------------------------------------------------------------

def _simul_table(markdown: str) -> list[str]:
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| run | policy |"))
    return lines[start:]


def test_results_table_shows_each_policy_under_its_knob_method_then_policy(two_policies):
    table = _simul_table(markdown_table(collect(two_policies, ["none", "mgcm"], [1, 2])))
    assert table[0] == ("| run | policy | parameter | BLEU | AL (ms) | AL_CA (ms) | LAAL (ms) | "
                        "AP | DAL (ms) |")
    assert [" | ".join(line.split(" | ")[:4]) + " |" for line in table[2:]] == [
        "| none seed 1 | waitk | k=3 | 23.00 |", "| none seed 1 | waitk | k=inf | 29.00 |",
        "| none seed 2 | waitk | k=3 | 23.50 |", "| none seed 2 | waitk | k=inf | 29.50 |",
        "| none seed 1 | alignatt | f=4 | 29.00 |", "| none seed 1 | alignatt | f=2 | 27.00 |",
        "| none seed 2 | alignatt | f=4 | 29.50 |", "| none seed 2 | alignatt | f=2 | 27.50 |",
        "| mgcm seed 1 | waitk | k=3 | 33.00 |", "| mgcm seed 1 | waitk | k=inf | 39.00 |",
        "| mgcm seed 2 | waitk | k=3 | 33.50 |", "| mgcm seed 2 | waitk | k=inf | 39.50 |",
        "| mgcm seed 1 | alignatt | f=4 | 39.00 |", "| mgcm seed 1 | alignatt | f=2 | 37.00 |",
        "| mgcm seed 2 | alignatt | f=4 | 39.50 |", "| mgcm seed 2 | alignatt | f=2 | 37.50 |"]
    assert table[6] == "| none seed 1 | alignatt | f=4 | 29.00 | 1410 | 1430 | 1415 | 0.70 | 1460 |"


def test_results_table_of_an_old_run_is_wait_k(old_tables):
    table = _simul_table(markdown_table(collect(old_tables, ["none"], [1])))
    assert table[2:] == ["| none seed 1 | waitk | k=3 | 23.00 | 1310 | 1330 | 1315 | 0.70 | 1360 |",
                         "| none seed 1 | waitk | k=inf | 29.00 | 1910 | 1930 | 1915 | 0.70 | "
                         "1960 |"]


# ---- 3. the BLEU-AL plot -------------------------------------------------------------------

def _drawn(monkeypatch, runs, tmp_path):
    """plot_bleu_al's axes, caught before the figure is saved and closed."""
    caught = []

    def keep(fig, output):
        caught.append(fig.axes[0])
        return Path(output)

    monkeypatch.setattr(plot, "save_png", keep)
    plot.plot_bleu_al(runs, tmp_path / "bleu_al.png")
    return caught[0]


def test_plot_has_a_curve_per_method_and_policy(two_policies, monkeypatch, tmp_path):
    ax = _drawn(monkeypatch, collect(two_policies, ["none", "mgcm"], [1, 2]), tmp_path)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "none, waitk (2 seeds)", "none, alignatt (2 seeds)",
        "mgcm, waitk (2 seeds)", "mgcm, alignatt (2 seeds)"]
    lines = [container.lines[0] for container in ax.containers]
    colours = [line.get_color() for line in lines]
    assert colours[0] == colours[1] != colours[2] == colours[3]  # a colour per method
    styles = [(line.get_linestyle(), line.get_marker()) for line in lines]
    assert styles[0] == styles[2] != styles[1] == styles[3]  # a style per policy
    # seeds averaged per (method, policy, value): mgcm alignatt f=2 at mean AL 1215, BLEU 37.25
    x, y = lines[3].get_data()
    assert list(x) == [1215.0, 1415.0] and list(y) == [37.25, 39.25]
    labels = [a.get_text() for a in ax.texts]
    assert labels == ["k=3", "k=inf", "f=2", "f=4"] * 2


def test_plot_of_old_tables_names_methods_only(old_tables, monkeypatch, tmp_path):
    ax = _drawn(monkeypatch, collect(old_tables, ["none", "mgcm"], [1, 2]), tmp_path)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "none (2 seeds)", "mgcm (2 seeds)"]
    assert [a.get_text() for a in ax.texts] == ["k=3", "k=inf"] * 2


# ---- 4. the comparison -----------------------------------------------------------------------

def test_methods_are_compared_at_every_point_of_every_policy(two_policies):
    comparison = compare(collect(two_policies, ["none", "mgcm"], [1, 2]), "tst-COMMON", TRIALS)
    names = ["wait-k k=3", "agent, full source", "alignatt f=2", "alignatt f=4"]
    assert all(sorted(m.decodings) == sorted(names) for m in comparison.methods)
    assert sorted(comparison.tests) == sorted((n, "mgcm", "none") for n in names)
    gain = comparison.tests[("alignatt f=4", "mgcm", "none")]
    assert gain.seeds == (1, 2) and gain.n_sentences == 2 * 40 and gain.bleu_delta > 10
    text = comparison_markdown(comparison)
    per_decoding = [line.split(" | ")[0][2:] for line in text.splitlines()
                    if line.split(" | ")[1:2] in (["none"], ["mgcm"])]
    assert per_decoding == ["wait-k k=3"] * 2 + ["agent, full source"] * 2 + [
        "alignatt f=2"] * 2 + ["alignatt f=4"] * 2
    tested = [line.split(" | ")[0][2:] for line in text.splitlines() if "mgcm vs. none" in line]
    assert tested == names[:2] + ["alignatt f=2", "alignatt f=4"]


def test_old_tables_keep_their_decoding_names_with_the_policy(old_tables):
    comparison = compare(collect(old_tables, ["none", "mgcm"], [1, 2]), "tst-COMMON", TRIALS)
    assert sorted(comparison.tests) == [("agent, full source", "mgcm", "none"),
                                        ("wait-k k=3", "mgcm", "none")]
