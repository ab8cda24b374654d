"""Clients that misbehave get a clear message; the server keeps serving the others
(fairseq_mgcm/live/guard.py over simulstream's handler). A stand-in processor (live_testing.py)
writes one word per chunk, so these run in well under a second each."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from live_testing import (
    FAIL,
    FAIL_AT_END,
    chunk,
    connect,
    counting_config,
    live_server,
    receive_json,
    run,
    stream,
    translation,
)
from websockets.exceptions import ConnectionClosed


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return counting_config(tmp_path)


def test_a_client_sending_garbage_is_told_and_its_stream_goes_on(config: Path) -> None:
    async def scenario() -> tuple[list[str], str]:
        async with live_server(config, config) as address, connect(address) as client:
            errors = []
            for bad in ("hello", '{"sample_rate": 0}', '{"speed": 2}', b"\x00" * 3):
                await client.send(bad)
                errors.append((await receive_json(client))["error"])
            await client.send(chunk())
            first = (await receive_json(client))["new"]
            await client.send('{"sample_rate": 8000}')  # after audio: refused
            errors.append((await receive_json(client))["error"])
            await client.send(chunk())
            await client.send(json.dumps({"end_of_stream": True}))
            return errors, first + await translation(client)

    errors, text = run(scenario())
    assert errors == [
        "message dropped: not JSON: hello",
        "message dropped: sample_rate must be a whole number of Hz from 8000 to 192000, got 0",
        "message dropped: unknown key(s) 'speed'; known: sample_rate, source_lang, "
        "target_lang, metrics_metadata, end_of_stream",
        "audio message of 3 bytes dropped: audio is 16-bit little-endian mono PCM, 2 bytes a "
        "sample",
        "message dropped: sample_rate must come before the stream's audio (the server already "
        'holds 3200 bytes at the earlier rate); send {"end_of_stream": true} to start a new '
        "stream",
    ]
    assert text == "w1 w2"  # the stream went on around the refused messages


def test_a_client_that_vanishes_mid_stream_leaves_the_others_served(config: Path) -> None:
    async def scenario() -> tuple[str, str]:
        async with live_server(config, config, "--pool-size", "2") as address:
            async with connect(address) as good, connect(address) as bad:
                await good.send(json.dumps({"sample_rate": 16000}))
                await good.send(chunk())
                await bad.send(chunk())
                assert (await receive_json(bad))["new"] == "w1"
                bad.transport.abort()  # gone without a closing handshake, mid-stream
                first = (await receive_json(good))["new"]
                first += await stream(good, chunk() * 3, announce=False)
            # The vanished client's processor went back to the pool, cleared: a new client
            # (two at once again) starts from w1.
            async with connect(address) as late, connect(address) as other:
                await other.send(chunk())
                return first, await stream(late, chunk() * 2)

    first, late = run(scenario())
    assert first == "w1 w2 w3 w4"
    assert late == "w1 w2"


def test_a_client_that_goes_silent_gives_its_processor_back(config: Path) -> None:
    # A network that vanishes without closing (no FIN, no RST): the client stops reading, so
    # it answers no ping; after --keepalive s unanswered the server drops it. With one
    # processor, the next client is then served (it may wait up to --acquire-timeout for it).
    async def scenario() -> str:
        flags = ("--pool-size", "1", "--keepalive", "0.2", "--acquire-timeout", "60")
        async with live_server(config, config, *flags) as address:
            async with connect(address) as silent:
                await silent.send(chunk())
                await receive_json(silent)  # it holds the only processor
                silent.transport.pause_reading()  # and hears nothing more
                async with connect(address) as next_client:
                    text = await stream(next_client, chunk() * 2)
                silent.transport.abort()  # (it would wait for a closing handshake)
                return text

    assert run(scenario()) == "w1 w2"


def test_a_processor_failure_is_reported_to_its_client_only(config: Path) -> None:
    async def scenario() -> tuple[dict, int, str, dict, str]:
        async with live_server(config, config, "--pool-size", "2") as address:
            async with connect(address) as good, connect(address) as failing:
                await failing.send(chunk(FAIL))
                error = await receive_json(failing)
                with pytest.raises(ConnectionClosed):
                    await failing.recv()
                code = failing.close_code
                text = await stream(good, chunk() * 2)
            async with connect(address) as ending:  # end_of_stream fails: it is told
                await ending.send(chunk(FAIL_AT_END))
                await receive_json(ending)
                await ending.send(json.dumps({"end_of_stream": True}))
                end_error = await receive_json(ending)
                await ending.close()
            async with connect(address) as after:
                return error, code, text, end_error, await stream(after, chunk())

    error, code, text, end_error, after = run(scenario())
    assert error == {"error": "the server stopped processing this stream on an error (its log "
                              "has it)"}
    assert code == 1011  # internal error
    assert text == "w1 w2"
    assert end_error == {"error": "the server could not finish the stream (its log has the "
                                  "reason)"}
    assert after == "w1"


def test_a_client_finding_every_processor_busy_is_told_so(config: Path) -> None:
    async def scenario() -> tuple[dict, int | None, str]:
        flags = ("--pool-size", "1", "--acquire-timeout", "0.2")
        async with live_server(config, config, *flags) as address:
            async with connect(address) as holder:
                await holder.send(chunk())
                await receive_json(holder)  # it holds the only processor now
                async with connect(address) as waiting:
                    busy = await receive_json(waiting)
                    with pytest.raises(ConnectionClosed):
                        await waiting.recv()
                return busy, waiting.close_code, await stream(holder, chunk(), announce=False)

    busy, code, text = run(scenario())
    assert busy == {"error": "all 1 speech processors are busy; try again later"}
    assert code == 1013  # try again later
    assert text == " w2"
