"""Header hygiene, as pure functions over ASGI header lists."""

from __future__ import annotations

import pytest

from toolforge_gateway.headers import (
    BadRequestHeadersError,
    header_bytes,
    prepare_request_headers,
    prepare_response_headers,
    rewrite_location,
)

Headers = list[tuple[bytes, bytes]]


def names(headers: Headers) -> list[bytes]:
    return [name for name, _ in headers]


def get(headers: Headers, name: bytes) -> list[bytes]:
    return [value for key, value in headers if key == name]


def test_identity_and_hop_by_hop_headers_are_replaced() -> None:
    result = prepare_request_headers(
        [
            (b"host", b"gw.example:30003"),
            (b"ssl-client-subject-dn", b"CN=bob,O=toolforge"),
            (b"ssl-client-subject-dn", b"CN=service:x,O=toolforge"),
            (b"x-toolforge-tool", b"bob"),
            (b"x-toolforge-", b"empty suffix"),
            (b"connection", b"keep-alive, X-Hop, x-other"),
            (b"x-hop", b"1"),
            (b"x-other", b"2"),
            (b"keep-alive", b"timeout=5"),
            (b"proxy-authorization", b"Basic x"),
            (b"proxy-connection", b"keep-alive"),
            (b"te", b"trailers"),
            (b"trailer", b"x-checksum"),
            (b"upgrade", b"h2c"),
            (b"expect", b"100-continue"),
            (b"x-forwarded-proto", b"http"),
            (b"x-forwarded-host", b"evil"),
            (b"accept", b"application/json"),
            (b"x-toolforge", b"not a prefix match, kept"),
        ],
        client_host="198.51.100.4",
        subject_dn="CN=alice,O=toolforge",
    )
    assert result.forward == [
        (b"accept", b"application/json"),
        (b"x-toolforge", b"not a prefix match, kept"),
        (b"x-request-id", result.request_id),
        (b"x-forwarded-for", b"198.51.100.4"),
        (b"x-forwarded-proto", b"https"),
        (b"x-forwarded-host", b"gw.example:30003"),
        (b"ssl-client-subject-dn", b"CN=alice,O=toolforge"),
    ]
    assert result.content_length is None
    assert result.chunked is False


def test_tool_header_is_set_from_the_verified_tool_only() -> None:
    forged = [(b"x-toolforge-tool", b"bob"), (b"x-toolforge-tool", b"alice")]
    result = prepare_request_headers(
        forged, client_host=None, subject_dn="CN=alice,O=toolforge", tool="alice"
    )
    assert get(result.forward, b"x-toolforge-tool") == [b"alice"]
    without = prepare_request_headers(forged, client_host=None, subject_dn=None)
    assert b"x-toolforge-tool" not in names(without.forward)


def test_without_identity_no_subject_header_at_all() -> None:
    result = prepare_request_headers(
        [(b"ssl-client-subject-dn", b"CN=bob,O=toolforge")], client_host=None, subject_dn=None
    )
    assert b"ssl-client-subject-dn" not in names(result.forward)
    assert b"x-forwarded-for" not in names(result.forward)


def test_forwarded_for_is_appended() -> None:
    result = prepare_request_headers(
        [(b"x-forwarded-for", b"192.0.2.1, 192.0.2.2"), (b"x-forwarded-for", b"192.0.2.3")],
        client_host="127.0.0.1",
        subject_dn=None,
    )
    assert get(result.forward, b"x-forwarded-for") == [
        b"192.0.2.1, 192.0.2.2, 192.0.2.3, 127.0.0.1"
    ]


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ([b"abc"], b"abc"),
        ([b"bad id", b"second-good"], b"second-good"),
        ([b"first", b"second"], b"first"),
        ([b"x" * 129], None),
        ([b""], None),
        ([b"caf\xc3\xa9"], None),
    ],
)
def test_request_id(sent: list[bytes], kept: bytes | None) -> None:
    result = prepare_request_headers(
        [(b"x-request-id", value) for value in sent], client_host=None, subject_dn=None
    )
    assert get(result.forward, b"x-request-id") == [result.request_id]
    if kept is not None:
        assert result.request_id == kept
    else:
        assert len(result.request_id) == 36
        assert result.request_id not in sent


