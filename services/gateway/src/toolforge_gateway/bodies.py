"""Request and response bodies on the gateway's proxy path, as ASGI messages: the request body
streamed up under a size limit, the rest of a refused body drained, the response body copied
down chunk by chunk (bounded by its Content-Length or not)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator

from starlette.types import Receive, Send

from toolforge_gateway.upstream import ReadError

__all__ = [
    "BodyTooLargeError",
    "ClientGoneError",
    "copy_bounded",
    "copy_unbounded",
    "discard_body",
    "stream_body",
    "wait_for_disconnect",
]


class BodyTooLargeError(Exception):
    """The request body grew past ``limits.max_body_bytes`` while being streamed;
    ``more_body``: the client has more to send."""

    def __init__(self, more_body: bool) -> None:
        super().__init__("request body too large")
        self.more_body = more_body


class ClientGoneError(Exception):
    """The client disconnected while its request body was being read."""


async def stream_body(
    first: bytes, receive: Receive, limit: int, expected: int | None
) -> AsyncIterator[bytes]:
    """The request body, starting with ``first``, as the client sends it.

    Raises :class:`BodyTooLargeError` past ``limit`` bytes and :class:`ClientGoneError` on
    disconnect.
    ``expected`` is the Content-Length, if any (the server enforces it; this is a backstop).
    """
    total = len(first)
    if first:
        yield first
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGoneError
        chunk: bytes = message.get("body", b"")
        total += len(chunk)
        if total > limit or (expected is not None and total > expected):
            raise BodyTooLargeError(message.get("more_body", False))
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


async def discard_body(receive: Receive, budget: int, seconds: float) -> None:
    """Read and drop the rest of the request body: at most ``budget`` bytes, ``seconds``."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while budget >= 0:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                budget -= len(message.get("body", b""))
                if not message.get("more_body", False):
                    return


async def wait_for_disconnect(receive: Receive) -> None:
    """Return once the client has disconnected (other messages are dropped)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def copy_bounded(stream: AsyncIterable[bytes], send: Send, length: int) -> None:
    """Copy a body of ``length`` bytes; the last chunk completes the response. The stream is
    read to its end even so, which lets the connection go back to the pool."""
    remaining = length
    complete = False
    async for chunk in stream:
        if chunk and not complete:
            remaining -= len(chunk)
            complete = remaining <= 0
            await send({"type": "http.response.body", "body": chunk, "more_body": not complete})
    if remaining > 0:  # the backend closed early; the pool normally raises before this
        raise ReadError("the response body is shorter than its Content-Length")
    if not complete:
        await send({"type": "http.response.body", "body": b""})


async def copy_unbounded(stream: AsyncIterable[bytes], send: Send) -> None:
    """Copy a body of unknown length chunk by chunk, then complete the response."""
    async for chunk in stream:
        if chunk:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})
