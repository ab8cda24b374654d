"""Importing MuST-C prepared by fairseq's own prep_mustc_data.py (run here on a generated
corpus): manifests joined by id, fairseq's fbank80.zip re-used in place, the task trains on it."""
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from data_testing import mtimes, read_tsv, varied_mustc
from fairseq.data.audio.audio_utils import get_features_or_waveform
from fairseq_reference import fairseq_prepare, prep_mustc_module

from fairseq_mgcm.data.errors import CorpusError
from fairseq_mgcm.data.mustc.fairseq_import import import_fairseq

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fairseq_prepared(tmp_path_factory) -> Path:
    """``<tmp>/mustc/en-de`` after fairseq's preparation (st and asr)."""
    root = varied_mustc(tmp_path_factory.mktemp("fairseq") / "mustc")
    fairseq_prepare(root, vocab_size=40)
    return root / "en-de"


def _fairseq_rows(path: Path) -> list[dict]:
    """A manifest read by fairseq's own ``load_df_from_tsv``."""
    prep_mustc_module()
    return sys.modules["examples.speech_to_text.data_utils"].load_df_from_tsv(path).to_dict(
        "records")


def test_import_joins_manifests_and_reuses_the_zip(fairseq_prepared, tmp_path):
    out = import_fairseq(fairseq_prepared, tmp_path / "data")
    assert not list(out.glob("*.zip"))  # features stay in fairseq's zip
    for split in ("train", "dev", "tst-COMMON", "tst-HE"):
        st = _fairseq_rows(fairseq_prepared / f"{split}_st.tsv")
        asr = {r["id"]: r for r in _fairseq_rows(fairseq_prepared / f"{split}_asr.tsv")}
        ours = read_tsv(out / f"{split}.tsv")
        assert [r["id"] for r in ours] == [r["id"] for r in st] and len(ours) == 6
        for row, fs in zip(ours, st):
            assert row["tgt_text"] == fs["tgt_text"]
            assert row["src_text"] == asr[row["id"]]["tgt_text"]
            assert row["audio"].startswith("../") and int(row["n_frames"]) == fs["n_frames"]
            np.testing.assert_array_equal(get_features_or_waveform(f"{out}/{row['audio']}"),
                                          get_features_or_waveform(fs["audio"]))
    assert any('"' in r["tgt_text"] for r in read_tsv(out / "train.tsv"))  # unescaped
    config = yaml.safe_load((out / "config.yaml").read_text())
    fairseq_config = yaml.safe_load((fairseq_prepared / "config_st.yaml").read_text())
    assert config["global_cmvn"] == {"stats_npz_path": "gcmvn.npz"}
    assert config["specaugment"] == fairseq_config["specaugment"]
    assert config["transforms"] == fairseq_config["transforms"]
    for name in ("spm_tgt.model", "spm_src.model", "gcmvn.npz"):
        assert (out / name).is_file()
    before = mtimes(out)
    import_fairseq(fairseq_prepared, out)
    assert mtimes(out) == before


def test_task_loads_imported_data_after_moving(fairseq_prepared, tmp_path):
    from fairseq_mgcm.tasks import SpeechToTextMultitaskConfig, SpeechToTextMultitaskTask

    box = tmp_path / "box"  # fairseq's folder and ours side by side, moved together
    shutil.copytree(fairseq_prepared, box / "en-de")
    import_fairseq(box / "en-de", box / "data")
    shutil.move(box, tmp_path / "elsewhere")
    moved = tmp_path / "elsewhere" / "data"
    task = SpeechToTextMultitaskTask.setup_task(SpeechToTextMultitaskConfig(data=str(moved)))
    task.load_dataset("train")
    dataset = task.dataset("train")
    batch = dataset.collater([dataset[i] for i in range(len(dataset))])
    src_bpe, src_dict = task.build_src_bpe(), task.transcript_dictionary
    rows = read_tsv(moved / "train.tsv")
    for row, index in enumerate(batch["id"].tolist()):
        n = int(batch["transcript_lengths"][row])
        text = src_bpe.decode(src_dict.string(batch["transcript"][row][: n - 1]))
        assert text == rows[index]["src_text"]
    assert batch["net_input"]["src_tokens"].shape[-1] == 80


def _copy(fairseq_prepared: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "en-de"
    shutil.copytree(fairseq_prepared, copy)
    return copy


def _drop_line(path: Path, line_no: int) -> str:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    dropped = lines.pop(line_no - 1)
    path.write_text("".join(lines), encoding="utf-8")
    return dropped.split("\t")[0]


def test_missing_asr_manifest_names_both_files(fairseq_prepared, tmp_path):
    copy = _copy(fairseq_prepared, tmp_path)
    (copy / "dev_asr.tsv").unlink()
    with pytest.raises(CorpusError) as e:
        import_fairseq(copy, tmp_path / "data")
    assert str(copy / "dev_st.tsv") in str(e.value) and str(copy / "dev_asr.tsv") in str(e.value)
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("manifest,other", [("dev_asr.tsv", "dev_st.tsv"),
                                            ("dev_st.tsv", "dev_asr.tsv")])
def test_id_in_one_manifest_only_is_named(fairseq_prepared, tmp_path, manifest, other):
    copy = _copy(fairseq_prepared, tmp_path)
    dropped = _drop_line(copy / manifest, 3)
    with pytest.raises(CorpusError) as e:
        import_fairseq(copy, tmp_path / "data")
    message = str(e.value)
    assert f"id {dropped} is not in {copy / manifest}" in message
    assert f"{copy / other}:3" in message  # where the id is


def test_bad_import_keeps_earlier_output_and_script_exits_2(fairseq_prepared, tmp_path):
    copy = _copy(fairseq_prepared, tmp_path)
    out = import_fairseq(copy, tmp_path / "data")
    before = {p: (out / p).read_bytes() for p in ("config.yaml", "dev.tsv", "spm_tgt.model")}
    _drop_line(copy / "dev_st.tsv", 2)
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "import_fairseq_mustc.py"),
                             "--fairseq-dir", str(copy), "--out-dir", str(out)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "is not in" in result.stderr and str(copy / "dev_st.tsv") in result.stderr
    assert {p: (out / p).read_bytes() for p in before} == before


