"""The demo page, served on the WebSocket server's own port.

simulstream 1.0.0 ships no page in its wheel (its ``http_server`` serves a folder you bring, on
a second port). Ours lives in ``web/`` and is answered from websockets' ``process_request``
hook: a plain HTTP GET gets a file, a WebSocket upgrade goes on to the handshake. One port then
serves both, so the page connects back to the host and port it came from and nothing needs
configuring, and a browser's same-origin rules never get in the way.
"""
from __future__ import annotations

from http import HTTPStatus
from pathlib import Path

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

__all__ = ["PAGES", "WEB", "respond"]

WEB = Path(__file__).resolve().parent / "web"
# URL path -> (file in web/, content type): only these are served, nothing else of the disk.
PAGES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/capture.js": ("capture.js", "text/javascript; charset=utf-8"),
}


def _is_upgrade(request: Request) -> bool:
    return "websocket" in request.headers.get("Upgrade", "").lower()


def page(path: str) -> Response:
    """The response to a GET of ``path`` (query string ignored): a file of ``PAGES`` or 404."""
    name, kind = PAGES.get(path.split("?", 1)[0], (None, "text/plain; charset=utf-8"))
    if name is None:
        status, body = HTTPStatus.NOT_FOUND, f"{path}: not found; the demo is at /\n".encode()
    else:
        status, body = HTTPStatus.OK, (WEB / name).read_bytes()
    headers = Headers([("Content-Type", kind), ("Content-Length", str(len(body))),
                       ("Cache-Control", "no-store"), ("Connection", "close")])
    return Response(status.value, status.phrase, headers, body)


def respond(connection: ServerConnection, request: Request) -> Response | None:
    """websockets' ``process_request``: a page for plain GETs, ``None`` (go on) for upgrades."""
    return None if _is_upgrade(request) else page(request.path)
