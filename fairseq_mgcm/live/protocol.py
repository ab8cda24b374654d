"""What a client may send the live server, checked before simulstream's handler sees it.

simulstream 1.0.0's WebSocket handler (``simulstream.server.websocket_server``) takes binary
messages as 16-bit little-endian mono PCM and text messages as JSON metadata
(``sample_rate``, ``source_lang``, ``target_lang``, ``metrics_metadata``, ``end_of_stream``).
It logs a message it cannot use and tells the client nothing: a text that is not JSON is
dropped silently, ``{"sample_rate": 0}`` raises inside the handler and closes the connection
without a reason, a negative rate makes it wait for a chunk that never comes, and a binary
message of odd length shifts every later sample by one byte. Each function here returns the
one-line reason a message is refused (sent to that client as ``{"error": reason}``; the
message is dropped and the connection stays usable), or ``None`` for a message to pass on.

Plain Python: no simulstream, fairseq or SimulEval import, so the rules are unit-tested alone.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

__all__ = ["KNOWN_KEYS", "MAX_SAMPLE_RATE", "MIN_SAMPLE_RATE", "StreamState", "check_audio",
           "check_text", "error_message"]

# The keys simulstream 1.0.0's MessageProcessor and handler act on.
KNOWN_KEYS = ("sample_rate", "source_lang", "target_lang", "metrics_metadata", "end_of_stream")
# Microphones and files in practice; librosa resamples anything, but 0, 1 or 10**9 Hz is a bug.
MIN_SAMPLE_RATE = 8_000
MAX_SAMPLE_RATE = 192_000


@dataclass
class StreamState:
    """What the checks remember about one client's current stream (reset by ``end_of_stream``,
    after which simulstream starts a new stream on the same connection at 16 kHz)."""

    audio_bytes: int = 0

    def passed(self, message: str | bytes) -> None:
        """Record a message that was passed on."""
        if isinstance(message, bytes):
            self.audio_bytes += len(message)
        elif "end_of_stream" in json.loads(message):
            self.audio_bytes = 0


def error_message(reason: str) -> str:
    """The JSON text sent to a client whose message was refused."""
    return json.dumps({"error": reason})


def check_audio(data: bytes) -> str | None:
    """A binary message must hold whole 16-bit samples."""
    if len(data) % 2:
        return (f"audio message of {len(data)} bytes dropped: audio is 16-bit little-endian "
                f"mono PCM, 2 bytes a sample")
    return None


def check_text(text: str, state: StreamState) -> str | None:
    """A text message must be a JSON object of known keys with usable values."""
    try:
        data = json.loads(text)
    except ValueError:
        return f"message dropped: not JSON: {_clip(text)}"
    if not isinstance(data, dict):
        return f"message dropped: a JSON object was expected, got {_clip(text)}"
    unknown = sorted(set(data) - set(KNOWN_KEYS))
    if unknown:
        return (f"message dropped: unknown key(s) {', '.join(map(repr, unknown))}; known: "
                f"{', '.join(KNOWN_KEYS)}")
    if "sample_rate" in data:
        reason = _check_sample_rate(data["sample_rate"], state)
        if reason:
            return reason
    for key in ("source_lang", "target_lang"):
        if key in data and not isinstance(data[key], str):
            return f"message dropped: {key} must be a language code string, got {data[key]!r}"
    return None


def _check_sample_rate(rate: object, state: StreamState) -> str | None:
    # The range first: NaN and infinity (which Python's json accepts) fail it before int().
    if (isinstance(rate, bool) or not isinstance(rate, int | float)
            or not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE or rate != int(rate)):
        return (f"message dropped: sample_rate must be a whole number of Hz from "
                f"{MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE}, got {_clip(json.dumps(rate))}")
    if state.audio_bytes:
        return ("message dropped: sample_rate must come before the stream's audio (the server "
                f"already holds {state.audio_bytes} bytes at the earlier rate); send "
                '{"end_of_stream": true} to start a new stream')
    return None


def _clip(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."
