"""Every kind of bad input gives a CorpusError naming the file and line; nothing is lost."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from data_testing import mtimes, small_mustc

from fairseq_mgcm.data.errors import CorpusError
from fairseq_mgcm.data.mustc.prepare import prepare
from fairseq_mgcm.data.synthetic.corpus import make_corpus
from fairseq_mgcm.data.synthetic.text_sources import read_parallel_text

REPO = Path(__file__).resolve().parents[2]
TXT = Path("en-de") / "data" / "dev" / "txt"
WAV = Path("en-de") / "data" / "dev" / "wav"


def _replace_line(path: Path, line_no: int, text: str | None) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    if text is None:
        del lines[line_no - 1]
    else:
        lines[line_no - 1] = text
    path.write_text("".join(x + "\n" for x in lines), encoding="utf-8")


def _break_missing_de_line(root):
    _replace_line(root / TXT / "dev.de", 6, None)
    return [str(root / TXT / "dev.de"), "5 lines", "6 segments", "somewhere in lines 1-6"]


def _break_extra_en_line(root):
    with open(root / TXT / "dev.en", "a") as f:
        f.write("one more\n")
    return [str(root / TXT / "dev.en"), "7 lines"]


def _break_missing_wav(root):
    (root / WAV / "ted_dev_2.wav").unlink()
    return [str(root / WAV / "ted_dev_2.wav"), "not found", f"{root / TXT / 'dev.yaml'}:4"]


def _break_unreadable_wav(root):
    (root / WAV / "ted_dev_1.wav").write_bytes(b"this is not audio" * 10)
    return [str(root / WAV / "ted_dev_1.wav"), "unreadable", f"{root / TXT / 'dev.yaml'}:1"]


def _break_segment_past_end(root):
    _replace_line(root / TXT / "dev.yaml", 5,
                  "- {duration: 1.000000, offset: 3.900000, speaker_id: spk.1, wav: ted_dev_2.wav}")
    return [f"{root / TXT / 'dev.yaml'}:5", "past the end", str(root / WAV / "ted_dev_2.wav")]


def _break_empty_de_line(root):
    _replace_line(root / TXT / "dev.de", 3, "   ")
    return [f"{root / TXT / 'dev.de'}:3", "empty text"]


def _break_empty_en_line(root):
    _replace_line(root / TXT / "dev.en", 2, "")
    return [f"{root / TXT / 'dev.en'}:2", "empty text"]


def _break_yaml_syntax(root):
    _replace_line(root / TXT / "dev.yaml", 4, "- {duration: 1.0, offset: [")
    return [str(root / TXT / "dev.yaml"), "invalid yaml"]


def _break_yaml_keys(root):
    _replace_line(root / TXT / "dev.yaml", 2, "- {duration: 1.0, wav: ted_dev_1.wav}")
    return [f"{root / TXT / 'dev.yaml'}:2", "speaker_id"]


def _break_negative_duration(root):
    _replace_line(root / TXT / "dev.yaml", 3,
                  "- {duration: -1.0, offset: 1.0, speaker_id: spk.1, wav: ted_dev_1.wav}")
    return [f"{root / TXT / 'dev.yaml'}:3", "duration"]


BREAKERS = [_break_missing_de_line, _break_extra_en_line, _break_missing_wav,
            _break_unreadable_wav, _break_segment_past_end, _break_empty_de_line,
            _break_empty_en_line, _break_yaml_syntax, _break_yaml_keys, _break_negative_duration]


@pytest.fixture
def prepared(tmp_path):
    """A corpus and its prepared output from a first, good run."""
    corpus = small_mustc(tmp_path / "corpus")
    out = prepare(corpus, tmp_path / "data", splits=("train", "dev"), vocab_size_tgt=40,
                  vocab_size_src=40)
    return corpus, out


@pytest.mark.parametrize("breaker", BREAKERS, ids=lambda f: f.__name__[len("_break_"):])
def test_bad_mustc_input_is_named_and_nothing_is_lost(prepared, breaker):
    corpus, out = prepared
    before = mtimes(out)
    expected = breaker(corpus)
    with pytest.raises(CorpusError) as error:
        prepare(corpus, out, splits=("train", "dev"), vocab_size_tgt=40, vocab_size_src=40)
    for fragment in expected:
        assert fragment in str(error.value)
    assert mtimes(out) == before  # checked before anything was (re)written


def test_end_overrun_within_tolerance_is_clamped(tmp_path):
    corpus = small_mustc(tmp_path / "corpus", splits=("train",))
    yaml_path = corpus / "en-de" / "data" / "train" / "txt" / "train.yaml"
    _replace_line(yaml_path, 3, "- {duration: 1.020000, offset: 3.000000, speaker_id: spk.1, "
                                "wav: ted_train_1.wav}")
    out = prepare(corpus, tmp_path / "data", splits=("train",), vocab_size_tgt=40,
                  vocab_size_src=40)
    assert (out / "train.tsv").read_text().count("\n") == 7


def test_drop_empty_skips_segments(tmp_path):
    corpus = small_mustc(tmp_path / "corpus", splits=("train",))
    _replace_line(corpus / "en-de" / "data" / "train" / "txt" / "train.de", 2, "")
    out = prepare(corpus, tmp_path / "data", splits=("train",), vocab_size_tgt=40,
                  vocab_size_src=40, drop_empty=True)
    ids = [line.split("\t")[0] for line in (out / "train.tsv").read_text().splitlines()[1:]]
    assert ids == ["ted_train_1_0", "ted_train_1_2", "ted_train_2_0", "ted_train_2_1",
                   "ted_train_2_2"]


def test_non_16k_refused_with_flag(tmp_path):
    corpus = small_mustc(tmp_path / "corpus", rate=8000, splits=("train",))
    with pytest.raises(CorpusError, match=r"ted_train_1.wav: sample rate 8000 Hz.*train.yaml:1"):
        prepare(corpus, tmp_path / "data", splits=("train",), resample=False)
    assert not (tmp_path / "data").exists()


def test_not_a_mustc_dir(tmp_path):
    with pytest.raises(CorpusError, match=r"no en-de folder .*looked for .*en-de/data"):
        prepare(tmp_path, tmp_path / "out")


def test_eval_split_alone_needs_train_outputs(tmp_path):
    corpus = small_mustc(tmp_path / "corpus", splits=("dev",))
    with pytest.raises(CorpusError, match="spm_tgt.model.*include a train split"):
        prepare(corpus, tmp_path / "out", splits=("dev",))


def test_parallel_text_mismatch_and_empty_lines(tmp_path):
    src, tgt = tmp_path / "a.en", tmp_path / "a.de"
    src.write_text("one\ntwo\nthree\n")
    tgt.write_text("eins\nzwei\n")
    with pytest.raises(CorpusError, match=rf"{src} has 3 lines, {tgt} has 2; they must be "
                                          r"line-aligned \(a line is missing or extra somewhere "
                                          r"in lines 1-3\)"):
        read_parallel_text(src, tgt)
    tgt.write_text("eins\n\ndrei\n")
    with pytest.raises(CorpusError, match=rf"{tgt}:2: empty text line"):
        read_parallel_text(src, tgt)
    with pytest.raises(CorpusError, match="not found"):
        read_parallel_text(tmp_path / "missing.en", tgt)


def test_missing_espeak(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(CorpusError, match=r"'espeak-ng' was not found.*apt-get install espeak-ng"):
        make_corpus(tmp_path / "corpus", n_train=2, n_dev=0, n_test=0)
    assert not (tmp_path / "corpus").exists()


def _run(script: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / script), *args],
                          capture_output=True, text=True, env=env)


def test_scripts_print_errors_without_traceback(prepared, tmp_path):
    corpus, out = prepared
    expected = _break_segment_past_end(corpus)
    result = _run("prepare_mustc.py", "--mustc-root", str(corpus), "--out-dir", str(out),
                  "--splits", "train", "dev")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and expected[0] in result.stderr
    env = dict(os.environ, PATH=str(tmp_path / "empty-bin"))
    result = _run("make_corpus.py", "--out", str(tmp_path / "c"), "--n-train", "2", env=env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "apt-get install espeak-ng" in result.stderr


def test_yaml_fast_path_agrees_with_yaml(tmp_path):
    from fairseq_mgcm.data.mustc.reader import _parse_flow_lines, _read_yaml

    lines = [f"- {{duration: {1 + i / 7:.6f}, offset: {i * 2.5:.6f}, speaker_id: spk.{i % 3}, "
             f"wav: ted_{i // 4}.wav}}" for i in range(20)]
    text = "\n".join(lines) + "\n\n"
    fast_entries, fast_lines, fast_offsets = _parse_flow_lines(text)
    path = tmp_path / "x.yaml"
    path.write_text(text.replace("spk.1", "'spk.1'"))  # quotes: not the fast format
    assert _parse_flow_lines(path.read_text()) is None
    slow_entries, slow_lines, slow_offsets = _read_yaml(path)
    assert slow_lines == fast_lines == list(range(1, 21))
    assert slow_offsets == fast_offsets == [f"{i * 2.5:.6f}" for i in range(20)]
    for fast, slow in zip(fast_entries, slow_entries):
        assert fast == {k: (v if k in ("duration", "offset") else str(v)) for k, v in slow.items()}
