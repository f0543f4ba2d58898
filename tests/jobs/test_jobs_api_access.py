"""The jobs API's edges without a cluster: mTLS identity checks, the error envelope, request
validation, metrics, and 503 + Retry-After when kube-apiserver cannot be reached.

The app is served over real TLS with the platform PKI in a temporary directory; its kubeconfig
points at a loopback port nothing listens on (a stopped kube-apiserver).
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from jobs.support import JobsAPI, api_settings, dead_kubeconfig, serve_jobs_api

from certs import AuthPKI
from toolforge_admin.pki import PlatformPKI
from toolforge_jobs.metrics import JobsMetrics
from toolforge_jobs.settings import JobsSettings
from toolforge_jobs.storage import ToolImpersonatingStorage

pytestmark = pytest.mark.asyncio(loop_scope="module")

RETRY_AFTER = 7


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> AuthPKI:
    directory = tmp_path_factory.mktemp("jobs-pki")
    return AuthPKI(directory, PlatformPKI.ensure(directory))


@pytest.fixture(scope="module")
def settings(pki: AuthPKI) -> JobsSettings:
    return api_settings(pki.dir, dead_kubeconfig(pki.dir), retry_after_seconds=RETRY_AFTER)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(settings: JobsSettings, pki: AuthPKI) -> AsyncIterator[JobsAPI]:
    async with serve_jobs_api(settings, pki.dir) as served:
        yield served


def client_with(api: JobsAPI, cert: Path, key: Path, **kwargs: Any) -> httpx.AsyncClient:
    context = ssl.create_default_context(cafile=api.pki / "backend-ca.crt")
    context.load_cert_chain(cert, key)
    return httpx.AsyncClient(base_url=api.url, verify=context, **kwargs)


def envelope(response: httpx.Response) -> list[str]:
    """The messages of an error body, which must be production's ``{"error": [...]}``."""
    body = response.json()
    assert set(body) == {"error"}, body
    errors: list[str] = body["error"]
    assert errors
    assert all(isinstance(e, str) for e in errors)
    return errors


async def test_health_metrics_and_openapi_need_no_identity(api: JobsAPI) -> None:
    async with api.client(gateway=False) as client:
        health = await client.get("/v1/healthz")
        assert health.status_code == 200
        assert health.json() == {
            "health": {"status": "OK", "message": "OK"},
            "messages": {"info": [], "warning": [], "error": []},
        }
        for path in ("/metrics", "/v1/metrics"):
            metrics = await client.get(path)
            assert metrics.status_code == 200
            assert "toolforge_jobs_requests_total" in metrics.text
        assert (await client.get("/openapi.json")).json()["info"]["title"] == "Toolforge jobs API"


async def test_tool_routes_need_the_gateway_and_the_right_tool(api: JobsAPI, pki: AuthPKI) -> None:
    async with api.client("alice", gateway=False) as client:
        response = await client.get("/v1/tool/alice/jobs")
        assert response.status_code == 401
        assert "API gateway" in envelope(response)[0]
    # a backend-CA certificate that is not the gateway's
    other = pki.client(pki.platform.backend_ca, "not-gateway", "builds-api", ["toolforge"])
    async with client_with(
        api, other.cert, other.key, headers={"ssl-client-subject-dn": "CN=alice,O=toolforge"}
    ) as client:
        response = await client.get("/v1/tool/alice/jobs")
        assert response.status_code == 403
        assert envelope(response) == ["the client certificate is not the API gateway's"]
    async with api.client() as client:
        response = await client.get("/v1/tool/alice/jobs")  # no identity header
        assert response.status_code == 401
        envelope(response)
    async with api.client("alice") as client:
        response = await client.get("/v1/tool/bob/jobs")
        assert response.status_code == 403
        assert envelope(response) == ["tool 'alice' may not act on tool 'bob'"]
    async with api.client(dn="CN=service:x,O=toolforge") as client:
        response = await client.get("/v1/tool/x/jobs")
        assert response.status_code == 403
        envelope(response)


async def test_a_client_certificate_from_another_ca_fails_the_handshake(
    api: JobsAPI, pki: AuthPKI
) -> None:
    tool_cert = pki.client(pki.platform.cluster_ca, "alice-tool", "alice", ["toolforge"])
    async with client_with(api, tool_cert.cert, tool_cert.key) as client:
        # TLS 1.3: the server's refusal arrives after the client's side of the handshake
        with pytest.raises((httpx.ConnectError, httpx.ReadError)):
            await client.get("/v1/healthz")


async def test_unreachable_apiserver_is_503_with_retry_after(api: JobsAPI) -> None:
    before = await api.metric("toolforge_jobs_kube_errors_total", kind="unavailable")
    async with api.client("alice") as client:
        for method, path, body in [
            ("GET", "/v1/tool/alice/jobs", None),
            ("GET", "/v1/tool/alice/jobs/x", None),
            ("POST", "/v1/tool/alice/jobs", {"name": "x", "cmd": "true", "imagename": "bookworm"}),
            ("GET", "/v1/tool/alice/images", None),
            ("GET", "/v1/tool/alice/quotas", None),
            ("GET", "/v1/tool/alice/jobs/x/logs", None),
        ]:
            response = await client.request(method, path, json=body)
            assert response.status_code == 503, (method, path, response.text)
            assert response.headers["retry-after"] == str(RETRY_AFTER)
            assert envelope(response) == ["the Kubernetes API cannot be reached; try again later"]
    assert await api.metric("toolforge_jobs_kube_errors_total", kind="unavailable") > before


