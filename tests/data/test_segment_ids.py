"""Segment ids, sample offsets and texts exactly as fairseq's own MuST-C reader (``MUSTC`` in
the installed ``examples/speech_to_text/prep_mustc_data.py``) has them, on corpora in the exact
MuST-C yaml format with the real release's quirks."""
import numpy as np
import pytest
import soundfile as sf
import torch
from data_testing import read_tsv, real_speaker, write_release_like
from fairseq.data.audio.audio_utils import get_features_or_waveform
from fairseq_reference import prep_mustc_module
from torchaudio.compliance import kaldi

from fairseq_mgcm.data.mustc.prepare import prepare
from fairseq_mgcm.data.mustc.reader import find_lang_dir, read_split, segment_samples

# Offsets crossing 9 -> 10 -> 100 s, so fairseq's sort (by the offset string) is not time order.
TALKS = {"ted_767": [(0.3, 1.2), (2.1, 1.5), (4.8, 2.0), (9.55, 0.4), (10.2, 1.9), (12.75, 1.0),
                     (101.5, 1.25)],
         "ted_1102": [(0.5, 2.0), (3.0, 1.0), (7.25, 2.5)]}
SHUFFLED = [("ted_767", i) for i in (3, 0, 6, 5, 1, 4, 2)] + [("ted_1102", i) for i in (2, 0, 1)]
CASES = {  # quirk: (split, talks, yaml order, options of write_release_like)
    "yaml lines out of order within a talk": ("train", TALKS, SHUFFLED, {}),
    "a talk with one segment": ("train", {**TALKS, "ted_5": [(1.5, 2.0)]}, None, {}),
    "uW and rW keys present": ("train", TALKS, None, {"word_counts": True}),
    "speaker ids like spk.767": ("train", TALKS, None, {"speaker": real_speaker}),
    "a tst-HE split": ("tst-HE", TALKS, SHUFFLED, {}),
}


def _fairseq_segments(root, split):
    """fairseq's (id, sample offset, samples, en, de, speaker) in its manifest order."""
    dataset = prep_mustc_module().MUSTC(str(root), "de", split)
    return [(d[7], d[1], d[2], d[4], d[5], d[6]) for d in dataset.data]


@pytest.fixture(params=list(CASES), ids=lambda quirk: quirk.replace(" ", "_"))
def release(request, tmp_path):
    split, talks, order, options = CASES[request.param]
    root = tmp_path / "mustc"
    if split != "train":
        write_release_like(root, "train", TALKS)  # spm and CMVN come from train
    write_release_like(root, split, talks, order, **options)
    return root, split


def test_read_split_numbers_segments_like_fairseq(release):
    root, split = release
    expected = _fairseq_segments(root, split)
    data = read_split(find_lang_dir(root), split)
    ours = []
    for talk in data.talks:
        for seg in talk.segments:
            start, length = segment_samples(seg.offset, seg.duration, talk.sample_rate)
            ours.append((seg.id, start, length, seg.src_text, seg.tgt_text, seg.speaker))
    assert ours == expected


def test_prepared_manifest_and_features_match_fairseq(release, tmp_path):
    root, split = release
    splits = ("train",) if split == "train" else ("train", split)
    out = prepare(root, tmp_path / "data", splits=splits, vocab_size_tgt=60, vocab_size_src=60)
    rows = read_tsv(out / f"{split}.tsv")
    expected = _fairseq_segments(root, split)
    assert [(r["id"], r["src_text"], r["tgt_text"], r["speaker"]) for r in rows] == [
        (e[0], e[3], e[4], e[5]) for e in expected]
    wav_dir = root / "en-de" / "data" / split / "wav"
    for row, (seg_id, start, length, *_) in zip(rows, expected):
        audio, _ = sf.read(wav_dir / f"{seg_id.rsplit('_', 1)[0]}.wav", frames=length,
                           start=start, dtype="int16")
        reference = kaldi.fbank(torch.from_numpy(audio.astype(np.float32))[None],
                                num_mel_bins=80, sample_frequency=16000).numpy()
        np.testing.assert_allclose(get_features_or_waveform(f"{out}/{row['audio']}"), reference,
                                   atol=1e-4)
    if split != "train":  # SimulEval's wavs are the same samples
        source = out / "simuleval" / split / "source.txt"
        for line, (seg_id, _start, length, *_) in zip(source.read_text().splitlines(), expected):
            assert line == f"wav/{seg_id}.wav" and sf.info(source.parent / line).frames == length


def test_fairseq_order_is_by_offset_text():
    """Why the cases above fail with time-order (or yaml-order) numbering."""
    from fairseq_mgcm.data.mustc.reader import fairseq_order

    texts = [f"{o:.6f}" for o, _ in TALKS["ted_767"]]
    # "0.3" < "10.2" < "101.5" < "12.75" < "2.1" < "4.8" < "9.55", as strings
    assert fairseq_order(texts) == [0, 4, 6, 5, 1, 2, 3]
