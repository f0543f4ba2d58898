"""LogsQL that cannot be injected into: every name is a quoted value, never query text.

The store's query language is LogsQL (https://docs.victoriametrics.com/victorialogs/logsql/).
Its lexer reads a double-quoted token with Go's ``strconv.QuotedPrefix`` and
``strconv.Unquote`` (VictoriaLogs ``lib/logstorage/parser.go``, ``lexer.nextToken``), and a
quoted token is always one value: it can neither end the filter nor start a pipe, an ``or``,
a ``*`` wildcard or a new ``_stream:{...}`` (``nextCompoundTokenExt`` returns quoted tokens
as they are). :func:`quote` writes that literal, in ASCII only: ``\\"`` and ``\\\\`` for the
quote and the backslash, printable ASCII as is, everything else (newlines, other control
characters, any non-ASCII character) as a ``\\uXXXX``/``\\UXXXXXXXX`` escape, which Go's
``Unquote`` turns back into the same code point. Surrogate code points are not characters
(Go rejects them) and raise :class:`InvalidValueError`.

The builders put user-supplied names (tool namespace, job, pod, container) only through
:func:`quote`, into the equality matchers of one stream filter (``"field"="value"``: exact
match, never a regular expression). Numbers (limits) are Python ``int`` checked for range;
times travel as the HTTP ``start``/``end`` arguments of the query API, formatted here from
integers, not in the query text. The only other query text is this module's own constants
(pipes and field names).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final

from toolforge_logstore import fields

__all__ = [
    "MAX_LIMIT",
    "MAX_VALUE_LENGTH",
    "Direction",
    "InvalidValueError",
    "LogQuery",
    "StreamSelector",
    "TailQuery",
    "Timestamp",
    "format_rfc3339_ns",
    "parse_rfc3339_ns",
    "quote",
    "to_ns",
]

#: Longest value accepted in a selector (a Kubernetes name has at most 253 characters; this
#: leaves room and keeps a query far below the store's ``-search.maxQueryLen`` of 16 KiB).
MAX_VALUE_LENGTH: Final = 1024
#: Largest ``limit`` of one query.
MAX_LIMIT: Final = 100_000

#: A point in time: an aware ``datetime`` or integer nanoseconds since the Unix epoch (UTC).
Timestamp = datetime | int

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$"
)


class InvalidValueError(ValueError):
    """A value that cannot be put into a query (empty, too long, not text, a surrogate)."""


def quote(value: str) -> str:
    """``value`` as a LogsQL double-quoted string literal (ASCII, Go escape syntax).

    Raises :class:`InvalidValueError` for a value that is not a ``str`` or holds a surrogate code
    point (U+D800..U+DFFF), which no UTF-8 text can contain.
    """
    if not isinstance(value, str):
        raise InvalidValueError(f"expected text, got {type(value).__name__}")
    out = ['"']
    for char in value:
        code = ord(char)
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif 0x20 <= code < 0x7F:
            out.append(char)
        elif 0xD800 <= code <= 0xDFFF:
            raise InvalidValueError(f"surrogate code point U+{code:04X} is not a character")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def _check_value(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidValueError(f"{name}: expected text, got {type(value).__name__}")
    if not value:
        # An empty value would match streams *without* the field (Prometheus selector rules).
        raise InvalidValueError(f"{name}: must not be empty")
    if len(value) > MAX_VALUE_LENGTH:
        raise InvalidValueError(f"{name}: longer than {MAX_VALUE_LENGTH} characters")
    try:
        quote(value)
    except InvalidValueError as exc:
        raise InvalidValueError(f"{name}: {exc}") from None
    return value


@dataclass(frozen=True)
class StreamSelector:
    """Which streams to read: always one namespace, optionally one job, pod and container.

    Every given value must be a non-empty ``str`` of at most :data:`MAX_VALUE_LENGTH`
    characters without surrogates (else :class:`InvalidValueError`); it is matched exactly.
    """

    namespace: str
    job: str | None = None
    pod: str | None = None
    container: str | None = None

    def __post_init__(self) -> None:
        _check_value("namespace", self.namespace)
        for name in ("job", "pod", "container"):
            value = getattr(self, name)
            if value is not None:
                _check_value(name, value)

    def matchers(self) -> list[tuple[str, str]]:
        """``(field, value)`` pairs, namespace first."""
        pairs = [(fields.NAMESPACE, self.namespace)]
        for name, value in (
            (fields.JOB, self.job),
            (fields.POD, self.pod),
            (fields.CONTAINER, self.container),
        ):
            if value is not None:
                pairs.append((name, value))
        return pairs

    def logsql(self) -> str:
        """The stream filter, e.g. ``_stream:{"kubernetes.pod_namespace"="tool-a"}``."""
        inner = ",".join(f"{quote(name)}={quote(value)}" for name, value in self.matchers())
        return f"_stream:{{{inner}}}"


def _fields_pipe() -> str:
    return "fields " + ", ".join(quote(name) for name in fields.RESULT_FIELDS)


class Direction(StrEnum):
    """Order of a query's lines by time: oldest first or newest first."""

    FORWARD = "forward"
    BACKWARD = "backward"


def to_ns(value: Timestamp) -> int:
    """Nanoseconds since the epoch; a ``datetime`` must be timezone-aware (else
    :class:`InvalidValueError`)."""
    if isinstance(value, bool) or not isinstance(value, int | datetime):
        raise InvalidValueError(
            f"expected a datetime or int nanoseconds, got {type(value).__name__}"
        )
    if isinstance(value, int):
        return value
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidValueError("a datetime must be timezone-aware")
    return (value - _EPOCH) // timedelta(microseconds=1) * 1000


