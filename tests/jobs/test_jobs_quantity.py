"""Kubernetes quantities: parsing per k8s.io/apimachinery resource.ParseQuantity, and the
human formatting of quotas."""

from __future__ import annotations

from decimal import Decimal

import pytest

from toolforge_jobs.quantity import (
    InvalidQuantityError,
    format_count,
    format_cpu,
    format_memory,
    parse_quantity,
)

D = Decimal


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", D(0)),
        ("512Mi", D(512 * 2**20)),
        ("1Ki", D(1024)),
        ("1.5Gi", D(3 * 2**29)),
        ("8Ei", D(2**63 - 1)),  # binary SI is capped at the int64 maximum
        ("0.5", D("0.5")),
        (".5", D("0.5")),
        ("1.", D(1)),
        ("1.G", D(10**9)),  # Go accepts an empty fraction before a suffix
        ("100m", D("0.1")),
        ("00100m", D("0.1")),
        ("1n", D("1e-9")),
        ("1u", D("1e-6")),
        ("1k", D(1000)),
        ("1M", D(10**6)),
        ("1G", D(10**9)),
        ("1T", D(10**12)),
        ("1P", D(10**15)),
        ("1E", D(10**18)),  # "E" alone is exa, not an exponent
        ("2e3", D(2000)),
        ("2E3", D(2000)),
        ("1e+3", D(1000)),
        ("5e-3", D("0.005")),
        ("+1", D(1)),
        ("-1Mi", D(-(2**20))),
        ("0.0000000001", D("1e-9")),  # below a nano: rounded up, away from zero
        ("-0.0000000001", D("-1e-9")),
        ("1.0000000001", D("1.000000001")),
        ("1e-12", D("1e-9")),
    ],
)
def test_parse(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "no digits"),
        (".", "no digits"),
        ("-", "no digits"),
        ("Mi", "no digits"),
        ("1K", "unknown suffix 'K'"),
        ("1ki", "unknown suffix 'ki'"),
        ("1e", "unknown suffix 'e'"),
        ("1Mi5", "unknown suffix 'Mi5'"),
        ("1 Mi", "not a quantity"),
        (" 1", "not a quantity"),
        ("1GB", "not a quantity"),
        ("1.5.5", "not a quantity"),
        ("abc", "not a quantity"),
        ("0x10", "not a quantity"),
        ("1e100", "too large"),
        ("1e99999999999", "unknown suffix"),  # Go keeps exponents in an int32
        ("1e" + "9" * 5000, "unknown suffix"),
    ],
)
def test_reject(text: str, reason: str) -> None:
    with pytest.raises(InvalidQuantityError, match=reason):
        parse_quantity(text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (D(4 * 2**30), "4Gi"),
        (D(512 * 2**20), "512Mi"),
        (D(3 * 2**29), "1.5Gi"),
        (D(10**9), "953.67Mi"),
        (D(1000), "1000"),
        (D(0), "0"),
    ],
)
def test_format_memory(value: Decimal, text: str) -> None:
    assert format_memory(value) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (D(1), "1"),
        (D("2.000"), "2"),
        (D("0.5"), "500m"),
        (D("1.25"), "1250m"),
        (D("0.0001"), "1m"),  # never shown as less than it is
        (D(0), "0"),
    ],
)
def test_format_cpu(value: Decimal, text: str) -> None:
    assert format_cpu(value) == text


def test_format_round_trips_exact_values() -> None:
    for text in ("4Gi", "512Mi", "1Ki"):
        assert parse_quantity(format_memory(parse_quantity(text))) == parse_quantity(text)
    for text in ("1", "500m", "1250m", "3"):
        assert format_cpu(parse_quantity(text)) == text
    assert format_count(parse_quantity("10")) == "10"