@pytest.mark.parametrize(
    ("request_kwargs", "expected"),
    [
        ({"json": {"name": "x", "cmd": "true"}}, ["imagename: Field required"]),
        (
            {"json": {"name": "x", "cmd": "true", "imagename": "i", "colour": "red"}},
            ["colour: Extra inputs are not permitted"],
        ),
        (
            {"json": {"name": "-x", "cmd": "true", "imagename": "i"}},
            [
                "name '-x' must consist of lower case letters, digits, '-' and '.', and start "
                "and end with a letter or digit"
            ],
        ),
        (
            {"json": {"name": "x", "cmd": "true", "imagename": "i", "port": 80}},
            ["port is only valid for continuous jobs"],
        ),
        (
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            [
                "body: JSON decode error: Expecting property name enclosed in double quotes "
                "(at character 1)"
            ],
        ),
        ({}, ["body: Field required"]),
    ],
)
async def test_request_validation_names_the_field(
    api: JobsAPI, request_kwargs: dict[str, Any], expected: list[str]
) -> None:
    async with api.client("alice") as client:
        for method in ("POST", "PATCH"):
            response = await client.request(method, "/v1/tool/alice/jobs", **request_kwargs)
            assert response.status_code == 422, response.text
            assert envelope(response) == expected


async def test_query_validation_and_routing_errors_use_the_envelope(api: JobsAPI) -> None:
    async with api.client("alice") as client:
        response = await client.get("/v1/tool/alice/jobs/x/logs", params={"lines": 0})
        assert response.status_code == 422
        assert envelope(response)[0].startswith("lines: ")
        response = await client.get("/v1/nothing/here")
        assert response.status_code == 404
        assert envelope(response) == ["Not Found"]
        response = await client.put("/v1/tool/alice/jobs")
        assert response.status_code == 405
        envelope(response)


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/v1/tool/alice/jobs", "DELETE, GET, PATCH, POST"),
        ("/v1/tool/alice/jobs/", "DELETE, GET, PATCH, POST"),
        ("/v1/tool/alice/jobs/x", "DELETE, GET"),
        ("/v1/tool/alice/jobs/x/restart", "POST"),
        ("/v1/tool/alice/jobs/x/restart/", "POST"),
        ("/v1/tool/alice/jobs/x/logs", "GET"),
        ("/v1/tool/alice/images", "GET"),
        ("/v1/healthz", "GET"),
    ],
)
async def test_405_and_options_list_every_method_of_the_path(
    api: JobsAPI, path: str, methods: str
) -> None:
    """Starlette would list only the methods of the first route it tried (issue 13: the fuzzer
    saw ``Allow: GET`` on a path that takes four methods); OPTIONS is one of the methods no
    route serves."""
    async with api.client("alice") as client:
        for method in ("OPTIONS", "PUT", "TRACE", "HEAD"):
            response = await client.request(method, path)
            assert response.status_code == 405, (method, path, response.text)
            assert response.headers["allow"] == methods, response.text
            if method != "HEAD":  # a HEAD answer has no body
                assert envelope(response) == ["Method Not Allowed"]


async def test_every_route_answers_with_and_without_a_trailing_slash(api: JobsAPI) -> None:
    """No redirect (the upstream client calls ``/jobs/``, ``/images/``, ``/quotas/``): the
    answer itself, from the same route (here the 503 of the unreachable apiserver, or the
    healthz body)."""
    async with api.client("alice") as client:
        for path in ("/v1/tool/alice/jobs", "/v1/tool/alice/jobs/x", "/v1/tool/alice/quotas"):
            plain, slashed = await client.get(path), await client.get(path + "/")
            assert plain.status_code == slashed.status_code == 503, (path, slashed.text)
            assert "location" not in slashed.headers
            assert plain.json() == slashed.json()
        healthz = await client.get("/v1/healthz/")
        assert healthz.status_code == 200
        assert healthz.json()["health"]["status"] == "OK"
        response = await client.delete("/v1/tool/alice/jobs/")
        assert response.status_code == 503  # DELETE (flush) reached, not a 405 or redirect


async def test_requests_are_counted_by_route_template(api: JobsAPI) -> None:
    labels = {"route": "/v1/tool/{tool}/jobs/{name}", "method": "GET", "status": "503"}
    before = await api.metric("toolforge_jobs_requests_total", **labels)
    async with api.client("alice") as client:
        await client.get("/v1/tool/alice/jobs/one")
        await client.get("/v1/tool/alice/jobs/two")
        await client.get("/v1/does-not-exist")
    assert await api.metric("toolforge_jobs_requests_total", **labels) == before + 2
    unmatched = {"route": "unmatched", "method": "GET", "status": "404"}
    assert await api.metric("toolforge_jobs_requests_total", **unmatched) >= 1


async def test_storage_never_impersonates_a_non_tool(settings: JobsSettings) -> None:
    storage = await ToolImpersonatingStorage.connect(settings, JobsMetrics())
    try:
        for name in ("system:admin", "system:kube-controller-manager", "Alice", ""):
            # refused by the tool contract (namespace_for) before the kit's transport would
            with pytest.raises(ValueError, match=r"not a DNS-1123 label|must not be empty"):
                await storage.list(name, "pods")
    finally:
        await storage.close()
