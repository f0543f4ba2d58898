"""Test harness for the gateway tests: certificates, servers on loopback, test backends.

Used by ``conftest.py`` (the fixtures) and the test modules; imported as
``gateway.gateway_harness`` (``tests/`` is on the import path for pytest and mypy).
"""

# No "from __future__ import annotations": FastAPI must see the local Item classes below.
import asyncio
import hashlib
import json
import re
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, StreamingResponse
from pydantic import BaseModel

from certs import AuthPKI, Pair
from toolforge_auth.dependencies import CurrentIdentity, CurrentTool, GatewayPeer, install_auth
from toolforge_auth.settings import AuthSettings
from toolforge_auth.tls import server_ssl_context
from toolforge_auth.uvicorn import TLSHttpToolsProtocol, ssl_context_factory
from toolforge_gateway.app import Gateway
from toolforge_gateway.settings import GatewaySettings, Limits, RouteSettings

# Small limits, so the tests can cross them cheaply.
LIMITS = Limits(max_body_bytes=4096, max_header_bytes=4096, max_url_bytes=512)
# Allowed paths of the service identity "builder" (full gateway paths, fullmatch).
BUILDER_PATTERNS = [re.compile(r"/jobs/v1/admin/.*"), re.compile(r"/builds/v1/admin/echo")]


@dataclass(frozen=True)
class GatewayPKI:
    """Certificates for the gateway tests (paths on disk)."""

    auth: AuthPKI
    service_ca_file: Path
    alice: Pair
    bob: Pair
    admin: Pair
    builder: Pair  # CN=service:builder,O=toolforge, allowed on BUILDER_PATTERNS
    intruder: Pair  # CN=service:intruder,O=toolforge, no patterns configured
    unknown_ca_alice: Pair  # CN=alice,O=toolforge from a CA the gateway does not trust
    expired_alice: Pair
    backend_ca_alice: Pair  # CN=alice,O=toolforge from the backend CA (must never happen)

    def path(self, name: str) -> Path:
        return self.auth.path(name)

    def client_context(self, pair: Pair | None, ca: str = "cluster-ca.crt") -> ssl.SSLContext:
        """A client context trusting ``ca`` and presenting ``pair`` (if any)."""
        context = ssl.create_default_context(cafile=self.path(ca))
        if pair is not None:
            context.load_cert_chain(pair.cert, pair.key)
        return context


# -- servers ------------------------------------------------------------------------------


@dataclass
class Running:
    """A uvicorn server started by :func:`serving`."""

    url: str
    port: int
    server: uvicorn.Server
    task: asyncio.Task[None]


def bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@asynccontextmanager
async def serving(*configs: uvicorn.Config) -> AsyncIterator[list[Running]]:
    """Serve each of ``configs`` on a free loopback port in this event loop; on exit, stop
    them all at once (draining open requests)."""
    sockets = [bound_socket() for _ in configs]
    running: list[Running] = []
    try:
        for config, sock in zip(configs, sockets, strict=True):
            server = uvicorn.Server(config)
            task = asyncio.create_task(server.serve(sockets=[sock]))
            port = sock.getsockname()[1]
            running.append(Running(f"https://127.0.0.1:{port}", port, server, task))
        for item in running:
            while not item.server.started:
                if item.task.done():
                    item.task.result()
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.01)
        yield running
    finally:
        for item in running:
            item.server.should_exit = True
        await asyncio.gather(*(item.task for item in running))
        for sock in sockets:
            sock.close()


@contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port that refuses connections for as long as the context lasts.

    Its socket stays bound without listening, so a connection to it is refused (ECONNREFUSED).
    A port bound and released at once could be taken by any other socket before it is used;
    held like this, and without ``SO_REUSEADDR`` (with which Linux lets a second socket bind a
    port no socket listens on), nothing else can bind it.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


# -- backends -----------------------------------------------------------------------------


class Shared(BaseModel):
    """Identical in both backends: the merged spec keeps it once."""

    ok: bool


