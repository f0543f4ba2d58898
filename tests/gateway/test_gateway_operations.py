"""Operations: Prometheus metrics, the JSON access log, graceful shutdown."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx
import pytest
from gateway.gateway_harness import (
    Backends,
    GatewayPKI,
    GatewayUnderTest,
    OddBackends,
    gateway_settings,
    serving,
)
from prometheus_client.parser import text_string_to_metric_families

from toolforge_gateway.app import create_app
from toolforge_gateway.logs import ACCESS_LOGGER, JSONFormatter
from toolforge_gateway.server import build_config


def samples(exposition: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def requests_total(exposition: str, route: str, status: str) -> float:
    key = ("toolforge_gateway_requests_total", frozenset({("route", route), ("status", status)}))
    return samples(exposition).get(key, 0.0)


async def test_metrics_count_requests_by_route_and_status(alice: httpx.AsyncClient) -> None:
    for _ in range(3):
        assert (await alice.get("/jobs/v1/tool/alice/echo")).status_code == 200
    assert (await alice.get("/jobs/v1/tool/bob/echo")).status_code == 403
    assert (await alice.get("/down/v1/tool/alice/echo")).status_code == 503
    assert (await alice.get("/nothing/here")).status_code == 404

    response = await alice.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert requests_total(text, "jobs", "200") == 3
    assert requests_total(text, "jobs", "403") == 1
    assert requests_total(text, "down", "503") == 1
    assert requests_total(text, "unknown", "404") == 1
    all_samples = samples(text)
    assert (
        all_samples[
            (
                "toolforge_gateway_upstream_errors_total",
                frozenset({("route", "down"), ("kind", "connect")}),
            )
        ]
        == 1
    )
    assert (
        all_samples[
            ("toolforge_gateway_request_duration_seconds_count", frozenset({("route", "jobs")}))
        ]
        == 4
    )
    # This scrape is counted after it was answered.
    again = (await alice.get("/metrics")).text
    assert requests_total(again, "gateway", "200") == 1


async def test_access_log_is_one_json_line_per_request(
    alice: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    await alice.get("/jobs/v1/tool/alice/echo?x=1", headers={"X-Request-ID": "log-test-1"})
    await alice.get("/down/v1/tool/alice/echo", headers={"X-Request-ID": "log-test-2"})
    records = [record for record in caplog.records if record.name == ACCESS_LOGGER]
    assert len(records) == 2
    first, second = (json.loads(JSONFormatter().format(record)) for record in records)
    assert first["request_id"] == "log-test-1"
    assert first["identity"] == "alice"
    assert first["tool"] == "alice"
    assert first["subject_dn"] == "CN=alice,O=toolforge"
    assert first["route"] == "jobs"
    assert first["method"] == "GET"
    assert first["path"] == "/jobs/v1/tool/alice/echo"
    assert first["status"] == 200
    assert first["upstream_error"] is None
    assert first["client"] == "127.0.0.1"
    assert isinstance(first["duration_ms"], float)
    assert first["duration_ms"] > 0
    assert first["level"] == "INFO"
    assert second["request_id"] == "log-test-2"
    assert second["status"] == 503
    assert second["upstream_error"] == "connect"


async def test_shutdown_drains_in_flight_requests(
    gateway: GatewayUnderTest, backends: Backends
) -> None:
    """A request in flight when shutdown starts still gets its answer; new connections are
    no longer accepted."""
    async with gateway.client(gateway.pki.alice) as client:
        slow = asyncio.create_task(client.get("/jobs/v1/tool/alice/slow?seconds=1"))
        await asyncio.wait_for(backends.jobs.request_seen.wait(), timeout=10)
        assert backends.jobs.seen == [("GET", "/v1/tool/alice/slow")]
        gateway.server.should_exit = True
        await asyncio.sleep(0.3)  # uvicorn notices should_exit and closes the listener
        assert not gateway.task.done()
        async with gateway.client(gateway.pki.alice) as late:
            with pytest.raises(httpx.ConnectError):
                await late.get("/healthz")
        response = await slow
    assert response.status_code == 200
    assert response.json() == {"slept": "1.0"}
    await asyncio.wait_for(gateway.task, timeout=5)


async def test_health_port_answers_only_healthz_without_tls(
    gw_pki: GatewayPKI, backends: Backends, odd_backends: OddBackends
) -> None:
    """The plain-HTTP health port (for kubelet probes) answers GET /healthz and nothing else:
    no backend is ever reached through it, and the TLS port still requires a certificate."""
    settings = gateway_settings(gw_pki, backends, odd_backends).model_copy(
        update={"health_port": 0}  # the kernel picks a free port as the gateway binds it
    )
    app = create_app(settings)
    async with serving(build_config(settings, app, loop="asyncio")) as (running,):
        health = app.health_server
        assert health is not None
        health_port = int(health.sockets[0].getsockname()[1])
        base = f"http://127.0.0.1:{health_port}"
        async with httpx.AsyncClient() as plain:
            ok = await plain.get(f"{base}/healthz")
            assert (ok.status_code, ok.json()) == (200, {"status": "OK"})
            head = await plain.head(f"{base}/healthz")
            assert head.status_code == 200
            assert head.content == b""
            seen_before = backends.seen()
            for path in ("/jobs/v1/tool/alice/echo", "/metrics", "/openapi.json", "/"):
                assert (await plain.get(f"{base}{path}")).status_code == 404, path
            assert (await plain.post(f"{base}/healthz")).status_code == 404
            assert backends.seen() == seen_before
        # Garbage instead of HTTP: the connection is closed without an answer.
        reader, writer = await asyncio.open_connection("127.0.0.1", health_port)
        writer.write(b"\x16\x03\x01 not http\r\n\r\n")
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
        # The TLS port is unchanged: without a client certificate its /healthz is 401.
        ctx = gw_pki.client_context(None)
        async with httpx.AsyncClient(verify=ctx) as anonymous:
            assert (await anonymous.get(f"{running.url}/healthz")).status_code == 401
    # Closed with the app (asked of the server: the port, once released, may be anyone's).
    assert not health.is_serving()
    assert app.health_server is None


async def test_health_port_is_off_by_default(gateway: GatewayUnderTest) -> None:
    assert gateway.app.settings.health_port is None
