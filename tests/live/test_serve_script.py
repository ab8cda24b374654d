"""scripts/serve.sh as shipped: bad arguments stop it before any model loads, in one line
(fairseq_mgcm/live/server.py); and the page it serves."""
from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
from live_testing import counting_config, live_server, run

from fairseq_mgcm.errors import BadValue, MissingFile
from fairseq_mgcm.live.pages import page
from fairseq_mgcm.live.server import DEFAULT_CONFIG, main, processor_config

ROOT = Path(__file__).resolve().parents[2]


def serve(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROOT / "scripts" / "serve.sh"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_a_missing_checkpoint_is_named(tmp_path: Path) -> None:
    # From another folder: the path is the user's, relative to where they are.
    done = serve("exp/none/checkpoint_avg.pt", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (
        "serve.sh: error: exp/none/checkpoint_avg.pt: does not exist (the checkpoint, the first "
        "argument)")


def test_a_busy_port_is_named_before_the_model_loads(tmp_path: Path) -> None:
    checkpoint = tmp_path / "checkpoint.pt"
    checkpoint.write_bytes(b"not loaded: the port is checked first")
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        done = serve(str(checkpoint), "--port", str(port))
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (
        f"serve.sh: error: --port {port}: another program is listening on 127.0.0.1:{port} "
        "(an earlier serve.sh?); stop it or choose another --port")


def test_a_checkpoint_the_processor_refuses_is_one_line(tmp_path: Path, capsys) -> None:
    # The shipped processor raises CheckpointError (a UserError) for a file that is no
    # checkpoint (tests/agents); the stand-in raises one the same way when loading.
    config = counting_config(tmp_path)
    with pytest.raises(SystemExit) as exit:
        main([str(config), "--config", str(config), "--port", "0", "--set", "fail_load=true"])
    assert exit.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"serve.sh: error: {config}: not a checkpoint (stand-in)")


def test_the_processor_config_takes_the_checkpoint_and_overrides(tmp_path: Path) -> None:
    config = processor_config(DEFAULT_CONFIG, tmp_path / "c.pt", ["waitk=5", "device=cuda",
                                                                 "data_dir=/data/en-de"])
    assert (config.type, config.checkpoint, config.waitk, config.device, config.data_dir) == (
        "fairseq_mgcm.agents.simulstream_processor.WaitkSpeechProcessor",
        str(tmp_path / "c.pt"), 5, "cuda", "/data/en-de")
    with pytest.raises(BadValue, match=r"^--set waitk: expected KEY=VALUE$"):
        processor_config(DEFAULT_CONFIG, tmp_path / "c.pt", ["waitk"])
    with pytest.raises(MissingFile, match=r"^--config .*nothing\.yaml: no such file"):
        processor_config(tmp_path / "nothing.yaml", tmp_path / "c.pt", [])
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(BadValue, match=r"a mapping with 'type'"):
        processor_config(tmp_path / "list.yaml", tmp_path / "c.pt", [])


def test_the_page_and_nothing_else_is_served(tmp_path: Path) -> None:
    import urllib.error
    import urllib.request

    async def fetch() -> dict[str, tuple[int, str, bytes]]:
        import asyncio

        config = counting_config(tmp_path)
        got = {}
        async with live_server(config, config) as address:
            base = address.replace("ws://", "http://")
            for path in ("", "app.js", "capture.js", "../setup.py", "secret"):
                def get(url: str = base + path) -> tuple[int, str, bytes]:
                    try:
                        with urllib.request.urlopen(url, timeout=30) as response:
                            return response.status, response.headers["Content-Type"], \
                                response.read()
                    except urllib.error.HTTPError as error:
                        return error.code, error.headers["Content-Type"], error.read()
                got[path] = await asyncio.to_thread(get)
        return got

    got = run(fetch())
    web = ROOT / "fairseq_mgcm" / "live" / "web"
    assert got[""] == (200, "text/html; charset=utf-8", (web / "index.html").read_bytes())
    assert got["app.js"] == (200, "text/javascript; charset=utf-8",
                             (web / "app.js").read_bytes())
    assert got["capture.js"][:2] == (200, "text/javascript; charset=utf-8")
    assert got["secret"][0] == 404 and got["../setup.py"][0] == 404
    assert page("/?lang=de").body == (web / "index.html").read_bytes()
