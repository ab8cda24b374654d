"""Helpers for the live server's tests: a stand-in processor, a server in this process, clients.

``CountingProcessor`` writes one word per chunk (``w1 w2 ...``) without a model, so the
server's handling of clients is tested in milliseconds; a chunk whose first sample is the
lowest 16-bit value makes it fail, as a processor bug would, and one whose first sample is the
highest makes its ``end_of_stream`` fail.
"""
from __future__ import annotations

import asyncio
import json
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from simulstream.server.speech_processors import SpeechProcessor, build_speech_processor
from simulstream.server.speech_processors.incremental_output import IncrementalOutput
from websockets.asyncio.client import ClientConnection, connect

from fairseq_mgcm.errors import BadValue
from fairseq_mgcm.live.server import (
    DEFAULT_CONFIG,
    parse_args,
    processor_config,
    start_server,
    url,
)

CHUNK_SECONDS = 0.1
CHUNK_SAMPLES = 1600  # at 16 kHz
FAIL, FAIL_AT_END = -32768, 32767  # first samples of the chunks that make it fail


class CountingProcessor(SpeechProcessor):
    """One word per chunk; raises on the chunks named above."""

    def __init__(self, config: SimpleNamespace) -> None:
        super().__init__(config)
        self.clear()

    @classmethod
    def load_model(cls, config: SimpleNamespace) -> None:
        if getattr(config, "fail_load", False):
            raise BadValue(f"{config.checkpoint}: not a checkpoint (stand-in)")

    def process_chunk(self, waveform: np.ndarray) -> IncrementalOutput:
        first = round(float(waveform[0]) * 32768)
        if first == FAIL:
            raise RuntimeError("stand-in processor failure")
        self.fail_at_end = self.fail_at_end or first == FAIL_AT_END
        self.words += 1
        word = f"w{self.words}"
        return IncrementalOutput([word], word if self.words == 1 else " " + word, [], "")

    def end_of_stream(self) -> IncrementalOutput:
        if self.fail_at_end:
            raise RuntimeError("stand-in end-of-stream failure")
        return IncrementalOutput([], "", [], "")

    def tokens_to_string(self, tokens: list[str]) -> str:
        return " ".join(tokens)

    def set_source_language(self, language: str) -> None:
        pass

    def set_target_language(self, language: str) -> None:
        pass

    def clear(self) -> None:
        self.words = 0
        self.fail_at_end = False


def counting_config(folder: Path) -> Path:
    path = folder / "counting.yaml"
    path.write_text(f"type: live_testing.CountingProcessor\nspeech_chunk_size: {CHUNK_SECONDS}\n")
    return path


def chunk(first: int = 100, n: int = CHUNK_SAMPLES) -> bytes:
    """One chunk of 16-bit audio starting with ``first``."""
    samples = np.full(n, 100, dtype="<i2")
    samples[0] = first
    return samples.tobytes()


def read_pcm(wav: Path) -> bytes:
    """A 16-bit mono wav's samples, as a client sends them."""
    with wave.open(str(wav)) as f:
        assert (f.getsampwidth(), f.getnchannels()) == (2, 1), wav
        return f.readframes(f.getnframes())


@asynccontextmanager
async def live_server(checkpoint: Path, config: Path, *flags: str) -> AsyncIterator[str]:
    """The live server in this process on a free port; yields its ``ws://`` address."""
    args = parse_args([str(checkpoint), "--config", str(config), "--port", "0", *flags])
    server = await start_server(args, processor_config(args.config, args.checkpoint, []))
    async with server:
        yield url(server).replace("http://", "ws://")


async def receive_json(client: ClientConnection, timeout: float = 60) -> dict:
    return json.loads(await asyncio.wait_for(client.recv(), timeout))


async def stream(client: ClientConnection, pcm: bytes, announce: bool = True,
                 chunk_bytes: int = 2 * CHUNK_SAMPLES) -> str:
    """Send ``pcm`` in chunks (after the sample rate, unless the stream has begun) and end the
    stream; the text the server sent back from then on."""
    if announce:
        await client.send(json.dumps({"sample_rate": 16000}))
    for start in range(0, len(pcm), chunk_bytes):
        await client.send(pcm[start:start + chunk_bytes])
    await client.send(json.dumps({"end_of_stream": True}))
    return await translation(client)


async def translation(client: ClientConnection) -> str:
    """The text the server sends until ``end_of_processing`` (errors are test failures)."""
    text = ""
    while True:
        message = await receive_json(client)
        assert "error" not in message, message
        if message.get("end_of_processing"):
            return text
        assert message["deleted"] == "", message  # our processors never take words back
        new = message["new"]
        # As the page does: simulstream's end-of-stream message (merge_incremental_outputs)
        # drops the leading space the processor gives every later message.
        if text and new and not text[-1].isspace() and not new[0].isspace():
            new = " " + new
        text += new


def offline_words(checkpoint: Path, pcm: bytes, overrides: tuple[str, ...] = ()) -> str:
    """What the shipped processor writes for ``pcm`` fed directly (16-bit samples scaled as
    simulstream's MessageProcessor scales them)."""
    processor = build_speech_processor(processor_config(DEFAULT_CONFIG, checkpoint, overrides))
    waveform = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 2 ** 15
    words = processor.process_chunk(waveform).new_tokens + processor.end_of_stream().new_tokens
    return " ".join(words)


def run(coroutine: object) -> object:
    return asyncio.run(coroutine)  # type: ignore[arg-type]


__all__ = ["CHUNK_SAMPLES", "FAIL", "FAIL_AT_END", "CountingProcessor", "chunk", "connect",
           "counting_config", "live_server", "offline_words", "read_pcm", "receive_json", "run",
           "stream", "translation"]
