"""Re-runs of the preparation: done-markers keyed on content, and what a killed run left."""
import os
from pathlib import Path

from data_testing import mtimes, read_tsv, small_mustc

from fairseq_mgcm.data.mustc.prepare import prepare

SPLITS = ("train", "dev")


def _prepare(corpus: Path, out: Path) -> Path:
    return prepare(corpus, out, splits=SPLITS, vocab_size_tgt=40, vocab_size_src=40)


def _edit_keeping_size_and_mtime(path: Path, old: str, new: str) -> None:
    assert len(old.encode()) == len(new.encode())
    stat = path.stat()
    path.write_text(path.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)


def test_an_edit_with_size_and_mtime_unchanged_redoes_what_depends_on_it(tmp_path):
    corpus = small_mustc(tmp_path / "corpus")
    out = _prepare(corpus, tmp_path / "data")
    before = mtimes(out)
    txt = corpus / "en-de" / "data"
    _edit_keeping_size_and_mtime(txt / "train" / "txt" / "train.de", "hallo", "hullo")
    _edit_keeping_size_and_mtime(txt / "dev" / "txt" / "dev.yaml", "spk.1", "spk.2")
    _prepare(corpus, out)
    assert all(row["tgt_text"].startswith("hullo") for row in read_tsv(out / "train.tsv"))
    assert {row["speaker"] for row in read_tsv(out / "dev.tsv")} == {"spk.2"}
    after = mtimes(out)
    assert after["spm_tgt.model"] != before["spm_tgt.model"]
    assert after["spm_src.model"] == before["spm_src.model"]  # the English did not change


def test_a_rerun_removes_the_temporary_files_a_killed_run_left(tmp_path, capsys):
    corpus = small_mustc(tmp_path / "corpus")
    out = _prepare(corpus, tmp_path / "data")
    # What SIGKILL leaves: atomic_path's temporary files (a zip, a segment wav, ...).
    stale = [out / ".fbank80_dev.zip.k2j4_x9q.tmp", out / ".work" / ".cmvn_train.npy.abcdefgh.tmp",
             out / "simuleval" / "dev" / "wav" / ".ted_dev_1_0.wav.0a1b2c3d.tmp",
             out / ".done" / ".features_dev.json.zzzzzzzz.tmp"]
    for path in stale:
        path.write_bytes(b"half written")
    mine = out / ".notes.tmp"  # not a name our temporary files have
    mine.write_text("keep me\n")
    capsys.readouterr()
    _prepare(corpus, out)
    assert "removed 4 temporary files left by an interrupted run" in capsys.readouterr().err
    assert not [p for p in stale if p.exists()]
    assert mine.read_text() == "keep me\n"