def test_fresh_request_ids_differ() -> None:
    first = prepare_request_headers([], client_host=None, subject_dn=None).request_id
    second = prepare_request_headers([], client_host=None, subject_dn=None).request_id
    assert first != second


def test_body_framing() -> None:
    sized = prepare_request_headers(
        [(b"content-length", b"12"), (b"content-length", b"12")], client_host=None, subject_dn=None
    )
    assert sized.content_length == 12
    assert get(sized.forward, b"content-length") == [b"12"]
    chunked = prepare_request_headers(
        [(b"transfer-encoding", b"chunked")], client_host=None, subject_dn=None
    )
    assert chunked.chunked is True
    assert b"transfer-encoding" not in names(chunked.forward)


@pytest.mark.parametrize(
    "headers",
    [
        [(b"content-length", b"-1")],
        [(b"content-length", b"1e3")],
        [(b"content-length", b"1"), (b"content-length", b"2")],
        [(b"content-length", b"1"), (b"transfer-encoding", b"chunked")],
    ],
)
def test_bad_body_framing_is_refused(headers: Headers) -> None:
    with pytest.raises(BadRequestHeadersError):
        prepare_request_headers(headers, client_host=None, subject_dn=None)


def test_header_bytes_counts_the_wire_form() -> None:
    assert header_bytes([(b"a", b"bc"), (b"host", b"x")]) == len(b"a: bc\r\nhost: x\r\n")


def test_response_headers() -> None:
    result = prepare_response_headers(
        [
            (b"Content-Type", b"application/x-ndjson"),
            (b"X-Accel-Buffering", b"no"),
            (b"Transfer-Encoding", b"chunked"),
            (b"Connection", b"keep-alive, X-Internal"),
            (b"X-Internal", b"secret"),
            (b"Keep-Alive", b"timeout=5"),
            (b"X-Request-ID", b"backend-made"),
            (b"Location", b"https://jobs-api:8443/v1/tool/foo/jobs"),
            (b"Content-Length", b"42"),
        ],
        request_id=b"rid",
        upstream=b"https://jobs-api:8443",
        prefix=b"/jobs",
    )
    assert result.headers == [
        (b"content-type", b"application/x-ndjson"),
        (b"x-accel-buffering", b"no"),
        (b"location", b"/jobs/v1/tool/foo/jobs"),
        (b"content-length", b"42"),
        (b"x-request-id", b"rid"),
    ]
    assert result.content_length == 42


@pytest.mark.parametrize(
    ("location", "upstream", "expected"),
    [
        (b"https://jobs-api:8443/v1/x?y=1", b"https://jobs-api:8443", b"/jobs/v1/x?y=1"),
        (b"https://jobs-api:8443", b"https://jobs-api:8443", b"/jobs"),
        (b"/v1/x", b"https://jobs-api:8443", b"/jobs/v1/x"),
        (b"https://jobs-api:84430/v1/x", b"https://jobs-api:8443", b"https://jobs-api:84430/v1/x"),
        (b"https://other/v1/x", b"https://jobs-api:8443", b"https://other/v1/x"),
        (b"//other/v1/x", b"https://jobs-api:8443", b"//other/v1/x"),
        (b"relative/x", b"https://jobs-api:8443", b"relative/x"),
        (b"https://api:8443/base/v1/x", b"https://api:8443/base", b"/jobs/v1/x"),
        (b"/base/v1/x", b"https://api:8443/base", b"/jobs/v1/x"),
        (b"/basement", b"https://api:8443/base", b"/basement"),
    ],
)
def test_rewrite_location(location: bytes, upstream: bytes, expected: bytes) -> None:
    assert rewrite_location(location, upstream=upstream, prefix=b"/jobs") == expected
