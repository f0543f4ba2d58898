"""Streaming pieces every backend needs: byte streams cut into bounded lines, and a
streamed NDJSON response (https://github.com/ndjson/ndjson-spec) that stops when the client
goes away.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Callable

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

__all__ = ["NDJSON", "LineSplitter", "NDJSONStreamingResponse", "iter_lines"]

#: The media type of newline-delimited JSON.
NDJSON = "application/x-ndjson"


class LineSplitter:
    """Splits a byte stream into lines of at most ``max_bytes`` bytes (without ``\\n``).

    A longer line is cut: its first ``max_bytes`` bytes are a line and the rest up to the
    next newline is dropped, so one runaway line cannot exhaust memory.
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        self._max = max_bytes
        self._buffer = bytearray()
        self._dropping = False

    def feed(self, chunk: bytes) -> list[bytes]:
        """The lines completed by ``chunk``."""
        lines: list[bytes] = []
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                break
            self._take(chunk[start:end], lines, complete=True)
            start = end + 1
        self._take(chunk[start:], lines, complete=False)
        return lines

    def _take(self, piece: bytes, lines: list[bytes], *, complete: bool) -> None:
        if not self._dropping:
            room = self._max - len(self._buffer)
            self._buffer += piece[:room]
            if len(piece) > room:
                lines.append(bytes(self._buffer))
                self._buffer.clear()
                self._dropping = True
        if complete:
            if not self._dropping:
                lines.append(bytes(self._buffer))
            self._buffer.clear()
            self._dropping = False

    def flush(self) -> list[bytes]:
        """The last line when the stream ended without a newline."""
        rest = [bytes(self._buffer)] if self._buffer and not self._dropping else []
        self._buffer.clear()
        self._dropping = False
        return rest


async def iter_lines(chunks: AsyncIterable[bytes], max_bytes: int) -> AsyncIterator[bytes]:
    """Lines (see :class:`LineSplitter`) of an async byte stream, the last one included even
    without a final newline."""
    splitter = LineSplitter(max_bytes)
    async for chunk in chunks:
        for line in splitter.feed(chunk):
            yield line
    for line in splitter.flush():
        yield line


class NDJSONStreamingResponse(StreamingResponse):
    """A streamed NDJSON body (``X-Accel-Buffering: no`` so proxies do not buffer it,
    ``Cache-Control: no-store``).

    Whatever ASGI version the server speaks, the response watches for the client's
    ``http.disconnect`` and then stops: the body iterator is cancelled and closed, so the
    upstream connections it holds (pod logs, a log store query) close with it.
    ``on_open``/``on_close`` are called when streaming starts and ends (e.g. a gauge of open
    streams).
    """

    media_type = NDJSON

    def __init__(
        self,
        content: AsyncIterator[bytes],
        *,
        on_open: Callable[[], None] | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(content, headers={"X-Accel-Buffering": "no", "Cache-Control": "no-store"})
        self._iterator = content
        self._on_open = on_open
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._on_open is not None:
            self._on_open()
        try:
            async with anyio.create_task_group() as group:

                async def stream() -> None:
                    with contextlib.suppress(OSError):  # the client went away while we sent
                        await self.stream_response(send)
                    group.cancel_scope.cancel()

                group.start_soon(stream)
                await self.listen_for_disconnect(receive)
                group.cancel_scope.cancel()
        finally:
            aclose = getattr(self._iterator, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True):
                    await aclose()
            if self._on_close is not None:
                self._on_close()
