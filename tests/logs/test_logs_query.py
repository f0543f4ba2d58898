"""The logs API's pure core: parameters, store queries (golden), and exact paging over
synthetic lines (every page boundary, ties in time across streams, both directions)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from golden import assert_golden
from toolforge_logs.query import (
    Cursor,
    InvalidParameter,
    LogsRequest,
    assemble_page,
    build_queries,
    next_url,
    parse_cursor,
    parse_direction,
    parse_time,
)
from toolforge_logstore import Direction, LogEntry

GOLDEN = Path(__file__).parent / "golden"
NOW = 1_796_418_000_000_000_000  # 2026-12-04T21:00:00Z
S = 1_000_000_000


def entry(time_ns: int, stream: str = "a" * 32, message: str = "") -> LogEntry:
    return LogEntry(
        time_ns=time_ns,
        message=message or f"{time_ns}/{stream[:1]}",
        namespace="tool-t",
        job="j",
        pod="p",
        container="job",
        container_id=None,
        stream_id=stream,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1h", NOW - 3600 * S),
        ("1h32m22s", NOW - (3600 + 32 * 60 + 22) * S),
        ("2d", NOW - 2 * 86400 * S),
        ("1w", NOW - 7 * 86400 * S),
        ("2026-12-04T21:00:00Z", NOW),
        ("2026-12-04T22:00:00+01:00", NOW),
        ("2026-12-04T21:00:00", NOW),
        ("2026-12-04T21:00:00.000000001Z", NOW + 1),
        ("2026-12-04", NOW - 21 * 3600 * S),
    ],
)
def test_times_are_iso_8601_or_durations_before_now(text: str, expected: int) -> None:
    assert parse_time("since", text, NOW) == expected


@pytest.mark.parametrize("text", ["", "0s", "1x", "yesterday", "1h 2m", "-1h", '1h"}|x', "h"])
def test_bad_times_are_refused_naming_the_parameter(text: str) -> None:
    with pytest.raises(InvalidParameter, match=r"^since"):
        parse_time("since", text, NOW)


def test_directions() -> None:
    assert parse_direction(None) is Direction.FORWARD
    assert parse_direction("oldest_first") is Direction.FORWARD
    assert parse_direction("NEWEST_FIRST") is Direction.BACKWARD
    assert parse_direction("backward") is Direction.BACKWARD
    with pytest.raises(InvalidParameter, match="direction"):
        parse_direction("sideways")


def test_cursors() -> None:
    assert parse_cursor(None) is None
    assert parse_cursor("12.3") == Cursor(12, 3)
    for bad in ("12", "a.1", "1.2.3", "-1.0", "1.0 | x"):
        with pytest.raises(InvalidParameter, match="cursor"):
            parse_cursor(bad)


def test_requests_refuse_empty_ranges_bad_lines_and_stray_cursors() -> None:
    with pytest.raises(InvalidParameter, match="since"):
        LogsRequest("tool-t", (), NOW, NOW, Direction.FORWARD)
    with pytest.raises(InvalidParameter, match="lines"):
        LogsRequest("tool-t", (), 0, NOW, Direction.FORWARD, lines=0)
    with pytest.raises(InvalidParameter, match="cursor"):
        LogsRequest("tool-t", (), 0, NOW, Direction.FORWARD, cursor=Cursor(NOW, 0))
    with pytest.raises(InvalidParameter, match="job"):
        LogsRequest("tool-t", ("",), 0, NOW, Direction.FORWARD)


def _golden_cases() -> dict[str, LogsRequest]:
    hour = 3600 * S
    return {
        "job-forward": LogsRequest("tool-t", ("j",), NOW - hour, NOW, Direction.FORWARD),
        "job-backward-lines": LogsRequest(
            "tool-t", ("j",), NOW - hour, NOW, Direction.BACKWARD, lines=100
        ),
        "job-forward-cursor": LogsRequest(
            "tool-t", ("j",), NOW - hour, NOW, Direction.FORWARD, cursor=Cursor(NOW - 5, 2)
        ),
        "job-backward-cursor": LogsRequest(
            "tool-t", ("j",), NOW - hour, NOW, Direction.BACKWARD, cursor=Cursor(NOW - 5, 1)
        ),
        "tool-all-jobs": LogsRequest("tool-t", (), NOW - hour, NOW, Direction.FORWARD),
        "tool-two-jobs": LogsRequest("tool-t", ("a", "b"), NOW - hour, NOW, Direction.BACKWARD),
        "tricks-are-values": LogsRequest(
            "tool-t", ('x"} | delete', "*", 'a",_stream:{'), NOW - hour, NOW, Direction.FORWARD
        ),
    }


def test_store_queries_golden() -> None:
    out = {
        name: [q.params() for q in build_queries(request, page_size=500)]
        for name, request in _golden_cases().items()
    }
    assert_golden(GOLDEN / "queries.json", json.dumps(out, indent=2, sort_keys=True) + "\n")


def test_next_urls_golden() -> None:
    out = {
        name: next_url(request, {"job_names": "a,b"} if name == "tool-two-jobs" else None)
        for name, request in _golden_cases().items()
    }
    assert_golden(GOLDEN / "next-urls.json", json.dumps(out, indent=2, sort_keys=True) + "\n")


class FakeStore:
    """Answers queries from a list of lines as the store does (a named test double of the
    store's query semantics: the real store is tested in test_logs_store.py)."""

    def __init__(self, lines: list[LogEntry]) -> None:
        self.lines = lines

    def answer(self, request: LogsRequest, page_size: int) -> list[list[LogEntry]]:
        results = []
        for query in build_queries(request, page_size):
            start, end = query._range
            rows = [
                e
                for e in self.lines
                if (start is None or e.time_ns >= start) and (end is None or e.time_ns < end)
            ]
            rows.sort(
                key=lambda e: (e.time_ns, e.stream_id),
                reverse=query.direction is Direction.BACKWARD,
            )
            results.append(rows[: query.limit])
        return results


def read_all(store: FakeStore, request: LogsRequest, page_size: int) -> list[LogEntry]:
    out: list[LogEntry] = []
    current: LogsRequest | None = request
    pages = 0
    while current is not None:
        page = assemble_page(current, store.answer(current, page_size), page_size)
        assert page.entries or page.next is None, "a cursor with an empty page"
        out.extend(page.entries)
        current = page.next
        pages += 1
        assert pages < 10_000
    return out


@pytest.mark.parametrize("page_size", [1, 2, 3, 7, 50])
@pytest.mark.parametrize("direction", [Direction.FORWARD, Direction.BACKWARD])
def test_paging_is_exact_with_ties_across_streams(page_size: int, direction: Direction) -> None:
    rng = random.Random(page_size)  # noqa: S311 - test data, not secrets
    streams = ["a" * 32, "b" * 32, "c" * 32]
    times = sorted(rng.randrange(100, 160) for _ in range(200))
    lines = [
        entry(t, stream) for t in set(times) for stream in rng.sample(streams, rng.randint(1, 3))
    ]
    store = FakeStore(lines)
    request = LogsRequest("tool-t", ("j",), 0, 1000, direction)
    got = read_all(store, request, page_size)
    expected = sorted(lines, key=lambda e: (e.time_ns, e.stream_id))
    if direction is Direction.BACKWARD:
        expected.reverse()
    assert got == expected


@pytest.mark.parametrize("lines", [1, 5, 99, 500])
def test_lines_caps_all_pages_together(lines: int) -> None:
    store = FakeStore([entry(t) for t in range(1, 301)])
    newest = read_all(
        store, LogsRequest("tool-t", ("j",), 0, 1000, Direction.BACKWARD, lines=lines), 7
    )
    assert [e.time_ns for e in newest] == list(range(300, 300 - min(lines, 300), -1))
    oldest = read_all(
        store, LogsRequest("tool-t", ("j",), 0, 1000, Direction.FORWARD, lines=lines), 7
    )
    assert [e.time_ns for e in oldest] == list(range(1, min(lines, 300) + 1))


def test_two_jobs_merge_in_time_order() -> None:
    a = [entry(t, "a" * 32) for t in range(0, 100, 2)]
    b = [entry(t, "b" * 32) for t in range(1, 100, 2)]

    class TwoJobs(FakeStore):
        def answer(self, request: LogsRequest, page_size: int) -> list[list[LogEntry]]:
            return [
                FakeStore(a if q.selector.job == "a" else b).answer(
                    LogsRequest(
                        "tool-t",
                        (q.selector.job or "",),
                        request.start_ns,
                        request.end_ns,
                        request.direction,
                        cursor=request.cursor,
                    ),
                    page_size,
                )[0]
                for q in build_queries(request, page_size)
            ]

    got = read_all(TwoJobs([]), LogsRequest("tool-t", ("a", "b"), 0, 1000, Direction.FORWARD), 9)
    assert [e.time_ns for e in got] == list(range(100))


def test_the_last_page_has_no_next_and_an_empty_range_no_cursor() -> None:
    store = FakeStore([])
    page = assemble_page(
        LogsRequest("tool-t", ("j",), 0, 10, Direction.FORWARD),
        store.answer(LogsRequest("tool-t", ("j",), 0, 10, Direction.FORWARD), 5),
        5,
    )
    assert page.entries == []
    assert page.next is None
