"""The LogsQL builder without a store: quoting, validation, the query text and arguments.

That the quoted values really stay values is proven against the real store in
``test_logstore_injection.py``; these tests pin the text the builder writes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from toolforge_logstore.logsql import (
    MAX_LIMIT,
    MAX_VALUE_LENGTH,
    Direction,
    InvalidValueError,
    LogQuery,
    StreamSelector,
    TailQuery,
    format_rfc3339_ns,
    parse_rfc3339_ns,
    quote,
    to_ns,
)

FIELDS_PIPE = (
    'fields "_time", "_stream_id", "kubernetes.pod_namespace", '
    '"kubernetes.pod_labels.app.kubernetes.io/name", "kubernetes.pod_name", '
    '"kubernetes.container_name", "kubernetes.container_id", "_msg"'
)


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("tool-a", '"tool-a"'),
        ("", '""'),
        ('a"b', r'"a\"b"'),
        ("a\\b", r'"a\\b"'),
        ('\\"', r'"\\\""'),
        ("a\nb", r'"a\u000ab"'),
        ("\r\t\x00\x7f", r'"\u000d\u0009\u0000\u007f"'),
        ("tööl", r'"t\u00f6\u00f6l"'),
        ("\u2028", r'"\u2028"'),
        ("\U0001f600", r'"\U0001f600"'),
        ("`'{}|*", '"`\'{}|*"'),
    ],
)
def test_quote_writes_an_ascii_go_string_literal(value: str, literal: str) -> None:
    assert quote(value) == literal
    assert literal.isascii()


@pytest.mark.parametrize("value", ["\ud800", "a\udfffb"])
def test_quote_refuses_surrogates(value: str) -> None:
    with pytest.raises(InvalidValueError, match="surrogate"):
        quote(value)


def test_quote_refuses_non_text() -> None:
    with pytest.raises(InvalidValueError):
        quote(b"tool-a")  # type: ignore[arg-type]


def test_selector_text_quotes_names_and_values() -> None:
    selector = StreamSelector("tool-a", job="my job", pod="p-1", container="c")
    assert selector.logsql() == (
        '_stream:{"kubernetes.pod_namespace"="tool-a",'
        '"kubernetes.pod_labels.app.kubernetes.io/name"="my job",'
        '"kubernetes.pod_name"="p-1","kubernetes.container_name"="c"}'
    )
    assert StreamSelector("tool-a").logsql() == '_stream:{"kubernetes.pod_namespace"="tool-a"}'


@pytest.mark.parametrize("field", ["namespace", "job", "pod", "container"])
@pytest.mark.parametrize("bad", ["", "x" * (MAX_VALUE_LENGTH + 1), "\ud83d", 5, None, b"tool-a"])
def test_selector_refuses_bad_values(field: str, bad: object) -> None:
    values: dict[str, object] = {"namespace": "tool-a", field: bad}
    if bad is None and field != "namespace":
        StreamSelector(**values)  # type: ignore[arg-type]  # None means "any" for the others
        return
    with pytest.raises(InvalidValueError, match=field):
        StreamSelector(**values)  # type: ignore[arg-type]


def test_selector_takes_the_longest_value() -> None:
    assert StreamSelector("t" * MAX_VALUE_LENGTH).namespace == "t" * MAX_VALUE_LENGTH


def test_forward_query_text_and_arguments() -> None:
    start = datetime(2026, 12, 4, 21, 0, tzinfo=UTC)
    query = LogQuery(
        StreamSelector("tool-a", job="j"), start=start, end=start + timedelta(hours=1), limit=100
    )
    assert query.params() == {
        "query": '_stream:{"kubernetes.pod_namespace"="tool-a",'
        '"kubernetes.pod_labels.app.kubernetes.io/name"="j"}'
        f" | sort by (_time, _stream_id) limit 100 | {FIELDS_PIPE}",
        "start": "2026-12-04T21:00:00.000000000Z",
        "end": "2026-12-04T22:00:00.000000000Z",
    }


def test_newest_first_with_a_limit_uses_the_limit_argument() -> None:
    query = LogQuery(StreamSelector("tool-a"), limit=100, direction=Direction.BACKWARD)
    assert query.uses_limit_argument
    assert query.params() == {
        "query": f'_stream:{{"kubernetes.pod_namespace"="tool-a"}} | {FIELDS_PIPE}',
        "limit": "100",
    }


def test_backward_query_sorts_newest_first_and_takes_ns_bounds() -> None:
    query = LogQuery(
        StreamSelector("tool-a"), end=1_796_418_000_123_456_789, direction=Direction.BACKWARD
    )
    assert query.params() == {
        "query": '_stream:{"kubernetes.pod_namespace"="tool-a"}'
        f" | sort by (_time desc, _stream_id desc) | {FIELDS_PIPE}",
        "end": "2026-12-04T21:00:00.123456789Z",
    }


@pytest.mark.parametrize("limit", [0, -1, MAX_LIMIT + 1, True, "10", 1.5])
def test_query_refuses_bad_limits(limit: object) -> None:
    with pytest.raises(InvalidValueError, match="limit"):
        LogQuery(StreamSelector("tool-a"), limit=limit)  # type: ignore[arg-type]


def test_query_refuses_naive_times_and_reversed_ranges() -> None:
    with pytest.raises(InvalidValueError, match="timezone"):
        LogQuery(StreamSelector("tool-a"), start=datetime(2026, 1, 1))
    with pytest.raises(InvalidValueError, match="after"):
        LogQuery(StreamSelector("tool-a"), start=2, end=1)
    with pytest.raises(InvalidValueError):
        LogQuery(StreamSelector("tool-a"), start="2026-01-01T00:00:00Z")  # type: ignore[arg-type]


def test_tail_query_arguments() -> None:
    tail = TailQuery(StreamSelector("tool-a", container="c"), history=timedelta(seconds=90))
    assert tail.params() == {
        "query": '_stream:{"kubernetes.pod_namespace"="tool-a","kubernetes.container_name"="c"}'
        f" | {FIELDS_PIPE}",
        "start_offset": "90000ms",
    }
    assert "start_offset" not in TailQuery(StreamSelector("tool-a")).params()
    tuned = TailQuery(
        StreamSelector("tool-a"), delay=timedelta(seconds=12), refresh=timedelta(milliseconds=500)
    )
    assert (tuned.params()["offset"], tuned.params()["refresh_interval"]) == ("12000ms", "500ms")
    for bad in (
        {"history": timedelta(seconds=-1)},
        {"delay": timedelta(seconds=-1)},
        {"refresh": timedelta(0)},
    ):
        with pytest.raises(InvalidValueError):
            TailQuery(StreamSelector("tool-a"), **bad)


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("1970-01-01T00:00:00Z", 0),
        ("2026-12-04T21:03:57.405689748Z", 1_796_418_237_405_689_748),
        ("2026-12-04T21:03:57.4Z", 1_796_418_237_400_000_000),
        ("2026-12-04T22:03:57.405689748+01:00", 1_796_418_237_405_689_748),
        ("1969-12-31T23:59:59.999999999Z", -1),
    ],
)
def test_rfc3339_round_trip(text: str, ns: int) -> None:
    assert parse_rfc3339_ns(text) == ns
    assert parse_rfc3339_ns(format_rfc3339_ns(ns)) == ns


@pytest.mark.parametrize(
    "text", ["", "2026-12-04", "2026-12-04T21:03:57", "2026-12-04T21:03:57.1234567890Z", "x"]
)
def test_rfc3339_refuses_other_text(text: str) -> None:
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_rfc3339_ns(text)


def test_to_ns_keeps_offsets_and_microseconds() -> None:
    moment = datetime(2026, 12, 4, 22, 0, 0, 5, tzinfo=timezone(timedelta(hours=1)))
    assert to_ns(moment) == to_ns(datetime(2026, 12, 4, 21, 0, 0, 5, tzinfo=UTC))
    assert to_ns(moment) % 1_000_000_000 == 5_000
