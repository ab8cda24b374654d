"""The live demo: simulstream's WebSocket server with our speech processor, and our page.

Usage (``scripts/serve.sh`` runs this):
    python -m fairseq_mgcm.live.server CHECKPOINT [--port 8000] [--host 127.0.0.1]
        [--config configs/simulstream/waitk.yaml] [--set KEY=VALUE ...] [--pool-size 2]
        [--acquire-timeout 10] [--keepalive 20] [--metrics-log FILE]

Inputs: a checkpoint, and the speech processor's YAML (simulstream's format: ``type`` names
the processor class; the checkpoint given here replaces its ``checkpoint``; ``--set`` replaces
any other key, the value read as YAML). Output: the page on ``http://HOST:PORT/`` and
simulstream's WebSocket protocol on ``ws://HOST:PORT/`` (docs/agent.md, "Live demo in the
browser"); with ``--metrics-log``, simulstream's per-chunk metrics log, which its scorers read.

It is simulstream 1.0.0's server (``simulstream.server.websocket_server``): its processor pool
(``pool_size`` processors made at start, each client holding one for its connection) and its
connection handler, started as its ``main`` starts them, with three additions that its
``main`` has no way to take: the page, answered on the same port (``pages.py``); a check of
every client message with a clear answer to the client that sent a bad one (``guard.py``);
and pings, so a client whose network vanished gives its processor back (``--keepalive``). Bad
arguments (a missing checkpoint or config, a busy port) stop it before any model loads, with
one line naming the file or flag.
"""
from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import yaml
from simulstream.config import yaml_config
from websockets.asyncio.server import Server, serve

from fairseq_mgcm.errors import BadValue, MissingFile, UserError, one_line
from fairseq_mgcm.live.guard import guarded
from fairseq_mgcm.live.pages import respond

__all__ = ["check_checkpoint", "check_port", "main", "parse_args", "processor_config", "run",
           "start_server", "url"]

LOGGER = logging.getLogger("fairseq_mgcm.live")
ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = ROOT / "configs" / "simulstream" / "waitk.yaml"
PROG = "serve.sh"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="fairseq checkpoint to translate with")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                        help="speech processor YAML (simulstream's format; default: %(default)s)")
    parser.add_argument("--set", dest="overrides", metavar="KEY=VALUE", action="append",
                        default=[], help="replace a key of --config (value read as YAML), "
                        "e.g. --set waitk=5; repeatable")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: %(default)s; 0.0.0.0 for all)")
    parser.add_argument("--port", type=int, default=8000,
                        help="port (default: %(default)s; 0: a free one, printed at start)")
    parser.add_argument("--pool-size", type=int, default=2,
                        help="speech processors, each with its own decoding state (ours "
                        "share one model): clients served at once (default: %(default)s)")
    parser.add_argument("--acquire-timeout", type=float, default=10,
                        help="seconds a client waits for a free processor before it is told "
                        "the server is busy (default: %(default)s)")
    parser.add_argument("--keepalive", type=float, default=20,
                        help="seconds between pings; a client that does not answer one within "
                        "as long has vanished, and its processor goes back to the pool "
                        "(default: %(default)s; 0: never, as simulstream_server)")
    parser.add_argument("--metrics-log", type=Path, default=None,
                        help="write simulstream's per-chunk metrics log here")
    args = parser.parse_args(argv)
    if args.keepalive < 0:
        parser.error(f"--keepalive must be 0 (off) or more seconds, got {args.keepalive}")
    if args.pool_size < 1:
        parser.error(f"--pool-size must be at least 1, got {args.pool_size}")
    if not 0 <= args.port < 65536:
        parser.error(f"--port must be from 0 to 65535, got {args.port}")
    return args


def check_checkpoint(checkpoint: Path) -> None:
    """The checkpoint must be a file; its content is checked when the processor loads it."""
    if not checkpoint.is_file():
        what = "is a folder, not a checkpoint file" if checkpoint.is_dir() else "does not exist"
        raise MissingFile(f"{checkpoint}: {what} (the checkpoint, the first argument)")


