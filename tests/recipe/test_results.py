"""Results table and BLEU-AL plot from a recipe's output folders (stage 7)."""
import json

from fairseq_mgcm.conflict import ConflictStats, ModuleConflict
from fairseq_mgcm.conflict.telemetry import TelemetryWriter
from fairseq_mgcm.recipe.plot import plot_bleu_al
from fairseq_mgcm.recipe.results import collect, markdown_table

HEADER = "k\tsegment_size\tBLEU\tAL\tLAAL\tAP\tDAL\tATD\tStartOffset\tEndOffset\tAL_CA\n"


def _method(root, name, bleu, rows, conflicts=None):
    d = root / name
    (d / "simul").mkdir(parents=True)
    (d / "offline_bleu.txt").write_text(
        f"Generate tst-COMMON with beam=1: BLEU = {bleu} 60.1/40.2/30.0/20.0 (BP = 1.000)\n")
    (d / "simul" / "results.tsv").write_text(HEADER + "".join(
        f"{k}\t160\t{b}\t{al}\t{al}\t0.8\t{al}\t100\t10\t20\t{al + 30}\n" for k, b, al in rows))
    (d / "train_peak.json").write_text(json.dumps({"peak_rss_mb": 812.4, "wall_s": 61.0}))
    if conflicts is not None:  # written by the engine's telemetry writer, 2 updates a line
        writer = TelemetryWriter(d / "conflict.jsonl", interval=2)
        for step, c in enumerate(conflicts):
            writer.add(ConflictStats(name, "st", (
                ModuleConflict("m", "ffn", ("st", "ctc"), -0.1 if c else 0.1, c),
                ModuleConflict("m", "ffn", ("st", "asr"), 0.2, False))), step)
        writer.close()


def test_table_puts_methods_side_by_side(tmp_path):
    _method(tmp_path, "none", 21.5, [(1, 10.0, 900.0), (1000, 25.0, 2500.0)])
    _method(tmp_path, "mgcm", 22.25, [(1, 11.0, 880.0)], conflicts=[True, False, False, True])
    results = collect(tmp_path, ["none", "mgcm", "pcgrad"])
    table = markdown_table(results)
    assert "| none | 21.50 | 812 | 61 | - |" in table
    assert "| mgcm | 22.25 | 812 | 61 | asr 0.000, ctc 0.500 |" in table
    assert "| pcgrad | - | - | - | - |" in table      # not run: shown, not invented
    assert "| none | waitk | k=1000 | 25.00 | 2500 | 2530 |" in table


def test_plot_writes_a_png(tmp_path):
    _method(tmp_path, "mgcm", 20.0, [(1, 10.0, 900.0), (3, 15.0, 1400.0)])
    png = plot_bleu_al(collect(tmp_path, ["mgcm"]), tmp_path / "bleu_al.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