@dataclass
class Backend:
    """A test backend: its app, URL and what it saw."""

    name: str
    app: FastAPI
    seen: list[tuple[str, str]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    got_first_chunk: asyncio.Event = field(default_factory=asyncio.Event)
    request_seen: asyncio.Event = field(default_factory=asyncio.Event)
    stream_ended: asyncio.Event = field(default_factory=asyncio.Event)
    #: Client port of the connection each request came in on.
    peers: list[int] = field(default_factory=list)
    url: str = ""


def make_backend(name: str, pki: GatewayPKI) -> Backend:
    """A backend API like the real ones: ``install_auth`` with the backend CA, tool routes
    behind :data:`CurrentTool`, the health check open."""
    app = FastAPI(title=f"{name} API", version="1")
    backend = Backend(name, app)
    install_auth(app, AuthSettings(backend_ca_file=pki.path("backend-ca.crt")))

    @app.middleware("http")
    async def record(request: Request, call_next: Any) -> Any:
        backend.seen.append((request.method, request.url.path))
        if request.client is not None:
            backend.peers.append(request.client.port)
        backend.request_seen.set()
        return await call_next(request)

    async def echo(request: Request, identity: str) -> dict[str, Any]:
        body = await request.body()
        return {
            "backend": name,
            "identity": identity,
            "method": request.method,
            "path": request.url.path,
            "raw_path": request.scope["raw_path"].decode(),
            "query": request.scope["query_string"].decode(),
            "headers": [[k.decode(), v.decode()] for k, v in request.scope["headers"]],
            "body_sha256": hashlib.sha256(body).hexdigest(),
        }

    @app.get("/v1/healthz")
    async def healthz() -> Shared:
        return Shared(ok=True)

    @app.get("/v1/metrics")
    async def metrics(request: Request) -> dict[str, Any]:
        # Open, as upstream's are; echoes what it got, to check what the gateway forwarded.
        return await echo(request, "")

    @app.get("/v1/tool/{tool}/echo")
    @app.post("/v1/tool/{tool}/echo")
    async def tool_echo(request: Request, tool: CurrentTool) -> dict[str, Any]:
        return await echo(request, tool.dn)

    @app.get("/v1/admin/echo")
    @app.post("/v1/admin/echo")
    async def admin_echo(request: Request, identity: CurrentIdentity) -> dict[str, Any]:
        return await echo(request, identity.dn)

    @app.get("/v1/peer/echo")
    async def peer_echo(request: Request, peer: GatewayPeer) -> dict[str, Any]:
        return await echo(request, peer.subject.rfc4514_string())

    @app.get("/v1/tool/{tool}/slow")
    async def slow(tool: CurrentTool, seconds: float) -> dict[str, str]:
        await asyncio.sleep(seconds)
        return {"slept": str(seconds)}

    @app.get("/v1/tool/{tool}/stream")
    async def stream(tool: CurrentTool) -> StreamingResponse:
        async def lines() -> AsyncIterator[bytes]:
            try:
                yield b'{"line": 1}\n'
                await backend.release.wait()  # the test releases line 2 once it has line 1
                yield b'{"line": 2}\n'
            finally:
                backend.stream_ended.set()  # also when the client went away

        return StreamingResponse(
            lines(), media_type="application/x-ndjson", headers={"X-Accel-Buffering": "no"}
        )

    @app.post("/v1/tool/{tool}/upload")
    async def upload(request: Request, tool: CurrentTool) -> dict[str, Any]:
        digest = hashlib.sha256()
        chunks = 0
        async for chunk in request.stream():
            if chunk:
                chunks += 1
                digest.update(chunk)
                backend.got_first_chunk.set()
        return {
            "sha256": digest.hexdigest(),
            "chunks": chunks,
            "transfer_encoding": request.headers.get("transfer-encoding"),
        }

    @app.get("/v1/tool/{tool}/redirect")
    async def redirect(tool: CurrentTool, request: Request) -> RedirectResponse:
        return RedirectResponse(str(request.url_for("tool_echo", tool=tool.name)))

    # Both backends have a schema named "Item", with different fields: the merged spec must
    # keep both apart.
    if name == "jobs":

        class Item(BaseModel):
            name: str
            replicas: int = 1

    else:

        class Item(BaseModel):  # type: ignore[no-redef]
            name: str
            ref: str

    @app.post("/v1/tool/{tool}/items")
    async def create_item(tool: CurrentTool, item: Item) -> Shared:
        return Shared(ok=True)

    return backend


def backend_config(app: FastAPI, pki: GatewayPKI, cert: str, **options: Any) -> uvicorn.Config:
    context = server_ssl_context(
        certfile=pki.path(f"{cert}.crt"),
        keyfile=pki.path(f"{cert}.key"),
        client_ca_files=[pki.path("backend-ca.crt")],
        client_cert="optional",
    )
    return uvicorn.Config(
        app,
        http=TLSHttpToolsProtocol,
        ssl_context_factory=ssl_context_factory(context),
        log_level="warning",
        lifespan="on",
        proxy_headers=False,  # scope["client"] is the gateway's end of the connection
        **options,
    )


@dataclass
class Backends:
    jobs: Backend
    builds: Backend
    #: The jobs app with a server certificate from the cluster CA, which the gateway must not
    #: accept from a backend.
    impostor_url: str

    def seen(self) -> list[tuple[str, str]]:
        return self.jobs.seen + self.builds.seen


# -- the gateway --------------------------------------------------------------------------


@dataclass(frozen=True)
class OddBackends:
    """Ports of misbehaving backends (see the ``odd_backends`` fixture)."""

    silent_port: int
    garbage_port: int
    refused_port: int


def gateway_settings(pki: GatewayPKI, backends: Backends, odd: OddBackends) -> GatewaySettings:
    return GatewaySettings(
        host="127.0.0.1",
        port=0,
        tls_cert_file=pki.path("gateway-server.crt"),
        tls_key_file=pki.path("gateway-server.key"),
        client_ca_files=[pki.path("cluster-ca.crt"), pki.service_ca_file],
        backend_client_cert_file=pki.path("gateway-backend-client.crt"),
        backend_client_key_file=pki.path("gateway-backend-client.key"),
        backend_ca_file=pki.path("backend-ca.crt"),
        routes={
            "jobs": RouteSettings(url=backends.jobs.url),
            "builds": RouteSettings(url=backends.builds.url),
            # Broken on purpose: nobody listens / never answers / too slow for the timeouts.
            "down": RouteSettings(url=f"https://127.0.0.1:{odd.refused_port}"),
            "silent": RouteSettings(
                url=f"https://127.0.0.1:{odd.silent_port}", connect_timeout=0.3
            ),
            "garbage": RouteSettings(url=f"https://127.0.0.1:{odd.garbage_port}"),
            "impatient": RouteSettings(url=backends.jobs.url, read_timeout=0.3),
            "hurried": RouteSettings(url=backends.jobs.url, total_timeout=0.3),
            "impostor": RouteSettings(url=backends.impostor_url),
        },
        service_identities={"builder": BUILDER_PATTERNS},
        limits=LIMITS,
        openapi_cache_seconds=0,
        retry_after_seconds=7,
        graceful_shutdown_seconds=10,
    )


@dataclass
class GatewayUnderTest:
    url: str
    port: int
    app: Gateway
    server: uvicorn.Server
    task: asyncio.Task[None]
    pki: GatewayPKI

    async def raw_get(self, pair: Pair | None, target: bytes) -> tuple[int, dict[str, Any]]:
        """``GET <target>`` with the target sent byte for byte (httpx would resolve dot
        segments first). Returns the status and the JSON body."""
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", self.port, ssl=self.pki.client_context(pair), server_hostname="127.0.0.1"
        )
        try:
            writer.write(b"GET " + target + b" HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
            answer = await asyncio.wait_for(reader.read(), timeout=10)
        finally:
            writer.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        return int(head.split(b" ", 2)[1]), json.loads(body)

    def client(self, pair: Pair | None, **kwargs: Any) -> httpx.AsyncClient:
        """An HTTPS client for the gateway presenting ``pair``."""
        return httpx.AsyncClient(
            base_url=self.url, verify=self.pki.client_context(pair), timeout=10, **kwargs
        )


def assert_error(response: httpx.Response, status: int, text: str) -> None:
    """``response`` is a gateway error: ``status`` and the Toolforge envelope with one error
    message containing ``text``."""
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    messages = response.json()["messages"]
    assert set(messages) == {"info", "warning", "error"}
    assert messages["info"] == messages["warning"] == []
    assert len(messages["error"]) == 1
    assert text in messages["error"][0]