def check_port(host: str, port: int) -> None:
    """Fail before the model loads if ``port`` is taken (the server binds as checked here:
    address reuse on, as asyncio does on POSIX)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise BadValue(_bind_error(host, port, error)) from None


def _bind_error(host: str, port: int, error: OSError) -> str:
    if error.errno == errno.EADDRINUSE:
        return (f"--port {port}: another program is listening on {host}:{port} (an earlier "
                f"serve.sh?); stop it or choose another --port")
    if error.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) or isinstance(error,
                                                                              socket.gaierror):
        return f"--host {host}: not an address of this machine ({error.strerror or error})"
    if error.errno == errno.EACCES:
        return f"--port {port}: needs root (ports below 1024); choose a port from 1024 up"
    return f"--host {host} --port {port}: cannot listen there: {error.strerror or error}"


def processor_config(config: Path, checkpoint: Path, overrides: Sequence[str]
                     ) -> SimpleNamespace:
    """The speech processor's configuration: ``config`` as simulstream reads it, with the
    checkpoint and each ``KEY=VALUE`` of ``overrides`` put in."""
    if not config.is_file():
        raise MissingFile(f"--config {config}: no such file (the speech processor's YAML)")
    try:
        namespace = yaml_config(str(config))
    except yaml.YAMLError as error:
        raise BadValue(f"--config {config}: not valid YAML: {one_line(error)}") from None
    if not isinstance(namespace, SimpleNamespace) or not hasattr(namespace, "type"):
        raise BadValue(f"--config {config}: a mapping with 'type' (the processor class) "
                       f"is expected")
    namespace.checkpoint = str(checkpoint)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BadValue(f"--set {item}: expected KEY=VALUE")
        try:
            setattr(namespace, key.strip(), yaml.safe_load(value))
        except yaml.YAMLError as error:
            raise BadValue(f"--set {item}: the value is not YAML: {one_line(error)}") from None
    return namespace


async def start_server(args: argparse.Namespace, config: SimpleNamespace) -> Server:
    """Load ``--pool-size`` processors, then listen: the page and the WebSocket."""
    # simulstream's server module imports torch and librosa: not before the checks above.
    from simulstream.metrics.logger import setup_metrics_logger
    from simulstream.server.websocket_server import (
        SpeechProcessorPool,
        connection_handler_factory,
    )

    setup_metrics_logger(SimpleNamespace(enabled=args.metrics_log is not None,
                                         filename=str(args.metrics_log)))
    LOGGER.info("loading %d speech processor(s): %s", args.pool_size, config.type)
    pool = SpeechProcessorPool(config, args.pool_size, args.acquire_timeout)
    handler = guarded(connection_handler_factory(pool), args.pool_size)
    try:
        # simulstream_server never pings (ping_timeout=None): a client whose network vanished
        # without closing (a laptop put to sleep) would hold its processor for good.
        # The closing handshake after a missed ping waits as long (websockets' default: 10 s).
        keepalive = args.keepalive or None
        return await serve(handler, args.host, args.port, ping_interval=keepalive,
                           ping_timeout=keepalive, close_timeout=keepalive or 10,
                           process_request=respond)
    except OSError as error:  # taken while the model loaded
        raise BadValue(_bind_error(args.host, args.port, error)) from None


def url(server: Server) -> str:
    """The page's address (the port the system chose for ``--port 0``)."""
    host, port = server.sockets[0].getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


async def run(args: argparse.Namespace, config: SimpleNamespace) -> None:
    """Serve until stopped (Ctrl-C, SIGTERM)."""
    async with await start_server(args, config) as server:
        LOGGER.info("serving the live demo on %s (Ctrl-C stops)", url(server))
        await server.serve_forever()


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(format="%(asctime)s | %(levelname)s | %(name)s | %(message)s",
                        datefmt="%Y-%m-%d %H:%M:%S", level=logging.INFO)  # simulstream's
    try:
        check_checkpoint(args.checkpoint)
        config = processor_config(args.config, args.checkpoint, args.overrides)
        check_port(args.host, args.port)
        asyncio.run(run(args, config))
    except UserError as error:  # as argparse reports a bad flag: one line, exit 2
        print(f"{PROG}: error: {one_line(error)}", file=sys.stderr, flush=True)
        sys.exit(2)
    except KeyboardInterrupt:
        LOGGER.info("stopped")


if __name__ == "__main__":
    main()
