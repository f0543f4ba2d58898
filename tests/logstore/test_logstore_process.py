"""The store process as the launcher runs it: flags, retention, restart, and the one hazard of
v1.52.2 that decides who may write (only the collector and our client)."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import httpx
import pytest

from toolforge_dev.logstore import DEFAULT_RETENTION, LogStore, retention_setting
from toolforge_logstore import LogQuery, LogStoreClient, NewLogEntry, StreamSelector

DAY_NS = 86_400 * 1_000_000_000


@pytest.mark.parametrize("value", ["1d", "7d", "24h", "2w", "3M", "1y"])
def test_retention_setting_accepts_store_units(value: str) -> None:
    assert retention_setting(value) == value


@pytest.mark.parametrize("value", ["0d", "12h", "7", "7 d", "d", "-1d", "1m", "7days"])
def test_retention_setting_refuses_other_values(value: str) -> None:
    with pytest.raises(ValueError, match="retention"):
        retention_setting(value)


def test_retention_setting_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOOLFORGE_DEV_LOGS_RETENTION", raising=False)
    assert retention_setting() == DEFAULT_RETENTION
    monkeypatch.setenv("TOOLFORGE_DEV_LOGS_RETENTION", "14d")
    assert retention_setting() == "14d"


def test_the_command_line_names_no_secret(logstore: LogStore) -> None:
    argv = " ".join(logstore.argv())
    assert logstore.credentials.password not in argv
    assert f"-httpAuth.password=file://{logstore.password_file}" in argv
    assert "-retentionPeriod=30d" in argv
    assert logstore.password_file.stat().st_mode & 0o777 == 0o600


async def test_lines_older_than_the_retention_are_refused(logstore: LogStore) -> None:
    now = time.time_ns()
    namespace = f"tool-retention-{now}"
    async with LogStoreClient(logstore.client_config()) as client:
        await client.insert(
            [
                NewLogEntry(now - 40 * DAY_NS, "too old", namespace),
                NewLogEntry(now - 20 * DAY_NS, "kept", namespace),
            ]
        )
        logstore.flush()
        found = await client.query(LogQuery(StreamSelector(namespace)))
    assert [e.message for e in found] == ["kept"]


async def test_data_survives_a_restart(tmp_path: Path) -> None:
    store = LogStore.standalone(tmp_path)
    store.start()
    try:
        async with LogStoreClient(store.client_config()) as client:
            await client.insert([NewLogEntry(time.time_ns(), "before restart", "tool-r")])
        store.flush()
        store.stop()
        store.port = 0
        store.start()
        async with LogStoreClient(store.client_config()) as client:
            found = await client.query(LogQuery(StreamSelector("tool-r")))
        assert [e.message for e in found] == ["before restart"]
    finally:
        store.stop()


def test_v1_52_2_dies_on_a_row_that_repeats_a_stream_field(tmp_path: Path) -> None:
    """Upstream hazard, pinned: ``/insert/jsonline`` with a stream field given twice makes the
    store panic ("stream tags must be sorted", ``indexdb.mustRegisterStream``) and exit. Only
    trusted writers hold the credentials (see the auth tests); our client writes dicts, so it
    cannot repeat a field. When an upgrade fixes this, this test fails: drop it then."""
    store = LogStore.standalone(tmp_path)
    store.start()
    try:
        creds = store.credentials
        body = (
            b'{"kubernetes.pod_namespace":"tool-a","kubernetes.pod_namespace":"tool-b",'
            b'"_msg":"forged"}\n'
        )
        with (
            httpx.Client(verify=store.ssl_context(), timeout=10) as http,
            contextlib.suppress(httpx.HTTPError),  # the connection may die with the store
        ):
            http.post(
                f"{store.url}/insert/jsonline",
                params={"_stream_fields": "kubernetes.pod_namespace"},
                content=body,
                headers={"Content-Type": "application/stream+json"},
                auth=(creds.username, creds.password),
            )
        deadline = time.monotonic() + 20
        while store.running and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not store.running
        assert "stream tags must be sorted" in store.log_tail(60)
    finally:
        store.stop()


def test_client_rows_use_the_collector_field_names() -> None:
    row = NewLogEntry(0, "m", "tool-a", job="j", pod="p", container="c").row()
    assert row["_time"] == "1970-01-01T00:00:00.000000000Z"
    assert list(row) == [
        "_time",
        "_msg",
        "kubernetes.pod_namespace",
        "kubernetes.pod_labels.app.kubernetes.io/name",
        "kubernetes.pod_name",
        "kubernetes.container_name",
    ]
    assert "kubernetes.pod_name" not in NewLogEntry(0, "m", "tool-a").row()