def test_import_with_the_release_writes_simuleval_inputs(fairseq_prepared, tmp_path):
    import soundfile as sf

    out = import_fairseq(fairseq_prepared, tmp_path / "data", splits=("train", "dev"),
                         mustc_root=fairseq_prepared.parent)
    assert not (out / "simuleval" / "train").exists()
    split_dir = out / "simuleval" / "dev"
    sources = (split_dir / "source.txt").read_text().splitlines()
    rows = read_tsv(out / "dev.tsv")
    assert sources == [f"wav/{r['id']}.wav" for r in rows]
    assert (split_dir / "target.txt").read_text().splitlines() == [r["tgt_text"] for r in rows]
    fairseq_samples = {d[7]: d[2] for d in prep_mustc_module().MUSTC(
        str(fairseq_prepared.parent), "de", "dev").data}
    for source, row in zip(sources, rows):
        assert sf.info(split_dir / source).frames == fairseq_samples[row["id"]]


# ---- every manifest row checked (docs/hostile_inputs.md, "Corpus texts and imported manifests")

def _fields(path: Path, line_no: int, edit) -> None:
    """Replace line ``line_no`` of a manifest by ``edit(its fields)`` (joined by tabs)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[line_no - 1] = "\t".join(edit(lines[line_no - 1].split("\t")))
    path.write_text("".join(x + "\n" for x in lines), encoding="utf-8")


def _set(column: int, value):
    """An edit setting field ``column`` (0 id, 1 audio, 2 n_frames) to ``value(old fields)``."""
    return lambda fields: fields[:column] + [value(fields)] + fields[column + 1:]


def _audio(fields, offset=0, length=0, zip_name=None) -> str:
    name, start, size = fields[1].rsplit(":", 2)
    return f"{zip_name or name}:{int(start) + offset}:{int(size) + length}"


def _swap_audio(copy: Path, manifest: str) -> None:
    """Lines 3 and 4 of a manifest point at each other's features."""
    lines = [line.split("\t") for line in
             (copy / manifest).read_text(encoding="utf-8").splitlines()]
    lines[2][1:3], lines[3][1:3] = lines[3][1:3], lines[2][1:3]
    (copy / manifest).write_text("".join("\t".join(x) + "\n" for x in lines), encoding="utf-8")


# (case, edit of line 3 of dev_st.tsv and dev_asr.tsv alike (None: _swap_audio), message after
# "<dev_st.tsv>:3: ")
ROW_CASES = [
    ("non_numeric_n_frames", _set(2, lambda f: f[2] + "x"), "n_frames '{n}x' is not a positive "
     "integer"),
    ("zero_n_frames", _set(2, lambda f: "0"), "n_frames '0' is not a positive integer"),
    ("wrong_n_frames", _set(2, lambda f: str(int(f[2]) + 1)), "n_frames is {n1}, but member "
     "{id}.npy of {zip} holds {n} frames"),
    ("offset_off_by_one", _set(1, lambda f: _audio(f, offset=1)), "no member of {zip} has its "
     "data at byte {o1} with {length} bytes"),
    ("length_too_short", _set(1, lambda f: _audio(f, length=-8)), "no member of {zip} has its "
     "data at byte {o} with {length8} bytes"),
    ("past_the_zip_end", _set(1, lambda f: _audio(f, offset=10 ** 9)), "bytes {obig}-"),
    ("short_row", lambda f: f[:3], "3 fields, expected 5 (id, audio, n_frames, tgt_text, "
     "speaker)"),
    ("long_row", lambda f: f + ["more"], "6 fields, expected 5"),
    ("swapped_audio", None, "the audio of id {id} is member {other}.npy of {zip}, not {id}.npy"),
]


@pytest.mark.parametrize("case,edit,message", ROW_CASES, ids=[c[0] for c in ROW_CASES])
def test_a_bad_manifest_row_names_file_and_line_exits_2_and_writes_nothing(
        fairseq_prepared, tmp_path, capsys, case, edit, message):
    copy = _copy(fairseq_prepared, tmp_path)
    row = (copy / "dev_st.tsv").read_text(encoding="utf-8").splitlines()[2].split("\t")
    other = (copy / "dev_st.tsv").read_text(encoding="utf-8").splitlines()[3].split("\t")
    zip_name, offset, length = row[1].rsplit(":", 2)
    for manifest in ("dev_st.tsv", "dev_asr.tsv"):
        if edit is None:
            _swap_audio(copy, manifest)
        else:
            _fields(copy / manifest, 3, edit)
    out = tmp_path / "data"
    code = _import_main(["--fairseq-dir", str(copy), "--out-dir", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    expected = message.format(n=row[2], n1=int(row[2]) + 1, id=row[0], other=other[0],
                              zip=zip_name, o=offset, o1=int(offset) + 1,
                              obig=int(offset) + 10 ** 9, length=length,
                              length8=int(length) - 8)
    assert err.startswith(f"import_fairseq_mustc.py: error: {copy / 'dev_st.tsv'}:3: {expected}")
    assert not out.exists()


def _import_main(argv: list[str]) -> int:
    """scripts/import_fairseq_mustc.py's main, in this process."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "import_fairseq_mustc", REPO / "scripts" / "import_fairseq_mustc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)
