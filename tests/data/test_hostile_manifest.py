"""Hostile manifest fields (docs/hostile_inputs.md, section Data): each one gives one line naming
the file and line, exit code 2, and nothing written, whichever split it is in."""
import importlib.util
import shutil
from pathlib import Path

import pytest
from data_testing import read_tsv, small_mustc

from fairseq_mgcm.data.errors import CorpusError
from fairseq_mgcm.data.mustc.prepare import prepare
from fairseq_mgcm.data.synthetic.text_sources import read_parallel_text

REPO = Path(__file__).resolve().parents[2]
DEV = Path("en-de") / "data" / "dev"
YAML = DEV / "txt" / "dev.yaml"
# small_mustc's dev split: two 4 s talks, yaml lines 1-3 in ted_dev_1, 4-6 in ted_dev_2.
LINE = "- {{duration: {d}, offset: {o}, speaker_id: {s}, wav: {w}}}"


def _main(argv: list[str]) -> int:
    """scripts/prepare_mustc.py's main, in this process (fast: torch is imported once)."""
    spec = importlib.util.spec_from_file_location("prepare_mustc", REPO / "scripts"
                                                  / "prepare_mustc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)


def _set_yaml_line(root: Path, line_no: int, d="1.0", o="1.3", s="spk.1", w="ted_dev_1.wav"):
    path = root / YAML
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[line_no - 1] = LINE.format(d=d, o=o, s=s, w=w)
    path.write_text("".join(x + "\n" for x in lines), encoding="utf-8")
    return [f"{path}:{line_no}"]


def _set_bytes(root: Path, name: str, line_no: int, raw: bytes) -> list[str]:
    path = root / DEV / "txt" / name
    lines = path.read_bytes().split(b"\n")
    lines[line_no - 1] = raw
    path.write_bytes(b"\n".join(lines))
    return [f"{path}:{line_no}", "not UTF-8"]


def _duplicate_stem(root: Path) -> list[str]:
    """``sub/ted_dev_1.wav`` next to ``ted_dev_1.wav``: both talks would be ``ted_dev_1_<i>``."""
    wav = root / DEV / "wav"
    (wav / "sub").mkdir()
    shutil.copy(wav / "ted_dev_2.wav", wav / "sub" / "ted_dev_1.wav")
    for line_no, offset in ((4, "0.1"), (5, "1.3"), (6, "2.5")):
        _set_yaml_line(root, line_no, o=offset, w="sub/ted_dev_1.wav")
    return [f"{root / YAML}:4", str(wav / "sub" / "ted_dev_1.wav"), str(wav / "ted_dev_1.wav"),
            f"{root / YAML}:1", "same file stem"]


CASES = {  # name: (corrupt the dev split, fragments of the one error line)
    "nan_offset": lambda r: _set_yaml_line(r, 2, o="nan") + ["'offset'", "finite"],
    "nan_duration_yaml_spelling": lambda r: _set_yaml_line(r, 2, d=".nan") + ["'duration'"],
    "inf_duration": lambda r: _set_yaml_line(r, 3, d="inf") + ["'duration'", "finite"],
    "minus_inf_offset": lambda r: _set_yaml_line(r, 3, o="-.inf") + ["'offset'", "finite"],
    "overflowing_duration": lambda r: _set_yaml_line(r, 2, d="1e400") + ["finite"],
    "negative_offset": lambda r: _set_yaml_line(r, 2, o="-0.5") + ["offset -0.5"],
    "negative_duration": lambda r: _set_yaml_line(r, 2, d="-1.0") + ["duration -1.0"],
    "huge_duration": lambda r: _set_yaml_line(r, 2, d="1e300") + ["ends at 1e+300 s, past"],
    "huge_offset": lambda r: _set_yaml_line(r, 2, o="99999999999999999999.0") + ["past the end"],
    "short_after_clamping": lambda r: _set_yaml_line(r, 3, o="3.99", d="0.05")
    + ["160 samples", "400"],
    "tab_in_speaker": lambda r: _set_yaml_line(r, 2, s='"spk\\t1"') + ["'speaker_id'", r"\t"],
    "newline_in_speaker": lambda r: _set_yaml_line(r, 2, s='"spk\\n1"') + ["'speaker_id'"],
    "escape_in_speaker": lambda r: _set_yaml_line(r, 2, s='"spk\\e1"') + ["'speaker_id'"],
    "line_separator_in_wav": lambda r: _set_yaml_line(r, 2, w='"ted_dev_1\\L.wav"')
    + ["'wav'"],
    "raw_nul_in_yaml": lambda r: _set_yaml_line(r, 4, s="spk\x001", w="ted_dev_2.wav")
    + ["invalid yaml (control characters are not allowed: '\\x00')"],
    "duplicate_stem": _duplicate_stem,
    "latin1_translation": lambda r: _set_bytes(r, "dev.de", 3, "große welt".encode("latin-1")),
    "latin1_yaml": lambda r: _set_bytes(r, "dev.yaml", 5, "- {duration: 1.0, offset: 1.3, "
                                        "speaker_id: spk.é, wav: ted_dev_2.wav}"
                                        .encode("latin-1")),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_field_gives_one_line_exit_2_and_writes_nothing(tmp_path, capsys, case):
    corpus = small_mustc(tmp_path / "corpus")  # train is fine; only dev is hostile
    expected = CASES[case](corpus)
    out = tmp_path / "data"
    code = _main(["--mustc-root", str(corpus), "--out-dir", str(out), "--splits", "train",
                  "dev", "--vocab-size-tgt", "40", "--vocab-size-src", "40"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and err.endswith(errors[0] + "\n"), err
    for fragment in expected:
        assert fragment in errors[0], (fragment, errors[0])
    assert not out.exists()  # every split was checked before the first one was written


def test_byte_order_marks_are_not_kept(tmp_path):
    corpus = small_mustc(tmp_path / "corpus", splits=("train",))
    txt = corpus / "en-de" / "data" / "train" / "txt"
    for name in ("train.yaml", "train.en", "train.de"):
        (txt / name).write_bytes(b"\xef\xbb\xbf" + (txt / name).read_bytes())
    out = prepare(corpus, tmp_path / "data", splits=("train",), vocab_size_tgt=40,
                  vocab_size_src=40)
    first = read_tsv(out / "train.tsv")[0]
    assert (first["id"], first["src_text"], first["tgt_text"]) == (
        "ted_train_1_0", "hello world number 0", "hallo welt nummer 0")


def test_a_line_count_mismatch_does_not_claim_a_wrong_line(tmp_path):
    corpus = small_mustc(tmp_path / "corpus", splits=("dev",))
    de = corpus / DEV / "txt" / "dev.de"
    lines = de.read_text().splitlines()
    del lines[1]  # the break is at line 2; only the count shows at line 6
    de.write_text("".join(x + "\n" for x in lines))
    with pytest.raises(CorpusError) as error:
        prepare(corpus, tmp_path / "data", splits=("dev",))
    message = str(error.value)
    assert f"{de} has 5 lines" in message and "6 segments" in message
    assert "somewhere in lines 1-6" in message
    assert "first unmatched line" not in message


@pytest.mark.parametrize("where", ["file", "below_a_file"])
def test_out_dir_that_cannot_be_a_folder(tmp_path, capsys, where):
    corpus = small_mustc(tmp_path / "corpus", splits=("train",))
    blocker = tmp_path / "taken"
    blocker.write_text("not a folder\n")
    out = blocker if where == "file" else blocker / "data"
    code = _main(["--mustc-root", str(corpus), "--out-dir", str(out), "--splits", "train"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"prepare_mustc.py: error: {out}: --out-dir " in err
    assert blocker.read_text() == "not a folder\n"


def test_make_corpus_texts_name_the_line_that_is_not_utf8_and_drop_a_bom(tmp_path):
    src, tgt = tmp_path / "a.en", tmp_path / "a.de"
    src.write_bytes(b"\xef\xbb\xbfone\ntwo\n")
    tgt.write_bytes("eins\nzwei und größer\n".encode("latin-1"))
    with pytest.raises(CorpusError, match=rf"^{tgt}:2: not UTF-8 \(byte 0xf6"):
        read_parallel_text(src, tgt)
    tgt.write_text("eins\nzwei\n", encoding="utf-8")
    assert read_parallel_text(src, tgt) == [("one", "eins"), ("two", "zwei")]
