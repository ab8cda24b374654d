"""The live server as shipped (configs/simulstream/waitk.yaml, a trained checkpoint) translates
one client's stream word for word as the processor does offline, while another client on the
same server sends a wrong sample rate and garbage and then vanishes mid-stream."""
from __future__ import annotations

import json

import pytest
from live_testing import (
    connect,
    live_server,
    offline_words,
    read_pcm,
    receive_json,
    run,
    stream,
)

from fairseq_mgcm.live.server import DEFAULT_CONFIG


@pytest.mark.slow
def test_a_translation_is_unaffected_by_a_misbehaving_client(trained_tiny, prepared_tiny):
    checkpoint = trained_tiny["chunk-causal"]
    wav = sorted((prepared_tiny / "simuleval" / "tst-COMMON" / "wav").glob("*.wav"))[0]
    pcm = read_pcm(wav)
    expected = offline_words(checkpoint, pcm)
    assert expected  # the tiny model writes words for this utterance

    third = len(pcm) // 6 * 2  # bytes of a third of the samples

    async def scenario() -> tuple[list[str], str]:
        async with live_server(checkpoint, DEFAULT_CONFIG, "--pool-size", "2") as address:
            async with connect(address) as good, connect(address) as bad:
                errors = []
                for message in ('{"sample_rate": -1}', "garbage", b"\x01"):
                    await bad.send(message)
                    errors.append((await receive_json(bad))["error"])
                await bad.send(json.dumps({"sample_rate": 16000}))
                await bad.send(pcm[:2 * third])
                await good.send(json.dumps({"sample_rate": 16000}))
                await good.send(pcm[:third])
                bad.transport.abort()  # gone mid-stream, without a closing handshake
                await good.send(b"")  # an empty message: nothing to do
                text = await stream(good, pcm[third:], announce=False)
                return errors, text

    errors, text = run(scenario())
    assert [e.split(":")[0] for e in errors] == ["message dropped", "message dropped",
                                                 "audio message of 1 bytes dropped"]
    assert text.split() == expected.split()
