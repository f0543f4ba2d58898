"""Pure helpers of the logs endpoint: pod log bytes -> NDJSON records.

The pod log API with ``timestamps=true`` prefixes every line with its RFC 3339 time and a
space (``2024-05-01T12:00:00.123456789Z hello``). GET ``/v1/tool/{t}/jobs/{name}/logs`` answers
one JSON object per line (NDJSON, https://github.com/ndjson/ndjson-spec) with the fields of
:class:`~toolforge_jobs.models.LogLine`: ``{pod, container, datetime, message}``
(REFERENCE.md, "Jobs API (v1)").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

from toolforge_jobs.models import LogLine

__all__ = ["LineSplitter", "LogRecord", "iter_lines", "parse_log_line"]


@dataclass(frozen=True, order=True)
class LogRecord:
    """One log line of a pod's container; ordered by time (then pod)."""

    datetime: dt.datetime
    pod: str
    container: str
    message: str

    def ndjson(self) -> bytes:
        """The record as one NDJSON line (a :class:`LogLine` plus ``\\n``)."""
        line = LogLine(
            pod=self.pod, container=self.container, datetime=self.datetime, message=self.message
        )
        return line.model_dump_json().encode() + b"\n"


def parse_log_line(raw: bytes, *, pod: str, container: str) -> LogRecord:
    """A ``timestamps=true`` line (without its newline) as a record. The message is decoded
    as UTF-8 (invalid bytes replaced). A line without a readable timestamp (which the API does
    not send) keeps its whole text as the message, timed at the epoch."""
    stamp, sep, rest = raw.partition(b" ")
    when: dt.datetime | None = None
    if sep:
        try:
            when = dt.datetime.fromisoformat(stamp.decode("ascii"))
        except ValueError:
            when = None
    if when is None:
        when, rest = dt.datetime.fromtimestamp(0, dt.UTC), raw
    elif when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    message = rest.decode("utf-8", errors="replace").removesuffix("\r")
    return LogRecord(datetime=when, pod=pod, container=container, message=message)


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
