"""Proxying through the running gateway: what reaches the backend, streaming both ways,
backend failures, limits, request IDs."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from gateway.gateway_harness import LIMITS, Backends, GatewayUnderTest, assert_error

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def received_headers(echo: dict[str, object]) -> list[tuple[str, str]]:
    headers = echo["headers"]
    assert isinstance(headers, list)
    return [(name, value) for name, value in headers]


def values(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [value for key, value in headers if key == name]


async def test_prefix_is_stripped_and_query_kept(
    alice: httpx.AsyncClient, backends: Backends
) -> None:
    response = await alice.get("/jobs/v1/tool/alice/echo?b=2&a=x%20y&a=%2F&empty=")
    assert response.status_code == 200
    echo = response.json()
    assert echo["backend"] == "jobs"
    assert echo["path"] == "/v1/tool/alice/echo"
    assert echo["query"] == "b=2&a=x%20y&a=%2F&empty="
    assert backends.jobs.seen == [("GET", "/v1/tool/alice/echo")]
    assert backends.builds.seen == []


async def test_forwarded_headers(alice: httpx.AsyncClient) -> None:
    response = await alice.get(
        "/builds/v1/tool/alice/echo",
        headers={"Accept": "application/json", "X-Forwarded-For": "192.0.2.7"},
    )
    headers = received_headers(response.json())
    assert values(headers, "ssl-client-subject-dn") == ["CN=alice,O=toolforge"]
    assert values(headers, "x-forwarded-proto") == ["https"]
    assert values(headers, "x-forwarded-for") == ["192.0.2.7, 127.0.0.1"]
    assert values(headers, "accept") == ["application/json"]
    assert values(headers, "x-forwarded-host") == [alice.base_url.netloc.decode()]
    (request_id,) = values(headers, "x-request-id")
    assert response.headers["x-request-id"] == request_id


async def test_backend_host_header_is_the_backends(
    alice: httpx.AsyncClient, backends: Backends
) -> None:
    response = await alice.get("/builds/v1/tool/alice/echo")
    headers = received_headers(response.json())
    assert values(headers, "host") == [httpx.URL(backends.builds.url).netloc.decode()]


async def test_identity_headers_from_the_client_are_never_forwarded(
    alice: httpx.AsyncClient,
) -> None:
    response = await alice.get(
        "/jobs/v1/tool/alice/echo",
        headers=[
            ("ssl-client-subject-dn", "CN=bob,O=toolforge"),
            ("SSL-Client-Subject-DN", "CN=service:builder,O=toolforge"),
            ("X-Toolforge-Foo", "bar"),
            ("x-toolforge-tool", "bob"),
            ("Connection", "keep-alive, X-Secret-Hop"),
            ("X-Secret-Hop", "hop"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
            ("TE", "trailers"),
            ("Upgrade", "websocket"),
            ("X-Kept", "yes"),
        ],
    )
    assert response.status_code == 200
    echo = response.json()
    assert echo["identity"] == "CN=alice,O=toolforge"
    headers = received_headers(echo)
    names = {name for name, _ in headers}
    assert values(headers, "ssl-client-subject-dn") == ["CN=alice,O=toolforge"]
    # The only x-toolforge-* header is the gateway's own, with the verified tool.
    assert [name for name in names if name.startswith("x-toolforge-")] == ["x-toolforge-tool"]
    assert values(headers, "x-toolforge-tool") == ["alice"]
    for hop in ("x-secret-hop", "keep-alive", "proxy-authorization", "te", "upgrade"):
        assert hop not in names
    assert values(headers, "x-kept") == ["yes"]


async def test_spoofed_identity_on_an_unauthenticated_path_is_dropped(
    gateway: GatewayUnderTest, backends: Backends
) -> None:
    """The admin certificate has no identity: nothing is forwarded in the identity header,
    and certainly not what the client wrote there."""
    async with gateway.client(gateway.pki.admin) as client:
        response = await client.get(
            "/jobs/v1/healthz", headers={"ssl-client-subject-dn": "CN=alice,O=toolforge"}
        )
    assert response.status_code == 200
    assert backends.jobs.seen == [("GET", "/v1/healthz")]


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("req-123_abc.DEF", True),
        ("a" * 128, True),
        ("a" * 129, False),
        ("has space", False),
        ("semi;colon", False),
        (None, False),
    ],
)
async def test_request_id_kept_when_well_formed(
    alice: httpx.AsyncClient, sent: str | None, kept: bool
) -> None:
    headers = {"X-Request-ID": sent} if sent is not None else {}
    response = await alice.get("/jobs/v1/tool/alice/echo", headers=headers)
    returned = response.headers["x-request-id"]
    assert values(received_headers(response.json()), "x-request-id") == [returned]
    if kept:
        assert returned == sent
    else:
        assert UUID_RE.fullmatch(returned)


async def test_request_id_on_gateway_errors(alice: httpx.AsyncClient) -> None:
    response = await alice.get("/jobs/v1/tool/bob/echo", headers={"X-Request-ID": "mine"})
    assert response.status_code == 403
    assert response.headers["x-request-id"] == "mine"


async def test_request_body_is_forwarded(alice: httpx.AsyncClient) -> None:
    body = b'{"name": "x"}' * 100
    response = await alice.post("/jobs/v1/tool/alice/echo", content=body)
    assert response.status_code == 200
    echo = response.json()
    assert echo["method"] == "POST"
    assert echo["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert values(received_headers(echo), "content-length") == [str(len(body))]


async def test_response_streams_line_by_line(alice: httpx.AsyncClient, backends: Backends) -> None:
    """The backend sends line 2 only after the test has read line 1 through the gateway: a
    gateway that buffered the response would deadlock here (and time out)."""
    async with asyncio.timeout(10), alice.stream("GET", "/jobs/v1/tool/alice/stream") as response:
        assert response.status_code == 200
        assert response.headers["x-accel-buffering"] == "no"
        assert response.headers["content-type"] == "application/x-ndjson"
        lines = response.aiter_lines()
        assert await anext(lines) == '{"line": 1}'
        assert not backends.jobs.release.is_set()
        backends.jobs.release.set()
        assert await anext(lines) == '{"line": 2}'
        with pytest.raises(StopAsyncIteration):
            await anext(lines)


async def test_client_leaving_a_stream_ends_it_at_the_backend(
    gateway: GatewayUnderTest, backends: Backends
) -> None:
    """A `logs?follow=true` stream whose client went away must not keep the backend busy."""
    async with (
        gateway.client(gateway.pki.alice) as client,
        asyncio.timeout(10),
        client.stream("GET", "/jobs/v1/tool/alice/stream") as response,
    ):
        assert await anext(response.aiter_lines()) == '{"line": 1}'
    # Leaving the block closed the client's connection with the rest unread.
    async with asyncio.timeout(10):
        await backends.jobs.stream_ended.wait()
    assert not backends.jobs.release.is_set()


async def test_request_body_streams_up(alice: httpx.AsyncClient, backends: Backends) -> None:
    """The client sends chunk 2 only after the backend has received chunk 1 (without a
    Content-Length): a gateway that buffered the request body would deadlock here."""
    chunk = b"x" * 1000

    async def body() -> AsyncIterator[bytes]:
        yield chunk
        await backends.jobs.got_first_chunk.wait()
        yield chunk

    async with asyncio.timeout(10):
        response = await alice.post("/jobs/v1/tool/alice/upload", content=body())
    assert response.status_code == 200
    assert response.json() == {
        "sha256": hashlib.sha256(chunk * 2).hexdigest(),
        "chunks": 2,
        "transfer_encoding": "chunked",
    }


async def test_redirects_point_at_the_gateway(alice: httpx.AsyncClient) -> None:
    response = await alice.get("/builds/v1/tool/alice/redirect")
    assert response.status_code == 307
    assert response.headers["location"] == "/builds/v1/tool/alice/echo"


async def test_per_api_openapi_is_the_backends_own(alice: httpx.AsyncClient) -> None:
    response = await alice.get("/jobs/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    assert spec["info"]["title"] == "jobs API"
    assert "/v1/tool/{tool}/echo" in spec["paths"]


# -- backend failures ------------------------------------------------------------------------


async def test_backend_down_is_503_with_retry_after(alice: httpx.AsyncClient) -> None:
    response = await alice.get("/down/v1/tool/alice/echo")
    assert_error(response, 503, "the down API is not available")
    assert response.headers["retry-after"] == "7"


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("/silent/v1/tool/alice/echo", "connecting to the silent API timed out"),
        ("/impatient/v1/tool/alice/slow?seconds=2", "the impatient API did not answer in time"),
        ("/hurried/v1/tool/alice/slow?seconds=2", "the hurried API did not answer in time"),
    ],
)
async def test_backend_timeouts_are_504(alice: httpx.AsyncClient, path: str, text: str) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await alice.get(path)
    assert_error(response, 504, text)
    assert loop.time() - started < 1.5  # the 0.3 s timeout, not the backend's 2 s


async def test_backend_answering_garbage_is_502(alice: httpx.AsyncClient) -> None:
    response = await alice.get("/garbage/v1/tool/alice/echo")
    assert_error(response, 502, "the garbage API sent an invalid response")


async def test_backend_with_an_untrusted_certificate_is_502(alice: httpx.AsyncClient) -> None:
    response = await alice.get("/impostor/v1/tool/alice/echo")
    assert_error(response, 502, "TLS with the impostor API failed")


# -- limits ----------------------------------------------------------------------------------


async def test_body_over_the_limit_with_content_length_is_413(
    alice: httpx.AsyncClient, backends: Backends
) -> None:
    response = await alice.post(
        "/jobs/v1/tool/alice/echo", content=b"x" * (LIMITS.max_body_bytes + 1)
    )
    assert_error(response, 413, f"larger than {LIMITS.max_body_bytes} bytes")
    assert backends.seen() == []


async def test_body_at_the_limit_passes(alice: httpx.AsyncClient) -> None:
    body = b"x" * LIMITS.max_body_bytes
    response = await alice.post("/jobs/v1/tool/alice/echo", content=body)
    assert response.status_code == 200
    assert response.json()["body_sha256"] == hashlib.sha256(body).hexdigest()


async def test_streamed_body_over_the_limit_is_413(alice: httpx.AsyncClient) -> None:
    """No Content-Length: the limit is enforced while the body streams through."""

    async def body() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"y" * 1000
            await asyncio.sleep(0.01)

    response = await alice.post("/jobs/v1/tool/alice/upload", content=body())
    assert_error(response, 413, f"larger than {LIMITS.max_body_bytes} bytes")


async def test_long_url_is_414(alice: httpx.AsyncClient, backends: Backends) -> None:
    path = "/jobs/v1/tool/alice/echo?q="
    ok = await alice.get(path + "a" * (LIMITS.max_url_bytes - len(path)))
    assert ok.status_code == 200
    response = await alice.get(path + "a" * (LIMITS.max_url_bytes - len(path) + 1))
    assert_error(response, 414, f"longer than {LIMITS.max_url_bytes} bytes")
    assert len(backends.seen()) == 1


async def test_large_headers_are_431(alice: httpx.AsyncClient, backends: Backends) -> None:
    response = await alice.get(
        "/jobs/v1/tool/alice/echo", headers={"X-Big": "b" * LIMITS.max_header_bytes}
    )
    assert_error(response, 431, f"larger than {LIMITS.max_header_bytes} bytes")
    assert backends.seen() == []


async def test_content_length_with_transfer_encoding_is_refused(
    gateway: GatewayUnderTest, backends: Backends
) -> None:
    """Request smuggling (RFC 9112 section 6.3): refused by the HTTP parser or the gateway."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1",
        gateway.port,
        ssl=gateway.pki.client_context(gateway.pki.alice),
        server_hostname="127.0.0.1",
    )
    writer.write(
        b"POST /jobs/v1/tool/alice/echo HTTP/1.1\r\nHost: gw\r\nContent-Length: 4\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )
    answer = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert backends.seen() == []
