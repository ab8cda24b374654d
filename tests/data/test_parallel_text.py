"""Parallel text is checked whole (docs/hostile_inputs.md, section "Corpus texts and imported
manifests"): a line missing anywhere in either file is an error before any corpus is written,
also when only the first --max-sentences lines are used (run.sh always passes that flag)."""
import gzip
import importlib.util
from pathlib import Path

import pytest

from fairseq_mgcm.data.errors import CorpusError
from fairseq_mgcm.data.synthetic.text_sources import read_parallel_text

REPO = Path(__file__).resolve().parents[2]
EN = [f"sentence number {i}" for i in range(1, 11)]
DE = [f"satz nummer {i}" for i in range(1, 11)]


def _write(path: Path, lines: list[str]) -> Path:
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path


def _make_corpus_main(argv: list[str]) -> int:
    """scripts/make_corpus.py's main, in this process."""
    spec = importlib.util.spec_from_file_location("make_corpus", REPO / "scripts"
                                                  / "make_corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)


# (case, English lines, German lines, --max-sentences, message after "<en> has ")
CASES = [
    ("target_line_missing_early", EN, DE[:3] + DE[4:], 5, "10 lines, {de} has 9; "),
    ("target_line_missing_at_end", EN, DE[:9], None, "10 lines, {de} has 9; "),
    ("extra_source_line", EN + ["one more"], DE, 4, "11 lines, {de} has 10; "),
]


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("case,en,de,max_sentences,message", CASES, ids=[c[0] for c in CASES])
def test_a_line_missing_anywhere_is_an_error_naming_the_counts(
        tmp_path, case, en, de, max_sentences, message, suffix):
    src, tgt = _write(tmp_path / f"a.en{suffix}", en), _write(tmp_path / f"a.de{suffix}", de)
    with pytest.raises(CorpusError) as error:
        read_parallel_text(src, tgt, max_sentences)
    text = str(error.value)
    assert text.startswith(f"{src} has " + message.format(de=tgt))
    # only the counts are known: the range the line is in, never a guessed line
    assert text.endswith(f"somewhere in lines 1-{min(len(en), len(de)) + 1})")
    assert "first line without a partner" not in text


def test_aligned_files_give_their_first_lines_in_order(tmp_path):
    src, tgt = _write(tmp_path / "a.en.gz", EN), _write(tmp_path / "a.de.gz", DE)
    assert read_parallel_text(src, tgt, 4) == list(zip(EN[:4], DE[:4]))
    assert read_parallel_text(src, tgt) == list(zip(EN, DE))


@pytest.mark.parametrize("which", ["train", "dev", "test"])
def test_make_corpus_refuses_a_shifted_pair_and_writes_nothing(tmp_path, capsys, which):
    """Through the script as run.sh calls it (--max-sentences below the file length)."""
    pairs = {name: (_write(tmp_path / f"{name}.en", EN),
                    _write(tmp_path / f"{name}.de", DE[:3] + DE[4:] if name == which else DE))
             for name in ("train", "dev", "test")}
    out = tmp_path / "corpus"
    code = _make_corpus_main([
        "--out", str(out), "--src-text", str(pairs["train"][0]),
        "--tgt-text", str(pairs["train"][1]), "--max-sentences", "6",
        "--dev-text", *map(str, pairs["dev"]), "--test-text", *map(str, pairs["test"]),
        "--n-train", "6", "--n-dev", "2", "--n-test", "2"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines() == [
        f"make_corpus.py: error: {pairs[which][0]} has 10 lines, {pairs[which][1]} has 9; they "
        f"must be line-aligned (a line is missing or extra somewhere in lines 1-10)"]
    assert not out.exists()
