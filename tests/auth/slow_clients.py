"""Abusive HTTP clients over real TLS sockets, for the connection-limit tests (issue 14,
finding 1): huge request heads, heads and bodies dribbled a byte at a time, idle connections.

Each probe returns what the server answered and how long it took until the server closed the
connection; it raises :class:`AssertionError` when the server has not closed it within the
probe's ``deadline`` (a bound with margin, never an exact timing).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from dataclasses import dataclass

__all__ = ["Outcome", "dribble", "idle", "many_headers", "one_megabyte_header", "send_all"]


@dataclass(frozen=True)
class Outcome:
    """What a probe saw: the bytes the server sent, and seconds from connect to its close."""

    answer: bytes
    seconds: float

    @property
    def status(self) -> int | None:
        """The HTTP status of the answer, ``None`` when the server sent nothing."""
        if not self.answer.startswith(b"HTTP/1.1 "):
            return None
        return int(self.answer.split(b" ", 2)[1])


def one_megabyte_header(path: str = "/") -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: x\r\nX-Big: ".encode() + b"a" * (1024 * 1024) + b"\r\n\r\n"
    )


def many_headers(path: str = "/", count: int = 10_000) -> bytes:
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(count))
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n".encode() + headers + b"\r\n"


async def _connect(
    port: int, context: ssl.SSLContext
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="127.0.0.1"
    )


async def _read_to_close(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes (a reset counts as a close)."""
    chunks = []
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        while chunk := await reader.read(65536):
            chunks.append(chunk)
    return b"".join(chunks)


async def _probe(
    port: int, context: ssl.SSLContext, deadline: float, pieces: list[bytes], interval: float
) -> Outcome:
    started = time.monotonic()
    reader, writer = await _connect(port, context)

    async def send() -> None:
        with contextlib.suppress(ConnectionError, ssl.SSLError, RuntimeError):
            for index, piece in enumerate(pieces):
                if index and interval:
                    await asyncio.sleep(interval)
                writer.write(piece)
                await writer.drain()

    sender = asyncio.create_task(send())
    try:
        answer = await asyncio.wait_for(_read_to_close(reader), deadline)
    except TimeoutError:
        raise AssertionError(f"the server kept the connection open for {deadline} s") from None
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
        writer.close()
    return Outcome(answer, time.monotonic() - started)


async def send_all(port: int, context: ssl.SSLContext, data: bytes, *, deadline: float) -> Outcome:
    """Send ``data`` as fast as the server takes it, read until the server closes."""
    return await _probe(port, context, deadline, [data], 0)


async def dribble(
    port: int, context: ssl.SSLContext, data: bytes, *, deadline: float, start: int = 0
) -> Outcome:
    """Send ``data[:start]`` at once, then the rest one byte a second, until the server
    closes (``data`` is long enough never to be complete before ``deadline``)."""
    rest = [data[i : i + 1] for i in range(start, len(data))]
    return await _probe(port, context, deadline, [data[:start], *rest], 1.0)


async def idle(
    port: int, context: ssl.SSLContext, *, deadline: float, first: bytes = b""
) -> Outcome:
    """Send ``first`` (e.g. one complete request), then nothing, until the server closes."""
    return await _probe(port, context, deadline, [first] if first else [], 0)