def format_rfc3339_ns(ns: int) -> str:
    """``2026-12-04T21:03:57.405689748Z`` (always nine fraction digits, UTC)."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    moment = _EPOCH + timedelta(seconds=seconds)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{fraction:09d}Z"


def parse_rfc3339_ns(text: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 time with up to nine fraction digits, as the
    store writes ``_time``. Raises :class:`ValueError` for anything else."""
    match = _RFC3339.match(text)
    if not match:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    date, clock, fraction, offset = match.groups()
    offset = "+00:00" if offset in ("Z", "z") else offset
    moment = datetime.fromisoformat(f"{date}T{clock}{offset}")
    seconds = (moment - _EPOCH) // timedelta(seconds=1)
    return seconds * 1_000_000_000 + int((fraction or "").ljust(9, "0"))


@dataclass(frozen=True)
class LogQuery:
    """One read of ``/select/logsql/query``: the lines of ``selector`` with
    ``start <= _time < end`` (either bound optional), in ``direction`` order, at most ``limit``.

    Raises :class:`InvalidValueError` for a ``limit`` outside ``1..MAX_LIMIT``, a naive datetime,
    or ``start > end``.
    """

    selector: StreamSelector
    start: Timestamp | None = None
    end: Timestamp | None = None
    limit: int | None = None
    direction: Direction = Direction.FORWARD
    _range: tuple[int | None, int | None] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.limit is not None and (
            isinstance(self.limit, bool)
            or not isinstance(self.limit, int)
            or not 1 <= self.limit <= MAX_LIMIT
        ):
            raise InvalidValueError(f"limit must be an integer in 1..{MAX_LIMIT}")
        start = None if self.start is None else to_ns(self.start)
        end = None if self.end is None else to_ns(self.end)
        if start is not None and end is not None and start > end:
            raise InvalidValueError("start is after end")
        object.__setattr__(self, "_range", (start, end))
        Direction(self.direction)

    @property
    def uses_limit_argument(self) -> bool:
        """Newest-first with a limit: the query API's ``limit`` argument returns the ``limit``
        most recent lines (it searches backwards through the time range), where a ``sort``
        pipe would read every line of the range first: 7 ms against 450 ms for the last 100
        of one million lines (``docs/logs.md``). The lines then come unsorted; the client
        sorts them."""
        return self.direction is Direction.BACKWARD and self.limit is not None

    def logsql(self) -> str:
        """The query text: stream filter, ``sort`` by time (``_stream_id`` breaks ties, so the
        order is total) with the ``limit`` (unless :attr:`uses_limit_argument`), and the
        ``fields`` pipe."""
        if self.uses_limit_argument:
            return f"{self.selector.logsql()} | {_fields_pipe()}"
        order = "" if self.direction is Direction.FORWARD else " desc"
        sort = f"sort by (_time{order}, _stream_id{order})"
        if self.limit is not None:
            sort += f" limit {self.limit}"
        return f"{self.selector.logsql()} | {sort} | {_fields_pipe()}"

    def params(self) -> dict[str, str]:
        """HTTP arguments of ``/select/logsql/query`` (``query``, ``start``, ``end``, and
        ``limit`` when :attr:`uses_limit_argument`)."""
        result = {"query": self.logsql()}
        start, end = self._range
        if start is not None:
            result["start"] = format_rfc3339_ns(start)
        if end is not None:
            result["end"] = format_rfc3339_ns(end)
        if self.uses_limit_argument:
            result["limit"] = str(self.limit)
        return result


@dataclass(frozen=True)
class TailQuery:
    """A live tail of ``/select/logsql/tail``: new lines of ``selector`` as they arrive, after
    the lines of the last ``history`` (none when ``None``).

    How the store tails (``app/vlselect/logsql/logsql.go``, ``ProcessLiveTailRequest``): every
    ``refresh`` it queries the lines with ``_time`` in ``[previous end - 5 s, now - delay)``
    and sends those newer than the last one it sent of their stream. So a line is shown
    ``delay`` after it was printed at the earliest, and a line that becomes searchable more
    than ``delay`` + 5 s after it was printed is never shown: ``delay`` must exceed the
    collector's worst print-to-searchable time (``docs/logs.md``). Lines of different streams
    may come out of order. The tail API refuses ``sort`` and ``limit`` pipes.

    Raises :class:`InvalidValueError` for a negative ``history``, a negative ``delay`` or a
    ``refresh`` that is not positive.
    """

    selector: StreamSelector
    history: timedelta | None = None
    #: ``offset``: how far behind now the tail stays (the store's default is 5 s).
    delay: timedelta | None = None
    #: ``refresh_interval``: how often the store looks for new lines (its default is 1 s).
    refresh: timedelta | None = None

    def __post_init__(self) -> None:
        if self.history is not None and self.history < timedelta(0):
            raise InvalidValueError("history must not be negative")
        if self.delay is not None and self.delay < timedelta(0):
            raise InvalidValueError("delay must not be negative")
        if self.refresh is not None and self.refresh <= timedelta(0):
            raise InvalidValueError("refresh must be positive")

    def logsql(self) -> str:
        """The query text: stream filter and ``fields`` pipe."""
        return f"{self.selector.logsql()} | {_fields_pipe()}"

    def params(self) -> Mapping[str, str]:
        """HTTP arguments of ``/select/logsql/tail``: ``query``, and in milliseconds
        ``start_offset``, ``offset`` and ``refresh_interval`` when given."""
        result = {"query": self.logsql()}
        for name, value in (
            ("start_offset", self.history),
            ("offset", self.delay),
            ("refresh_interval", self.refresh),
        ):
            if value is not None:
                result[name] = f"{value // timedelta(milliseconds=1)}ms"
        return result
