"""The talk lists of prepared data: sentences in time order (numbers, not text), whole-talk wavs,
a format simulstream's reference reader reads, and clear errors on a damaged folder."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from fairseq_mgcm.data.mustc import stages
from fairseq_mgcm.data.mustc.reader import find_lang_dir, read_split
from fairseq_mgcm.data.mustc.talk_lists import talk_audio, talks_of, talks_stage
from fairseq_mgcm.errors import BadValue, MissingFile
from fairseq_mgcm.longform.talks import (
    SENTENCES_TEXT,
    SENTENCES_YAML,
    read_talks,
    talks_folder,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from data_testing import write_mustc, write_release_like  # noqa: E402

# Offsets crossing 9 -> 10 -> 100 s, listed out of order: sorted as text, "101.5" would come
# before "12.75" and "9.55" after "4.8" and "10.2".
TALKS = {"ted_767": [(0.3, 1.2), (2.1, 1.5), (4.8, 2.0), (9.55, 0.4), (10.2, 1.9), (12.75, 1.0),
                     (101.5, 1.25)],
         "ted_1102": [(0.5, 2.0), (3.0, 1.0), (7.25, 2.5)]}
SHUFFLED = [("ted_767", i) for i in (3, 0, 6, 5, 1, 4, 2)] + [("ted_1102", i) for i in (2, 0, 1)]


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    root = tmp_path_factory.mktemp("talks") / "mustc"
    write_release_like(root, "dev", TALKS, SHUFFLED)
    return read_split(find_lang_dir(root), "dev")


def test_sentences_in_time_order_with_their_texts(split):
    talks = talks_of(split)
    assert [t.name for t in talks] == ["ted_767", "ted_1102"]
    ted_767 = talks[0]
    assert [s.offset for s in ted_767.sentences] == [0.3, 2.1, 4.8, 9.55, 10.2, 12.75, 101.5]
    assert [s.duration for s in ted_767.sentences] == [1.2, 1.5, 2.0, 0.4, 1.9, 1.0, 1.25]
    # each sentence keeps its own text (the texts name their talk and time)
    assert [s.text.rsplit(" ", 1)[-1] for s in ted_767.sentences] == [
        "0.3", "2.1", "4.8", "9.55", "10.2", "12.75", "101.5"]
    assert ted_767.reference.startswith("ted_767 sagt die katze sieht einen hund um 0.3 ted_767")


def test_the_stage_writes_the_talks_and_reads_them_back(split, tmp_path):
    talks_stage(split, tmp_path, {"inputs": 1})
    folder = talks_folder(tmp_path, "dev")
    assert folder == tmp_path / "simuleval" / "dev-talks"
    assert read_talks(folder) == talks_of(split)
    assert (folder / "source.txt").read_text() == "wav/ted_767.wav\nwav/ted_1102.wav\n"
    target = (folder / "target.txt").read_text().splitlines()
    assert target == [talk.reference for talk in talks_of(split)]
    assert (folder / SENTENCES_YAML).read_text().splitlines()[6] == (
        "- {wav: ted_767.wav, offset: 101.5, duration: 1.25}")
    corpus_wav = split.talks[0].wav
    assert np.array_equal(sf.read(folder / "wav" / "ted_767.wav", dtype="int16")[0],
                          sf.read(corpus_wav, dtype="int16")[0])  # the talk as it was given
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
    talks_stage(split, tmp_path, {"inputs": 1})  # done: nothing rewritten
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*")} == before
    assert not stages.is_done(tmp_path, "talks_dev", {"inputs": 2}, [])  # other inputs: redone


def test_simulstream_reads_the_sentence_lists(split, tmp_path):
    pytest.importorskip("simulstream")
    from simulstream.metrics.readers import YamlReferenceReader

    talks_stage(split, tmp_path, {})
    folder = talks_folder(tmp_path, "dev")
    theirs = YamlReferenceReader(str(folder / SENTENCES_YAML),
                                 str(folder / SENTENCES_TEXT)).references
    assert list(theirs) == ["ted_767", "ted_1102"]
    for talk in read_talks(folder):
        assert [(s.content, s.start_time, s.duration) for s in theirs[talk.name]] == [
            (s.text, s.offset, s.duration) for s in talk.sentences]


def test_a_talk_at_another_rate_and_in_stereo_is_written_at_16_khz_mono(tmp_path):
    root = write_mustc(tmp_path / "mustc", "dev", {"ted_1": (22050, 2.0)},
                       [("ted_1", 0.5, 1.0, "hello", "hallo")])
    wav = root / "en-de" / "data" / "dev" / "wav" / "ted_1.wav"
    mono, rate = sf.read(wav)
    sf.write(wav, np.stack([mono, mono], axis=1), rate, subtype="PCM_16")
    audio = talk_audio(read_split(find_lang_dir(root), "dev").talks[0])
    assert audio.dtype == np.int16 and audio.shape == (32000,)


def _damage(folder: Path, name: str, text: str) -> None:
    (folder / name).write_text(text)


def test_a_damaged_folder_names_the_file_and_line(split, tmp_path):
    talks_stage(split, tmp_path, {})
    folder = talks_folder(tmp_path, "dev")
    lines = (folder / SENTENCES_YAML).read_text().splitlines()
    _damage(folder, SENTENCES_YAML, "\n".join(lines[:2] + [lines[2].replace("4.8", "x")]
                                              + lines[3:]) + "\n")
    with pytest.raises(BadValue, match=rf"{SENTENCES_YAML}:3: 'offset' must be a number"):
        read_talks(folder)
    _damage(folder, SENTENCES_YAML, "".join(line + "\n" for line in lines[:-1]))
    with pytest.raises(BadValue, match="has 9 lines but .*sentences.txt has 10"):
        read_talks(folder)
    _damage(folder, SENTENCES_YAML, "".join(line + "\n" for line in lines))
    _damage(folder, "source.txt", "wav/ted_767.wav\n")
    with pytest.raises(BadValue, match="talk ted_1102 is not listed in"):
        read_talks(folder)
    _damage(folder, "source.txt", "wav/ted_767.wav\nwav/ted_9.wav\n")
    with pytest.raises(BadValue, match=r"source.txt:2: talk ted_9 has no sentence"):
        read_talks(folder)
    with pytest.raises(MissingFile, match="--stage 1, writes the talk lists"):
        read_talks(tmp_path / "simuleval" / "tst-COMMON-talks")
