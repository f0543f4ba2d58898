"""The logs API's paging against the real store (no cluster): 5,000 lines written with the
collector's fields read back page by page equal exactly what was written, in both directions,
with ``lines``; names full of LogsQL tricks select nothing of another namespace."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from toolforge_logs.query import LogsRequest, assemble_page, build_queries
from toolforge_logstore import (
    Direction,
    LogEntry,
    LogQuery,
    LogStoreClient,
    NewLogEntry,
    StreamSelector,
)

S = 1_000_000_000
PAGE = 500


async def read_all(
    client: LogStoreClient, request: LogsRequest, page_size: int = PAGE
) -> list[LogEntry]:
    out: list[LogEntry] = []
    current: LogsRequest | None = request
    while current is not None:
        results = [await client.query(q) for q in build_queries(current, page_size)]
        page = assemble_page(current, results, page_size)
        assert page.entries or page.next is None
        out.extend(page.entries)
        current = page.next
    return out


async def wait_count(
    client: LogStoreClient, selector: StreamSelector, count: int, start: int
) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        got = await client.query(
            LogQuery(selector, start=start, limit=count + 1, direction=Direction.FORWARD)
        )
        if len(got) >= count:
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"the store did not make {count} lines searchable in 30 s")


async def write(client: LogStoreClient, entries: list[NewLogEntry]) -> None:
    for i in range(0, len(entries), 1000):
        await client.insert(entries[i : i + 1000])


@pytest.fixture
def namespace() -> str:
    return f"tool-{uuid.uuid4().hex[:10]}"


async def test_5000_lines_in_pages_equal_what_was_written(
    store_client: LogStoreClient, namespace: str
) -> None:
    start = time.time_ns() - 600 * S
    written = []
    for i in range(5000):
        # two pods of one job; every 10th pair shares one nanosecond across the pods
        pod = "p1" if i % 2 == 0 else "p2"
        t = start + (i // 2) * 1000 + (0 if i % 10 < 2 else i % 2)
        written.append(NewLogEntry(t, f"line {i}", namespace, job="j", pod=pod, container="job"))
    await write(store_client, written)
    await wait_count(store_client, StreamSelector(namespace, job="j"), 5000, start)
    expected = sorted((e.time, e.message) for e in written)

    forward = await read_all(
        store_client, LogsRequest(namespace, ("j",), start, start + 60 * S, Direction.FORWARD)
    )
    assert [(e.time_ns, e.message) for e in forward] == [
        (t, m) for t, m in _order(written, forward)
    ]
    assert sorted((e.time_ns, e.message) for e in forward) == expected
    assert len({e.message for e in forward}) == 5000

    backward = await read_all(
        store_client, LogsRequest(namespace, ("j",), start, start + 60 * S, Direction.BACKWARD)
    )
    assert [e.message for e in backward] == [e.message for e in reversed(forward)]

    last = await read_all(
        store_client,
        LogsRequest(namespace, ("j",), start, start + 60 * S, Direction.BACKWARD, lines=1234),
    )
    assert [e.message for e in last] == [e.message for e in reversed(forward)][:1234]


def _order(written: list[NewLogEntry], read: list[LogEntry]) -> list[tuple[int, str]]:
    """``written`` in the store's total order (time, then stream id as the store names it)."""
    streams = {(e.pod): e.stream_id for e in read}
    return [
        (int(e.time), e.message)  # type: ignore[arg-type]
        for e in sorted(written, key=lambda e: (e.time, streams[e.pod]))
    ]


async def test_the_range_end_is_exclusive_and_the_start_inclusive(
    store_client: LogStoreClient, namespace: str
) -> None:
    t = time.time_ns() - 300 * S
    await write(store_client, [NewLogEntry(t + i, f"m{i}", namespace, job="j") for i in range(3)])
    await wait_count(store_client, StreamSelector(namespace, job="j"), 3, t)
    got = await read_all(store_client, LogsRequest(namespace, ("j",), t, t + 2, Direction.FORWARD))
    assert [e.message for e in got] == ["m0", "m1"]
    got = await read_all(
        store_client, LogsRequest(namespace, ("j",), t + 1, t + 3, Direction.BACKWARD)
    )
    assert [e.message for e in got] == ["m2", "m1"]


TRICKS = [
    'x"}',
    '"} or _stream:{kubernetes.pod_namespace="tool-victim"}',
    "*",
    ".*",
    "j | delete",
    'j" or "1"="1',
    "j\\",
    "j\n_stream:{}",
    "_stream:{}",
    "j'} | limit 1",
]


async def test_job_names_with_query_tricks_select_nothing_of_another_namespace(
    store_client: LogStoreClient, namespace: str
) -> None:
    victim = f"tool-victim{uuid.uuid4().hex[:6]}"
    t = time.time_ns() - 120 * S
    await write(
        store_client,
        [NewLogEntry(t + i, f"secret {i}", victim, job="j", pod="p") for i in range(5)],
    )
    await wait_count(store_client, StreamSelector(victim), 5, t)
    for trick in TRICKS:
        request = LogsRequest(namespace, (trick,), t - S, t + 10 * S, Direction.FORWARD)
        assert await read_all(store_client, request) == [], trick
        request = LogsRequest(namespace, (trick, "j"), t - S, t + 10 * S, Direction.BACKWARD)
        assert await read_all(store_client, request) == [], trick
    everything = await read_all(
        store_client, LogsRequest(namespace, (), t - S, t + 10 * S, Direction.FORWARD)
    )
    assert everything == []
