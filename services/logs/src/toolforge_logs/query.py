"""The pure core of the logs API: request parameters -> store queries -> one page and the
cursor of the next. No I/O; tested against golden files (``tests/logs/golden``).

Parameters (as upstream's clients send them):

- ``since``/``until``: RFC 3339 / ISO 8601 times (a time without an offset is UTC) or a
  duration before ``now`` (``1h32m22s``, units ``w d h m s``); default ``since`` is
  ``default_since`` before now, default ``until`` is now. The range is ``since <= time <
  until``. The first page resolves both to absolute times and every ``next.url`` carries them,
  so the range does not move while a client pages.
- ``direction``: ``oldest_first`` (default) or ``newest_first`` (``forward``/``backward``
  are accepted too).
- ``lines``: at most this many lines in all pages together (``None``: all of the range).
- ``cursor``: ``<time_ns>.<seen>`` from a ``next.url``: the page starts at ``time_ns`` and
  skips the ``seen`` lines of exactly that time that earlier pages delivered.

Paging is exact: lines are ordered by ``(time, stream)`` (the store's total order, see
``toolforge_logstore.logsql``). Each query of a page asks for ``page_size + seen + 1`` lines;
when a query fills that limit, the lines at its last time may be cut off by the limit, so the
page ends before that time and the next page starts at it. A page therefore always ends on a
time whose lines it holds completely (or the next page skips the ones delivered), and paging
neither loses nor repeats a line. Names (namespace, job) only ever reach the store as
quoted values of a :class:`~toolforge_logstore.StreamSelector`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final
from urllib.parse import urlencode

from toolforge_logstore.logsql import (
    MAX_LIMIT,
    Direction,
    InvalidValueError,
    LogQuery,
    StreamSelector,
    format_rfc3339_ns,
    parse_rfc3339_ns,
    to_ns,
)

if TYPE_CHECKING:
    from toolforge_logstore.client import LogEntry

__all__ = [
    "Cursor",
    "InvalidParameter",
    "LogsRequest",
    "Page",
    "assemble_page",
    "build_queries",
    "next_url",
    "parse_cursor",
    "parse_direction",
    "parse_time",
    "stream_namespace",
]

#: The sources a read may select: a container's output, and the jobs API's job events.
RUN_LOGS: Final = "run-logs"
JOB_EVENTS: Final = "jobs"
#: Appended to the tool's namespace for its job events in the store: no Kubernetes namespace
#: holds a ``/``, so the collector can never write a row there.
EVENTS_SUFFIX: Final = "/jobs-api"


def stream_namespace(namespace: str, source: str) -> str:
    """The store namespace of ``source`` (:data:`RUN_LOGS` or :data:`JOB_EVENTS`) of the tool
    whose namespace is ``namespace``."""
    return namespace + EVENTS_SUFFIX if source == JOB_EVENTS else namespace


_DURATION = re.compile(
    r"^(?:(\d{1,9})w)?(?:(\d{1,9})d)?(?:(\d{1,9})h)?(?:(\d{1,9})m)?(?:(\d{1,9})s)?$"
)
_CURSOR = re.compile(r"^(\d{1,20})\.(\d{1,9})$")
_UNITS: Final = ("weeks", "days", "hours", "minutes", "seconds")
_DIRECTIONS: Final = {
    "oldest_first": Direction.FORWARD,
    "forward": Direction.FORWARD,
    "newest_first": Direction.BACKWARD,
    "backward": Direction.BACKWARD,
}
_WIRE_DIRECTION: Final = {Direction.FORWARD: "oldest_first", Direction.BACKWARD: "newest_first"}


class InvalidParameter(ValueError):  # noqa: N818 - reads as what was wrong
    """A parameter that cannot be used; the message names it (answered 400)."""


def parse_time(name: str, text: str, now_ns: int) -> int:
    """``text`` (an RFC 3339 time, an ISO 8601 time, or a duration before ``now_ns``) as
    nanoseconds since the epoch.

    Raises:
        InvalidParameter: anything else, or a duration of zero.
    """
    text = text.strip()
    match = _DURATION.fullmatch(text)
    if text and match:
        amounts = {unit: int(v) for unit, v in zip(_UNITS, match.groups(), strict=True) if v}
        if not amounts or not any(amounts.values()):
            raise InvalidParameter(f"{name}: a duration must not be zero")
        return now_ns - timedelta(**amounts) // timedelta(microseconds=1) * 1000
    try:
        return parse_rfc3339_ns(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidParameter(
            f"{name}: expected an ISO 8601 time (2026-03-02T21:29:55+01:00) or a duration "
            "(1h32m22s)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return to_ns(moment)
    except (InvalidValueError, OverflowError) as exc:
        raise InvalidParameter(f"{name}: {exc}") from None


def parse_direction(text: str | None) -> Direction:
    """``oldest_first`` (default), ``newest_first``, ``forward`` or ``backward``.

    Raises:
        InvalidParameter: another value.
    """
    if text is None or text == "":
        return Direction.FORWARD
    try:
        return _DIRECTIONS[text.lower()]
    except KeyError:
        raise InvalidParameter("direction: expected oldest_first or newest_first") from None


@dataclass(frozen=True)
class Cursor:
    """Where a page starts: at ``time_ns``, after the ``seen`` lines of exactly that time
    that earlier pages delivered."""

    time_ns: int
    seen: int

    def text(self) -> str:
        """``<time_ns>.<seen>``."""
        return f"{self.time_ns}.{self.seen}"


def parse_cursor(text: str | None) -> Cursor | None:
    """The cursor of a ``next.url``; ``None`` for none.

    Raises:
        InvalidParameter: not ``<time_ns>.<seen>``.
    """
    if text is None or text == "":
        return None
    match = _CURSOR.fullmatch(text)
    if match is None:
        raise InvalidParameter("cursor: not a cursor of this API (use next.url as it is)")
    return Cursor(int(match.group(1)), int(match.group(2)))


@dataclass(frozen=True)
class LogsRequest:
    """One page to read: the tool's ``namespace``, the ``jobs`` (empty: every line of the
    namespace), the range ``start_ns <= time < end_ns``, the ``direction``, the lines still
    wanted (``None``: all), the ``cursor`` and the ``sources`` (:data:`RUN_LOGS`,
    :data:`JOB_EVENTS`).

    Raises:
        InvalidParameter: an empty range, a cursor outside it, a non-positive ``lines``, or a
            name the store cannot take as a value.
    """

    namespace: str
    jobs: tuple[str, ...]
    start_ns: int
    end_ns: int
    direction: Direction
    lines: int | None = None
    cursor: Cursor | None = None
    sources: tuple[str, ...] = (RUN_LOGS,)

    def __post_init__(self) -> None:
        if self.start_ns >= self.end_ns:
            raise InvalidParameter("since: must be before until")
        if self.lines is not None and self.lines < 1:
            raise InvalidParameter("lines: must be at least 1")
        if self.cursor is not None and not self.start_ns <= self.cursor.time_ns < self.end_ns:
            raise InvalidParameter("cursor: outside the range of since and until")
        try:
            self.selectors()
        except InvalidValueError as exc:
            raise InvalidParameter(str(exc)) from None

    def selectors(self) -> list[StreamSelector]:
        """One stream selector per source and job (or per source, of every job)."""
        out = []
        for source in self.sources:
            namespace = stream_namespace(self.namespace, source)
            if not self.jobs:
                out.append(StreamSelector(namespace))
            out.extend(StreamSelector(namespace, job=job) for job in self.jobs)
        return out

    def limit(self, page_size: int) -> int:
        """Lines each query asks for: a page (no more than the lines still wanted), the
        ``seen`` lines it skips, and one more that tells whether the query was cut by its
        limit."""
        seen = self.cursor.seen if self.cursor else 0
        page = page_size if self.lines is None else min(page_size, self.lines)
        return min(page + seen + 1, MAX_LIMIT)

    def follow_up(self, cursor: Cursor, delivered: int) -> LogsRequest:
        """The request of the next page after ``delivered`` lines up to ``cursor``."""
        lines = None if self.lines is None else self.lines - delivered
        return replace(self, cursor=cursor, lines=lines)


def build_queries(request: LogsRequest, page_size: int) -> list[LogQuery]:
    """The store queries of one page: one per selector, over the range narrowed by the cursor
    (forward: from its time on; backward: up to and including its time)."""
    start, end = request.start_ns, request.end_ns
    if request.cursor is not None:
        if request.direction is Direction.FORWARD:
            start = request.cursor.time_ns
        else:
            end = request.cursor.time_ns + 1
    limit = request.limit(page_size)
    return [
        LogQuery(selector, start=start, end=end, limit=limit, direction=request.direction)
        for selector in request.selectors()
    ]


@dataclass(frozen=True)
class Page:
    """The lines of one page, in the request's direction, and the next page's request
    (``None`` on the last page)."""

    entries: list[LogEntry]
    next: LogsRequest | None


def _key(entry: LogEntry) -> tuple[int, str]:
    return entry.time_ns, entry.stream_id


def assemble_page(
    request: LogsRequest, results: Sequence[Sequence[LogEntry]], page_size: int
) -> Page:
    """One page from the answers of :func:`build_queries` (each in the request's direction,
    as the store client returns them). See the module documentation for the rules."""
    backward = request.direction is Direction.BACKWARD
    limit = request.limit(page_size)
    lo = request.start_ns
    hi = request.cursor.time_ns + 1 if backward and request.cursor else request.end_ns
    if not backward and request.cursor:
        lo = request.cursor.time_ns
    merged = sorted(
        (e for result in results for e in result if lo <= e.time_ns < hi),
        key=_key,
        reverse=backward,
    )
    # A query cut by its limit may lack lines at its last time and beyond.
    cut_at = [result[-1].time_ns for result in results if len(result) >= limit]
    complete = merged
    if cut_at:
        boundary = max(cut_at) if backward else min(cut_at)
        inside = [e for e in merged if (e.time_ns > boundary if backward else e.time_ns < boundary)]
        # Only when more than a page of lines share one nanosecond (never seen) is a page cut
        # inside a time; the tie order is then the store's sort.
        complete = (
            inside if len(inside) > (request.cursor.seen if request.cursor else 0) else merged
        )
    skip = 0
    if request.cursor is not None:
        skip = sum(
            1 for e in complete[: request.cursor.seen] if e.time_ns == request.cursor.time_ns
        )
    available = complete[skip:]
    want = page_size if request.lines is None else min(page_size, request.lines)
    entries = available[:want]
    more = len(available) > len(entries) or bool(cut_at)
    if not entries or not more or (request.lines is not None and len(entries) >= request.lines):
        return Page(entries, None)
    last = entries[-1].time_ns
    seen = sum(1 for e in entries if e.time_ns == last)
    if request.cursor is not None and request.cursor.time_ns == last:
        seen += skip
    return Page(entries, request.follow_up(Cursor(last, seen), len(entries)))


def next_url(request: LogsRequest, extra: dict[str, str] | None = None) -> str:
    """The ``next.url`` of ``request`` (a page's follow-up): ``?`` and the query of the same
    route, with the absolute range, the direction, the lines still wanted and the cursor;
    ``extra`` adds route parameters (``job_names``, ``sources``)."""
    params = dict(extra or {})
    params["direction"] = _WIRE_DIRECTION[request.direction]
    params["since"] = format_rfc3339_ns(request.start_ns)
    params["until"] = format_rfc3339_ns(request.end_ns)
    if request.lines is not None:
        params["lines"] = str(request.lines)
    if request.cursor is not None:
        params["cursor"] = request.cursor.text()
    return "?" + urlencode(sorted(params.items()))
