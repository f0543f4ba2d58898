"""Pure helpers of the logs endpoint: timestamped pod log lines -> NDJSON records."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from toolforge_jobs.logs import parse_log_line


def test_parse_timestamped_line() -> None:
    record = parse_log_line(
        b"2024-05-01T12:00:00.123456789Z hello world", pod="p-1", container="job"
    )
    assert record.datetime == dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)
    assert (record.pod, record.container, record.message) == ("p-1", "job", "hello world")
    assert json.loads(record.ndjson()) == {
        "pod": "p-1",
        "container": "job",
        "datetime": "2024-05-01T12:00:00.123456Z",
        "message": "hello world",
    }
    assert record.ndjson().endswith(b"\n")
    assert record.ndjson().count(b"\n") == 1


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"2024-05-01T12:00:00Z ", ""),  # an empty line
        (b"2024-05-01T12:00:00Z  two spaces", " two spaces"),
        (b"2024-05-01T12:00:00Z crlf\r", "crlf"),
        (b"2024-05-01T12:00:00Z bad \xff byte", "bad \ufffd byte"),
        (b'2024-05-01T12:00:00Z {"json": "inside"}', '{"json": "inside"}'),
    ],
)
def test_message_text(raw: bytes, message: str) -> None:
    record = parse_log_line(raw, pod="p", container="job")
    assert record.message == message
    assert json.loads(record.ndjson())["message"] == message


def test_line_without_timestamp_keeps_its_text() -> None:
    record = parse_log_line(b"no timestamp here", pod="p", container="job")
    assert record.message == "no timestamp here"
    assert record.datetime == dt.datetime.fromtimestamp(0, dt.UTC)
