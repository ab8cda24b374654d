"""simulstream's connection handler, with a clear message to a client whose input it cannot use.

The live server runs simulstream 1.0.0's own handler (``connection_handler_factory``: a speech
processor from the pool per client, audio to ``MessageProcessor``, ``{"new", "deleted"}`` JSON
back, ``{"end_of_processing": true}`` after ``end_of_stream``). That handler only logs what goes
wrong; the client learns nothing, or sees the connection drop. :func:`guarded` hands it a
:class:`GuardedConnection` in place of the client's connection, which

- refuses each message ``protocol.py`` finds unusable with ``{"error": reason}`` to that client,
  and passes the rest on, so the stream goes on with the client's good messages;
- tells a client that waited ``acquire_timeout`` seconds for a processor that all are busy
  (close code 1013, "try again later"), where simulstream closes without a word;
- tells a client when the handler gave up on its stream (a processor error, logged by
  simulstream with its traceback), with close code 1011, where simulstream closes silently;
- tells a client when ``end_of_stream`` failed (simulstream logs it and never answers).

Every client has its own processor, handler and connection, so none of this touches another
client's stream; a client that disconnects mid-stream ends its handler, which clears its
processor and returns it to the pool (simulstream's ``finally``).
"""
from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from fairseq_mgcm.live.protocol import StreamState, check_audio, check_text, error_message

__all__ = ["GuardedConnection", "guarded"]

LOGGER = logging.getLogger("fairseq_mgcm.live")

Handler = Callable[[Any], Awaitable[None]]

BUSY_CODE, SERVER_ERROR_CODE = 1013, 1011  # RFC 6455 / IANA: try again later, internal error


class GuardedConnection:
    """What simulstream's handler reads from and writes to: the client's connection, checked.

    The handler uses only ``async for``, ``send``, ``close`` and ``id()`` of its connection.
    """

    def __init__(self, connection: ServerConnection, pool_size: int) -> None:
        self._connection = connection
        self._pool_size = pool_size
        self._state = StreamState()
        self.started = False  # the handler got a processor and began reading
        self.finished = False  # the client's messages ended (it closed the connection)
        self._ended_streams = 0  # end_of_processing messages the handler sent

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[str | bytes]:
        self.started = True
        async for message in self._connection:
            if isinstance(message, bytes):
                reason = check_audio(message)
            else:
                reason = check_text(message, self._state)
            if reason:
                LOGGER.warning("client %s: %s", id(self), reason)
                await self._connection.send(error_message(reason))
                continue
            self._state.passed(message)
            ended = self._ended_streams
            yield message
            # The handler asks for the next message only once it has dealt with this one.
            if isinstance(message, str) and "end_of_stream" in json.loads(message) \
                    and self._ended_streams == ended:
                await self._connection.send(error_message(
                    "the server could not finish the stream (its log has the reason)"))
        self.finished = True

    async def send(self, message: str | bytes) -> None:
        if isinstance(message, str) and json.loads(message).get("end_of_processing"):
            self._ended_streams += 1
        await self._connection.send(message)

    async def close(self) -> None:
        """simulstream 1.0.0 closes a connection itself only when no processor came free in
        time; anything else closes as simulstream would."""
        if self.started:
            await self._connection.close()
            return
        reason = f"all {self._pool_size} speech processors are busy; try again later"
        LOGGER.warning("client %s: %s", id(self), reason)
        with contextlib.suppress(ConnectionClosed):  # the client left while it waited
            await self._connection.send(error_message(reason))
        await self._connection.close(BUSY_CODE, "server busy")

    async def close_after_failure(self) -> None:
        """Tell the client that the handler stopped on its stream (if it is still there)."""
        if self.started and not self.finished and self._connection.state is State.OPEN:
            reason = "the server stopped processing this stream on an error (its log has it)"
            with contextlib.suppress(ConnectionClosed):  # the client left meanwhile
                await self._connection.send(error_message(reason))
            await self._connection.close(SERVER_ERROR_CODE, "processing error")


def guarded(handler: Handler, pool_size: int) -> Callable[[ServerConnection], Awaitable[None]]:
    """``handler`` (simulstream's) run on each client's :class:`GuardedConnection`."""

    async def handle(connection: ServerConnection) -> None:
        guard = GuardedConnection(connection, pool_size)
        await handler(guard)
        await guard.close_after_failure()

    return handle
