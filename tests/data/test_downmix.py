"""Multi-channel audio is down-mixed to mono in preparation as in the agent (issue 20, item 4):
one function, the mean over channels (``fairseq_mgcm.data.audio.downmix``)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from data_testing import small_mustc

from fairseq_mgcm.data.audio import downmix
from fairseq_mgcm.data.mustc.features import fbank, read_segments
from fairseq_mgcm.data.mustc.prepare import _check_sample_rates
from fairseq_mgcm.data.mustc.reader import read_split


def to_stereo(wav: Path) -> None:
    """Rewrite a 16-bit mono ``wav`` as two different channels whose mean is exactly it."""
    x, rate = sf.read(wav, dtype="int16")
    x = x.astype(np.int32)
    room = 32767 - np.abs(x)
    d = np.clip(np.random.default_rng(0).integers(-3000, 3001, x.shape), -room, room)
    sf.write(wav, np.stack([x + d, x - d], axis=1).astype(np.int16), rate, subtype="PCM_16")


def test_downmix_is_the_mean_over_channels() -> None:
    samples = np.array([[0.5, -0.25, 0.5], [1.0, 0.0, 0.5]], dtype=np.float32)  # 3 channels
    assert downmix(samples).tolist() == [0.25, 0.5]
    assert downmix(samples[:, :1]).tolist() == [0.5, 1.0]  # one channel: its samples
    assert downmix(np.array([0.1, 0.2])).dtype == np.float32  # mono passes through
    with pytest.raises(ValueError, match=r"shape \(1, 2, 3\)"):
        downmix(np.zeros((1, 2, 3)))


def test_preparation_reads_a_stereo_copy_as_the_mono_wav_and_warns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mono_root = small_mustc(tmp_path / "mono", splits=("dev",))
    stereo_root = tmp_path / "stereo"
    shutil.copytree(mono_root, stereo_root)
    wavs = sorted((stereo_root / "en-de" / "data" / "dev" / "wav").glob("*.wav"))
    for wav in wavs:
        to_stereo(wav)
        assert sf.info(wav).channels == 2
    mono = read_split(mono_root / "en-de", "dev")
    stereo = read_split(stereo_root / "en-de", "dev")
    assert [t.channels for t in stereo.talks] == [2, 2]
    for mono_talk, stereo_talk in zip(mono.talks, stereo.talks):
        mono_audio, stereo_audio = read_segments(mono_talk), read_segments(stereo_talk)
        assert len(stereo_audio) == len(mono_talk.segments) == 3
        for a, b in zip(mono_audio, stereo_audio):
            assert b.ndim == 1 and np.array_equal(a, b)
            assert np.array_equal(fbank(a), fbank(b))
    _check_sample_rates(stereo, resample=True)
    err = capsys.readouterr().err
    for wav in wavs:
        assert f"warning: {wav} has 2 channels; averaging them to mono" in err
