"""Pure helpers of the logs endpoint: pod log bytes -> NDJSON records.

The pod log API with ``timestamps=true`` prefixes every line with its RFC 3339 time and a
space (``2024-05-01T12:00:00.123456789Z hello``). GET ``/v1/tool/{t}/jobs/{name}/logs`` answers
one JSON object per line (NDJSON, https://github.com/ndjson/ndjson-spec) with the fields of
:class:`~toolforge_jobs.models.LogLine`: ``{pod, container, datetime, message}``
(REFERENCE.md, "Jobs API (v1)").
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from toolforge_jobs.models import LogLine

__all__ = ["LogRecord", "parse_log_line"]


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
