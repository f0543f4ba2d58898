"""The authorisation decision and the upstream error mapping, as pure functions."""

from __future__ import annotations

import re

import pytest

from toolforge_auth.identity import Identity, ServiceIdentity, ToolIdentity
from toolforge_gateway import upstream
from toolforge_gateway.authz import (
    AccessPolicy,
    authorize,
    has_encoded_slash,
    is_public,
    split_route,
)
from toolforge_gateway.upstream import classify_upstream_error

POLICY = AccessPolicy(
    routes={"jobs", "builds"},
    unauthenticated_suffixes={"/openapi.json", "/v1/healthz", "/v1/metrics"},
    services={
        "builder": (re.compile(r"/builds/v1/tool/[^/]+/builds"),),
        "empty": (),
    },
)
FOO = ToolIdentity("foo")
BUILDER = ServiceIdentity("builder")


@pytest.mark.parametrize(
    ("path", "identity", "status"),
    [
        # Tools: their own /v1/tool/<name>/ only.
        ("/jobs/v1/tool/foo/jobs", FOO, 200),
        ("/jobs/v1/tool/foo", FOO, 200),
        ("/builds/v1/tool/foo/builds/1/logs", FOO, 200),
        ("/jobs/v1/tool/bar/jobs", FOO, 403),
        ("/jobs/v1/tool/foobar/jobs", FOO, 403),
        ("/jobs/v1/tool/fo/jobs", FOO, 403),
        ("/jobs/v1/tool//foo/jobs", FOO, 403),
        ("/jobs/v1/tools/foo/jobs", FOO, 403),
        ("/jobs/v2/tool/foo/jobs", FOO, 403),
        ("/jobs/v1/images", FOO, 403),
        ("/jobs", FOO, 403),
        ("/jobs/", FOO, 403),
        ("/jobs/v1/tool/foo/../bar/jobs", FOO, 400),
        ("/jobs/v1/tool/foo/./jobs", FOO, 400),
        ("/jobs/v1/tool/foo/..", FOO, 400),
        # Unauthenticated paths: anyone, even without an identity.
        ("/healthz", None, 200),
        ("/metrics", None, 200),
        ("/openapi.json", None, 200),
        ("/jobs/openapi.json", None, 200),
        ("/builds/v1/healthz", None, 200),
        ("/builds/v1/healthz/x", None, 403),
        ("/builds/v1/healthzz", None, 403),
        ("/jobs/v1/metrics", None, 200),
        ("/jobs/v1/metrics/x", None, 403),
        # Without an identity nothing else, and unknown routes are 404 for everyone.
        ("/jobs/v1/tool/foo/jobs", None, 403),
        ("/nope/v1/tool/foo/jobs", FOO, 404),
        ("/nope/openapi.json", None, 404),
        ("/", FOO, 404),
        # Services: their patterns, matched against the whole path.
        ("/builds/v1/tool/foo/builds", BUILDER, 200),
        ("/builds/v1/tool/foo/builds/1", BUILDER, 403),
        ("/x/builds/v1/tool/foo/builds", BUILDER, 404),
        ("/jobs/v1/tool/foo/jobs", BUILDER, 403),
        ("/builds/v1/tool/foo/builds", ServiceIdentity("empty"), 403),
        ("/builds/v1/tool/foo/builds", ServiceIdentity("unknown"), 403),
        # A tool named like the service pattern's owner gains nothing from it.
        ("/builds/v1/tool/foo/builds", ToolIdentity("builder"), 403),
    ],
)
def test_authorize(path: str, identity: Identity | None, status: int) -> None:
    decision = authorize(path, identity, POLICY, verified=True)
    assert decision.status == status
    assert decision.allowed == (status == 200)
    assert bool(decision.reason) == (status != 200)


@pytest.mark.parametrize(
    ("path", "status"),
    [
        # Public: no certificate needed.
        ("/openapi.json", 200),
        ("/jobs/openapi.json", 200),
        ("/jobs/v1/healthz", 200),
        ("/builds/v1/metrics", 200),
        # Everything else: 401 without a certificate, whatever it would be with one.
        ("/healthz", 401),
        ("/metrics", 401),
        ("/jobs/v1/tool/foo/jobs", 401),
        ("/jobs/v1/images", 401),
        ("/nope/openapi.json", 401),
        ("/nope/v1/healthz", 401),
        ("/jobs/v1/healthz/", 401),
        ("/jobs/v1/healthz/x", 401),
        ("/jobs/./v1/healthz", 401),
        ("/jobs/v1/../openapi.json", 401),
        ("/jobs/openapi.json/../v1/tool/foo/jobs", 401),
        ("//openapi.json", 401),
        ("/", 401),
        ("", 401),
    ],
)
def test_without_a_certificate_only_public_paths(path: str, status: int) -> None:
    decision = authorize(path, None, POLICY, verified=False)
    assert decision.status == status
    assert is_public(path, POLICY) == (status == 200)
    # An identity without verification is never trusted (it cannot happen, but deny anyway).
    assert authorize(path, FOO, POLICY, verified=False).status == status


def test_refusals_say_why() -> None:
    assert authorize("/jobs/v1/tool/bar/x", FOO, POLICY, verified=True).reason == (
        "tool 'foo' may not act on tool 'bar'"
    )
    refused = authorize("/jobs/x", BUILDER, POLICY, verified=True)
    assert "service:builder may not call /jobs/x" in refused.reason
    assert "Toolforge identity" in authorize("/jobs/x", None, POLICY, verified=True).reason
    assert "client certificate is required" in authorize("/x", None, POLICY, verified=False).reason


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/jobs/v1/tool/foo", ("jobs", "/v1/tool/foo")),
        ("/jobs", ("jobs", "")),
        ("/jobs/", ("jobs", "/")),
        ("/", ("", "")),
    ],
)
def test_split_route(path: str, expected: tuple[str, str]) -> None:
    assert split_route(path) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(b"/jobs/a%2Fb", True), (b"/jobs/a%2fb", True), (b"/jobs/a%252Fb", False), (b"/a/b", False)],
)
def test_has_encoded_slash(raw: bytes, expected: bool) -> None:
    assert has_encoded_slash(raw) is expected


@pytest.mark.parametrize(
    ("exc", "status", "kind"),
    [
        (upstream.ConnectError("refused"), 503, "connect"),
        (upstream.TLSError("bad cert"), 502, "tls"),
        (upstream.PoolTimeoutError("pool"), 503, "pool_timeout"),
        (upstream.ConnectTimeoutError("slow"), 504, "connect_timeout"),
        (upstream.ReadTimeoutError("slow"), 504, "read_timeout"),
        (upstream.WriteTimeoutError("slow"), 504, "write_timeout"),
        (TimeoutError(), 504, "total_timeout"),
        (upstream.ReadError("reset"), 502, "read"),
        (upstream.WriteError("reset"), 502, "write"),
        (upstream.ProtocolError("garbage"), 502, "protocol"),
    ],
)
def test_classify_upstream_error(exc: BaseException, status: int, kind: str) -> None:
    failure = classify_upstream_error(exc, "jobs")
    assert (failure.status, failure.kind) == (status, kind)
    assert "the jobs API" in failure.message
