"""Negative tests of the query builder against the real store: LogsQL tricks in every
parameter are values, never query text, so no query leaves the namespace it names.

For every trick ``T``, the store holds a line in namespace ``T`` itself and a line in
``tool-attacker`` whose job, pod and container are ``T``; the victim ``tool-victim`` holds its
own lines. A query with ``T`` in one parameter must return exactly the line whose field is
literally ``T``, and never a victim line. The unquoted query that a naive builder would write
does leak the victim's lines (``test_the_tricks_work_on_a_naive_builder``), so these tests can
fail.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import timedelta

import httpx
import pytest

from toolforge_dev.logstore import LogStore
from toolforge_logstore import (
    InvalidValueError,
    LogEntry,
    LogQuery,
    LogStoreClient,
    LogStoreError,
    NewLogEntry,
    StreamSelector,
    TailQuery,
)

VICTIM = "tool-victim"
ATTACKER = "tool-attacker"

TRICKS = [
    f'{VICTIM}"}} or _stream:{{kubernetes.pod_namespace="{VICTIM}',
    f'x"}} or {{kubernetes.pod_namespace="{VICTIM}"}} or _stream:{{a="',
    f'{VICTIM}" or "1"="1',
    f'{VICTIM}",kubernetes.pod_namespace!="',
    f'x"}} | union (_stream:{{kubernetes.pod_namespace="{VICTIM}"}}) | fields _msg | "',
    '" | limit 1000 | "',
    "*",
    "tool-*",
    '"tool-"*',
    ".*",
    "tool-.*",
    f"{VICTIM}|{ATTACKER}",
    f'\n_stream:{{kubernetes.pod_namespace="{VICTIM}"}}',
    f'x\nor _stream:{{kubernetes.pod_namespace="{VICTIM}"}}',
    f"# comment\n{VICTIM}",
    f"{VICTIM}' or '",
    f"`{VICTIM}`",
    f'{VICTIM}\\"}} or _stream:{{kubernetes.pod_namespace=\\"{VICTIM}',
    "\\",
    '"',
    "{",
    "}",
    "=",
    "!=",
    " ",
    f"{VICTIM} ",
    VICTIM.upper(),
    "tool-victim\x00",
    "tööl-victim",
    "\u2028or *",
    "\U0001f600",
    f"_stream:{{kubernetes.pod_namespace={VICTIM}}}",
    f"_stream_id:* or {VICTIM}",
    f"in({VICTIM})",
]


def _check_tricks() -> None:
    assert len(set(TRICKS)) == len(TRICKS)
    assert VICTIM not in TRICKS
    assert ATTACKER not in TRICKS


_check_tricks()


async def _wait_for(
    client: LogStoreClient, query: LogQuery, count: int, timeout: float = 20
) -> list[LogEntry]:
    deadline = time.monotonic() + timeout
    while True:
        found = await client.query(query)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.2)


@pytest.fixture(scope="module")
def seeded(logstore: LogStore) -> LogStore:
    """The victim's lines, a line in each trick namespace and an attacker line per trick."""

    async def seed() -> None:
        now = time.time_ns()
        entries = [
            NewLogEntry(
                now + i, f"victim secret {i}", VICTIM, job="victim-job", pod="vp", container="c"
            )
            for i in range(3)
        ]
        for i, trick in enumerate(TRICKS):
            entries.append(NewLogEntry(now + i, f"literal namespace {i}", trick, job="j", pod="p"))
            entries.append(
                NewLogEntry(
                    now + i, f"attacker {i}", ATTACKER, job=trick, pod=trick, container=trick
                )
            )
        async with LogStoreClient(logstore.client_config()) as client:
            await client.insert(entries)
            victim = await _wait_for(client, LogQuery(StreamSelector(VICTIM)), 3)
            assert [e.message for e in victim] == [f"victim secret {i}" for i in range(3)]
            attacker = await _wait_for(client, LogQuery(StreamSelector(ATTACKER)), len(TRICKS))
            assert len(attacker) == len(TRICKS)

    asyncio.run(seed())
    return logstore


