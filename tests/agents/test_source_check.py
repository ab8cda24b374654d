"""agents/source_check.py: the wavs SimulEval will read are checked before the first one (the
``simuleval`` command itself: tests/agents/test_user_errors.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from fairseq_mgcm.agents.source_check import BadSource, check_source_list
from fairseq_mgcm.errors import MissingFile


def listed(tmp_path: Path, *wavs: str) -> Path:
    sf.write(tmp_path / "good.wav", np.zeros(1600, dtype=np.float32), 16000)
    sf.write(tmp_path / "silent.wav", np.zeros(0, dtype=np.float32), 16000)
    (tmp_path / "zero.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("not audio at all\n")
    source = tmp_path / "source.txt"
    source.write_text("".join(f"{tmp_path / w if w else ''}\n" for w in wavs))
    return source


@pytest.mark.parametrize(("wavs", "message"), [
    (["good.wav", "missing.wav"], "{t}/missing.wav: no such wav file ({s}:2)"),
    (["zero.wav"], "{t}/zero.wav: empty file (0 bytes), not a wav ({s}:1)"),
    (["good.wav", "good.wav", "text.wav"], "{t}/text.wav: unreadable audio ("),
    (["good.wav", ""], "{s}:2: empty line, expected a wav file"),
    (["silent.wav", "silent.wav"], "{s}: every wav it lists has no samples, so no word would "
                                   "be written, and SimulEval's scorer fails on such a run"),
])
def test_the_first_bad_wav_is_named_with_its_line(tmp_path, wavs, message):
    source = listed(tmp_path, *wavs)
    with pytest.raises(BadSource) as caught:
        check_source_list(source, scoring=True)
    assert str(caught.value).startswith(message.format(t=tmp_path, s=source))
    assert "\n" not in str(caught.value)


def test_what_simuleval_will_not_read_or_score_is_not_refused(tmp_path):
    source = listed(tmp_path, "good.wav", "silent.wav", "zero.wav")
    # --end-index 2: the 0-byte wav on line 3 is not read; silence among speech is translated
    # to nothing
    check_source_list(source, end=2, scoring=True)
    with pytest.raises(BadSource, match=":3\\)$"):
        check_source_list(source, start=1, scoring=True)
    only_silence = listed(tmp_path, "silent.wav")
    check_source_list(only_silence, scoring=False)  # --no-scoring (the sweep): a log of nothing
    with pytest.raises(MissingFile, match="nope.txt: no such source list"):
        check_source_list(tmp_path / "nope.txt")
