"""The corpus maker writes the MuST-C v1.0 layout with consistent audio, and resumes."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
from data_testing import mtimes, read_yaml

from fairseq_mgcm.data.synthetic.corpus import make_corpus
from fairseq_mgcm.data.synthetic.speech_synthesis import Speaker, synthesize

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("corpus"), n_train=12, n_dev=4, n_test=4,
                       seed=5, utts_per_talk=5)


def test_synthesize_is_16k_speech():
    audio = synthesize("The dog sees the ball.", Speaker("en-us", "f3", 160))
    assert audio.dtype.name == "int16"
    assert 0.5 < len(audio) / 16000 < 4.0
    assert abs(audio).max() > 1000


def test_layout_and_alignment(corpus):
    data = corpus / "en-de" / "data"
    for split, n in (("train", 12), ("dev", 4), ("tst-COMMON", 4)):
        txt = data / split / "txt"
        entries = read_yaml(txt / f"{split}.yaml")
        en = (txt / f"{split}.en").read_text(encoding="utf-8").splitlines()
        de = (txt / f"{split}.de").read_text(encoding="utf-8").splitlines()
        assert len(entries) == len(en) == len(de) == n
        # one mapping per line, exactly the MuST-C keys
        assert len((txt / f"{split}.yaml").read_text().splitlines()) == n
        assert all(set(e) == {"duration", "offset", "speaker_id", "wav"} for e in entries)
        wavs = sorted((data / split / "wav").glob("*.wav"))
        assert [w.name for w in wavs] == sorted({e["wav"] for e in entries})
        for wav in wavs:
            info = sf.info(wav)
            assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
            length = info.frames / info.samplerate
            segs = sorted((e for e in entries if e["wav"] == wav.name), key=lambda e: e["offset"])
            assert len(segs) <= 5
            # segments are ordered, separated by pauses and inside the file
            for a, b in zip(segs, segs[1:]):
                assert a["offset"] + a["duration"] + 0.25 <= b["offset"]
            assert segs[0]["offset"] > 0 and segs[-1]["offset"] + segs[-1]["duration"] < length
            assert all(0.5 < s["duration"] < 8 for s in segs)
            assert len({s["speaker_id"] for s in segs}) == 1


def test_segments_contain_speech_and_pauses_are_quiet(corpus):
    txt = corpus / "en-de" / "data" / "dev" / "txt"
    entries = read_yaml(txt / "dev.yaml")
    audio, rate = sf.read(corpus / "en-de" / "data" / "dev" / "wav" / entries[0]["wav"])
    first = entries[0]
    start, stop = int(first["offset"] * rate), int((first["offset"] + first["duration"]) * rate)
    assert abs(audio[start:stop]).max() > 0.05
    assert abs(audio[: start - 10]).max() < 0.01  # leading pause


def test_deterministic(corpus, tmp_path):
    again = make_corpus(tmp_path, n_train=12, n_dev=4, n_test=4, seed=5, utts_per_talk=5)
    for rel in ("train/txt/train.yaml", "train/txt/train.de", "dev/wav/ted_dev_00001.wav"):
        a = (corpus / "en-de" / "data" / rel).read_bytes()
        assert a == (again / "en-de" / "data" / rel).read_bytes()


def test_rerun_rewrites_nothing(corpus):
    before = mtimes(corpus)
    make_corpus(corpus, n_train=12, n_dev=4, n_test=4, seed=5, utts_per_talk=5)
    assert mtimes(corpus) == before


def test_resume_after_interruption(tmp_path):
    make_corpus(tmp_path, n_train=10, n_dev=0, n_test=0, seed=1, utts_per_talk=5)
    wav_dir = tmp_path / "en-de" / "data" / "train" / "wav"
    kept = wav_dir / "ted_train_00001.wav"
    lost = wav_dir / "ted_train_00002.wav"
    kept_mtime = kept.stat().st_mtime_ns
    lost.unlink()  # as if the run had stopped before this talk
    (tmp_path / "en-de" / "data" / "train" / "txt" / "train.yaml").unlink()
    make_corpus(tmp_path, n_train=10, n_dev=0, n_test=0, seed=1, utts_per_talk=5)
    assert kept.stat().st_mtime_ns == kept_mtime and lost.is_file()
    assert len(read_yaml(tmp_path / "en-de" / "data" / "train" / "txt" / "train.yaml")) == 10


def test_changed_text_resynthesises(tmp_path):
    make_corpus(tmp_path, n_train=5, n_dev=0, n_test=0, seed=1, utts_per_talk=5)
    wav = tmp_path / "en-de" / "data" / "train" / "wav" / "ted_train_00001.wav"
    before = wav.read_bytes()
    make_corpus(tmp_path, n_train=5, n_dev=0, n_test=0, seed=2, utts_per_talk=5)
    assert wav.read_bytes() != before


def test_script_grammar_single_split(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_corpus.py"), "--out", str(tmp_path),
         "--n-train", "3", "--n-dev", "2", "--n-test", "2", "--split", "dev"],
        capture_output=True, text=True, cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "en-de" / "data" / "dev" / "txt" / "dev.yaml").is_file()
    assert not (tmp_path / "en-de" / "data" / "train").exists()


def test_voices_missing_from_espeak_are_not_used(tmp_path, capsys):
    from fairseq_mgcm.data.synthetic.speech_synthesis import available_voices

    fake = tmp_path / "espeak-ng"
    fake.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        '  --voices=en) printf "Pty Language Age/Gender VoiceName File Other\\n'
        ' 2  en-us  --/M  English_(America)  gmw/en-US  (en 3)\\n" ;;\n'
        '  --voices=variant) printf "Pty Language Age/Gender VoiceName File Other\\n'
        ' 5  variant  --/F  f3  !v/f3\\n" ;;\n'
        "esac\n")
    fake.chmod(0o755)
    assert available_voices(str(fake)) == (("en-us",), ("", "f3"))
    assert "lacks the voices en-gb" in capsys.readouterr().err


def test_fixed_speaker_pool(tmp_path):
    corpus = make_corpus(tmp_path, n_train=12, n_dev=0, n_test=0, utts_per_talk=1,
                         n_speakers=2)
    entries = read_yaml(corpus / "en-de" / "data" / "train" / "txt" / "train.yaml")
    assert len({e["speaker_id"] for e in entries}) == 2