async def test_the_tricks_work_on_a_naive_builder(
    seeded: LogStore, store_client: LogStoreClient
) -> None:
    # What an f-string builder would send: the first trick closes the filter and ORs in the
    # victim's stream.
    naive = f'_stream:{{kubernetes.pod_namespace="{TRICKS[0]}"}}'
    reply = await store_client._http.post("/select/logsql/query", data={"query": naive})
    assert reply.status_code == 200
    assert "victim secret" in reply.text


@pytest.mark.parametrize("index", range(len(TRICKS)))
async def test_a_trick_as_namespace_matches_only_that_literal_namespace(
    seeded: LogStore, store_client: LogStoreClient, index: int
) -> None:
    found = await store_client.query(LogQuery(StreamSelector(TRICKS[index])))
    assert [(e.namespace, e.message) for e in found] == [
        (TRICKS[index], f"literal namespace {index}")
    ]


@pytest.mark.parametrize("field", ["job", "pod", "container"])
@pytest.mark.parametrize("index", range(len(TRICKS)))
async def test_a_trick_in_job_pod_or_container_stays_in_the_namespace(
    seeded: LogStore, store_client: LogStoreClient, index: int, field: str
) -> None:
    selector = StreamSelector(ATTACKER, **{field: TRICKS[index]})
    found = await store_client.query(LogQuery(selector))
    assert [(e.namespace, e.message) for e in found] == [(ATTACKER, f"attacker {index}")]
    assert getattr(found[0], field) == TRICKS[index]


@pytest.mark.parametrize("index", [0, 1, 4, 12, 13, 17])
async def test_a_trick_in_a_live_tail_stays_in_the_namespace(
    seeded: LogStore, store_client: LogStoreClient, index: int
) -> None:
    tail = store_client.tail(
        TailQuery(StreamSelector(ATTACKER, job=TRICKS[index]), history=timedelta(hours=1))
    )
    seen: list[LogEntry] = []

    async def read() -> None:
        async for entry in tail:
            seen.append(entry)
            if entry.message == f"attacker {index}":
                return

    try:
        await asyncio.wait_for(read(), timeout=20)
    finally:
        await tail.aclose()
    assert [(e.namespace, e.job, e.message) for e in seen] == [
        (ATTACKER, TRICKS[index], f"attacker {index}")
    ]


def test_values_that_cannot_be_quoted_are_refused_before_any_query() -> None:
    for bad in ("", "\udc80"):
        with pytest.raises(InvalidValueError):
            StreamSelector(bad)
        with pytest.raises(InvalidValueError):
            StreamSelector(ATTACKER, job=bad)


async def test_the_store_refuses_requests_without_the_credentials(seeded: LogStore) -> None:
    query = {"query": f'_stream:{{kubernetes.pod_namespace="{VICTIM}"}}'}
    async with httpx.AsyncClient(verify=seeded.ssl_context(), timeout=10) as http:
        anonymous = await http.post(f"{seeded.url}/select/logsql/query", data=query)
        wrong = await http.post(
            f"{seeded.url}/select/logsql/query", data=query, auth=("toolforge-logs", "guess")
        )
        insert = await http.post(f"{seeded.url}/insert/jsonline", content=b'{"_msg":"x"}\n')
        health = await http.get(f"{seeded.url}/health")
    assert (anonymous.status_code, wrong.status_code, insert.status_code) == (401, 401, 401)
    assert "victim" not in anonymous.text + wrong.text
    assert health.status_code == 200
    # Plain HTTP gets Go's "client sent an HTTP request to an HTTPS server" (400) and a
    # closed connection, which the client may see first.
    async with httpx.AsyncClient(timeout=10) as plain:
        try:
            cleartext = await plain.post(
                seeded.url.replace("https://", "http://") + "/select/logsql/query", data=query
            )
        except httpx.TransportError:
            return
    assert cleartext.status_code == 400
    assert "victim" not in cleartext.text


async def test_wrong_credentials_raise_a_store_error(seeded: LogStore) -> None:
    config = seeded.client_config()
    bad = dataclasses.replace(config, password="wrong")  # noqa: S106
    async with LogStoreClient(bad) as client:
        with pytest.raises(LogStoreError) as caught:
            await client.query(LogQuery(StreamSelector(VICTIM)))
    assert caught.value.status == 401
