"""Stage 7's long-form table (beside the segmented one) and BLEU-StreamLAAL plot, from run
folders as the recipe leaves them."""
from __future__ import annotations

from pathlib import Path

import pytest

from fairseq_mgcm.longform.report import longform_markdown, plot_bleu_stream_laal
from fairseq_mgcm.recipe.result_files import ResultFileError
from fairseq_mgcm.recipe.results import collect

SEGMENTED = "k\tsegment_size\tBLEU\tAL\tAL_CA\toutput\n"
LONGFORM = ("k\tsegment_size\tBLEU\tchrF\tStreamLAAL\tStreamLAAL_CA\tn_talks\tn_sentences\t"
            "hyp_words\tref_words\toutput\n")


def _run(root: Path, method: str, segmented: list[tuple], longform: list[tuple]) -> None:
    (root / method / "simul").mkdir(parents=True)
    (root / method / "simul" / "results.tsv").write_text(SEGMENTED + "".join(
        f"{k}\t160\t{bleu}\t{al}\t{al + 40}\tk{k}_seg160\n" for k, bleu, al in segmented))
    if longform:
        (root / method / "longform").mkdir()
        (root / method / "longform" / "results.tsv").write_text(LONGFORM + "".join(
            f"{k}\t160\t{bleu}\t{chrf}\t{laal}\t{laal + 300}\t10\t100\t950\t1068\tk{k}_seg160\n"
            for k, bleu, chrf, laal in longform))


def test_each_long_form_row_beside_its_segmented_row(tmp_path):
    _run(tmp_path, "none", [(3, 40.0, 1200.0), (5, 45.0, 1500.0)],
         [(3, 38.0, 60.5, 1800.0), (5, 42.75, 63.0, 2100.0)])
    _run(tmp_path, "mgcm", [(3, 41.0, 1190.0)], [])
    table = longform_markdown(collect(tmp_path, ["none", "mgcm"]))
    lines = table.splitlines()
    assert lines[0].startswith("| run | k | BLEU | segmented BLEU | kept | chrF | StreamLAAL")
    # 38 / 40 = 95% of the segmented BLEU kept; StreamLAAL beside the segmented AL
    assert lines[2] == ("| none | 3 | 38.00 | 40.00 | 95% | 60.50 | 1800 | 2100 | 1200 | 10 | "
                        "950 / 1068 |")
    assert lines[3].startswith("| none | 5 | 42.75 | 45.00 | 95% |")
    assert len(lines) == 4  # mgcm ran no long-form evaluation: no row invented
    assert longform_markdown(collect(tmp_path, ["mgcm"])) == ""


def test_plot_and_a_torn_table(tmp_path):
    _run(tmp_path, "none", [(3, 40.0, 1200.0)], [(3, 38.0, 60.5, 1800.0), (5, 42.0, 63.0, 2100.0)])
    png = plot_bleu_stream_laal(collect(tmp_path, ["none"]), tmp_path / "bleu_streamlaal.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = tmp_path / "none" / "longform" / "results.tsv"
    table.write_text(table.read_text()[:-12])
    with pytest.raises(ResultFileError, match=r"longform/results.tsv:3"):
        collect(tmp_path, ["none"])
