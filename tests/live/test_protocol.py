"""What the live server refuses from a client, and why (fairseq_mgcm/live/protocol.py)."""
from __future__ import annotations

import json

import pytest

from fairseq_mgcm.live.protocol import StreamState, check_audio, check_text, error_message


@pytest.mark.parametrize("text", [
    '{"sample_rate": 48000}', '{"sample_rate": 16000.0}', '{"end_of_stream": true}',
    '{"target_lang": "de", "source_lang": "en"}', '{"metrics_metadata": {"wav": "a.wav"}}',
    "{}",
])
def test_messages_simulstream_knows_pass(text: str) -> None:
    assert check_text(text, StreamState()) is None


@pytest.mark.parametrize("text, reason", [
    ("hello", "message dropped: not JSON: hello"),
    ("[1, 2]", "message dropped: a JSON object was expected, got [1, 2]"),
    ('"sample_rate"', 'message dropped: a JSON object was expected, got "sample_rate"'),
    ('{"rate": 16000, "foo": 1}', "message dropped: unknown key(s) 'foo', 'rate'; known: "
     "sample_rate, source_lang, target_lang, metrics_metadata, end_of_stream"),
    ('{"target_lang": 7}', "message dropped: target_lang must be a language code string, "
     "got 7"),
])
def test_garbage_text_is_refused_with_its_reason(text: str, reason: str) -> None:
    assert check_text(text, StreamState()) == reason


@pytest.mark.parametrize("rate", ["0", "-16000", "7999", "192001", "44100.5", '"16k"', "true",
                                  "null", "NaN", "Infinity", "1e9"])
def test_wrong_sample_rates_are_refused(rate: str) -> None:
    # simulstream 1.0.0 would divide by 0, wait forever for a chunk (negative), raise on "16k"
    # or resample from nonsense; each of these gets one line naming the accepted range.
    reason = check_text(f'{{"sample_rate": {rate}}}', StreamState())
    assert reason == ("message dropped: sample_rate must be a whole number of Hz from 8000 to "
                      f"192000, got {json.dumps(json.loads(rate))}")


def test_sample_rate_after_audio_is_refused_until_the_stream_ends() -> None:
    state = StreamState()
    state.passed(b"\x00\x01" * 800)
    assert check_text('{"sample_rate": 16000}', state) == (
        "message dropped: sample_rate must come before the stream's audio (the server already "
        'holds 1600 bytes at the earlier rate); send {"end_of_stream": true} to start a new '
        "stream")
    state.passed('{"end_of_stream": true}')  # simulstream then starts a new stream
    assert check_text('{"sample_rate": 8000}', state) is None


def test_audio_must_be_whole_16_bit_samples() -> None:
    assert check_audio(b"") is None and check_audio(b"\x00\x01" * 3) is None
    assert check_audio(b"\x00" * 5) == (
        "audio message of 5 bytes dropped: audio is 16-bit little-endian mono PCM, 2 bytes a "
        "sample")


def test_the_error_message_is_json_with_the_reason() -> None:
    assert json.loads(error_message("why")) == {"error": "why"}
