"""The gateway as a plain ASGI application (:func:`create_app`).

The proxy path is deliberately lean (no framework routing or middleware per request):

1. size limits: URL (414), headers (431);
2. identity from the verified client certificate (``scope["extensions"]["tls"]``, filled by
   :mod:`toolforge_auth.uvicorn`), cached per certificate; the TLS layer asks for a certificate
   but does not require one, so a request without one gets 401 here (nothing forwarded) unless
   its path is public (:func:`toolforge_gateway.authz.is_public`);
3. header hygiene (:mod:`toolforge_gateway.headers`) and the authorisation decision
   (:mod:`toolforge_gateway.authz`);
4. the gateway's own paths (``/healthz``, ``/metrics``, ``/openapi.json``) or the backend: the
   request body is streamed up (413 past the limit, with or without Content-Length) over the
   route's pooled keep-alive mTLS connections (:mod:`toolforge_gateway.upstream`), the
   response streamed down chunk by chunk as it arrives;
5. one access-log line and the metrics per request.

Errors use the Toolforge envelope ``{"messages": {"info": [], "warning": [], "error": [msg]}}``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
from cryptography import x509
from starlette.types import Receive, Scope, Send

from toolforge_auth.identity import (
    Identity,
    InvalidSubjectDN,
    ToolIdentity,
    identity_from_certificate,
    subject_dn,
)
from toolforge_auth.tls import client_ssl_context, tls_extension
from toolforge_gateway import __version__
from toolforge_gateway.authz import (
    GATEWAY_PATHS,
    AccessPolicy,
    authorize,
    has_encoded_slash,
    split_route,
)
from toolforge_gateway.bodies import (
    BodyTooLargeError,
    ClientGoneError,
    copy_bounded,
    copy_unbounded,
    discard_body,
    stream_body,
    wait_for_disconnect,
)
from toolforge_gateway.headers import (
    REQUEST_ID_HEADER,
    BadRequestHeadersError,
    RequestHeaders,
    header_bytes,
    new_request_id,
    prepare_request_headers,
    prepare_response_headers,
)
from toolforge_gateway.health import start_health_server
from toolforge_gateway.logs import ACCESS_LOGGER
from toolforge_gateway.metrics import CONTENT_TYPE_LATEST, GatewayMetrics
from toolforge_gateway.openapi import SpecAggregator
from toolforge_gateway.settings import GatewaySettings, RouteSettings
from toolforge_gateway.upstream import (
    Timeouts,
    UpstreamError,
    UpstreamPool,
    UpstreamResponse,
    classify_upstream_error,
)
from toolforge_gateway.workers import MULTIPROC_ENV

__all__ = ["Gateway", "create_app", "error_body"]

log = logging.getLogger(__name__)
access_log = logging.getLogger(ACCESS_LOGGER)

#: Seconds spent reading and dropping the rest of a body refused with 413.
DRAIN_SECONDS = 5.0
#: Status logged when the client went away before the response was complete (as nginx does).
CLIENT_CLOSED = 499
_JSON = b"application/json"
_GATEWAY_ROUTE = "gateway"
_UNKNOWN_ROUTE = "unknown"


def error_body(message: str) -> bytes:
    """The Toolforge error envelope as JSON bytes (REFERENCE.md, Jobs API)."""
    return json.dumps({"messages": {"info": [], "warning": [], "error": [message]}}).encode()


@functools.lru_cache(maxsize=1024)
def _identify(pem: str) -> tuple[Identity | None, str]:
    """The Toolforge identity of a verified certificate (PEM; ``None`` if it has none) and its
    RFC 4514 subject DN. Cached by the PEM text, which is one string object per connection
    (its hash is computed once): keep-alive clients send many requests on one connection."""
    cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
    try:
        identity: Identity | None = identity_from_certificate(cert)
    except InvalidSubjectDN:
        identity = None
    return identity, subject_dn(cert)


@dataclass(slots=True)
class _Backend:
    """A route at run time: its connection pool and what each request to it needs."""

    name: str
    prefix: bytes
    upstream: bytes
    host_header: bytes
    base_path: bytes
    pool: UpstreamPool
    client: httpx.AsyncClient
    timeouts: Timeouts
    total_timeout: float

    @classmethod
    def open(cls, name: str, route: RouteSettings, context: ssl.SSLContext) -> _Backend:
        timeout = httpx.Timeout(
            connect=route.connect_timeout,
            read=route.read_timeout,
            write=route.read_timeout,
            pool=route.connect_timeout,
        )
        url = httpx.URL(route.url)
        # For the gateway's own requests (OpenAPI documents).
        client = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(
                verify=context, limits=httpx.Limits(max_connections=2), trust_env=False
            ),
            base_url=route.url,
            timeout=timeout,
            trust_env=False,
        )
        return cls(
            name=name,
            prefix=f"/{name}".encode("ascii"),
            upstream=route.url.encode("ascii"),
            host_header=url.netloc,
            base_path=url.raw_path.rstrip(b"/"),
            pool=UpstreamPool(
                context,
                host=url.host,
                port=url.port or 443,
                max_connections=route.max_connections,
                max_keepalive_connections=route.max_keepalive_connections,
                keepalive_expiry=route.keepalive_expiry,
            ),
            client=client,
            timeouts=Timeouts(
                connect=route.connect_timeout,
                read=route.read_timeout,
                write=route.read_timeout,
                pool=route.connect_timeout,
            ),
            total_timeout=route.total_timeout,
        )

    def target(self, raw_rest: bytes, query: bytes) -> bytes:
        """The backend request target for the gateway path after the route prefix (raw)."""
        target = self.base_path + (raw_rest or b"/")
        if query:
            target += b"?" + query
        return target

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.pool.aclose()


class Gateway:
    """The ASGI application. Backends' connection pools are opened at lifespan start-up and
    closed at shutdown, so the app must be served with lifespan events (uvicorn does)."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.metrics = GatewayMetrics(
            os.environ.get(MULTIPROC_ENV) if settings.workers > 1 else None
        )
        self.policy = AccessPolicy(
            routes=frozenset(settings.routes),
            unauthenticated_suffixes=frozenset(settings.unauthenticated_suffixes),
            services={
                name: tuple(patterns) for name, patterns in settings.service_identities.items()
            },
        )
        self._limits = settings.limits
        self._retry_after = str(settings.retry_after_seconds).encode("ascii")
        self._backends: dict[str, _Backend] = {}
        self._openapi: SpecAggregator | None = None
        self._health: asyncio.Server | None = None

    @property
    def health_server(self) -> asyncio.Server | None:
        """The plain-HTTP health listener while the app runs with a ``health_port`` (its
        ``sockets`` tell the port bound, e.g. for ``health_port: 0``), else ``None``."""
        return self._health

    # -- lifespan -------------------------------------------------------------------------

    async def startup(self) -> None:
        """Open one pooled mTLS client per route. Raises :class:`OSError`/:class:`ssl.SSLError`
        when the gateway's backend client certificate or the backend CA cannot be loaded."""
        context = client_ssl_context(
            ca_file=self.settings.backend_ca_file,
            certfile=self.settings.backend_client_cert_file,
            keyfile=self.settings.backend_client_key_file,
        )
        self._backends = {
            name: _Backend.open(name, route, context)
            for name, route in self.settings.routes.items()
        }
        self._openapi = SpecAggregator(
            {name: backend.client for name, backend in self._backends.items()},
            {name: route.total_timeout for name, route in self.settings.routes.items()},
            cache_seconds=self.settings.openapi_cache_seconds,
            server_url=self.settings.public_url,
            version=__version__,
        )
        if self.settings.health_port is not None:
            self._health = await start_health_server(
                self.settings.host, self.settings.health_port, shared=self.settings.workers > 1
            )

    async def shutdown(self) -> None:
        """Close the health listener and every backend connection pool."""
        health, self._health = self._health, None
        if health is not None:
            health.close()
            await health.wait_closed()
        backends, self._backends = self._backends, {}
        for backend in backends.values():
            await backend.aclose()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("gateway start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- requests -------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        # Other scope types (websocket) are not served: the server runs with ws="none".

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        path: str = scope["path"]
        raw_path: bytes = scope.get("raw_path") or path.encode("utf-8")
        query: bytes = scope["query_string"]
        client = scope.get("client")
        tls = tls_extension(scope)
        chain = tls["client_cert_chain"] if tls is not None else None
        verified = bool(chain)
        identity, dn = _identify(chain[0]) if chain else (None, None)
        route = split_route(path)[0]
        if path in GATEWAY_PATHS:
            route_label = _GATEWAY_ROUTE
        elif route in self.policy.routes:
            route_label = route
        else:
            route_label = _UNKNOWN_ROUTE
        state = _Outcome()
        try:
            try:
                prepared = prepare_request_headers(
                    scope["headers"],
                    client_host=client[0] if client else None,
                    subject_dn=dn if identity is not None else None,
                    tool=identity.name if isinstance(identity, ToolIdentity) else None,
                )
            except BadRequestHeadersError as exc:
                state.request_id = new_request_id()
                await self._error(send, state, 400, str(exc), close=True)
                return
            state.request_id = prepared.request_id
            limits = self._limits
            if len(raw_path) + (len(query) + 1 if query else 0) > limits.max_url_bytes:
                await self._error(
                    send, state, 414, f"the URL is longer than {limits.max_url_bytes} bytes"
                )
                return
            if header_bytes(scope["headers"]) > limits.max_header_bytes:
                await self._error(
                    send,
                    state,
                    431,
                    f"the request headers are larger than {limits.max_header_bytes} bytes",
                    close=True,
                )
                return
            if has_encoded_slash(raw_path) or not (raw_path.isascii() and query.isascii()):
                await self._error(
                    send, state, 400, "the URL must be ASCII and its path must not contain %2F"
                )
                return
            decision = authorize(path, identity, self.policy, verified=verified)
            if not decision.allowed:
                await self._error(send, state, decision.status, decision.reason)
                return
            if route_label == _GATEWAY_ROUTE:
                await self._local(path, scope["method"], send, state)
                return
            backend = self._backends.get(route)
            if backend is None:
                await self._error(send, state, 503, "the gateway is not started")
                return
            slash = raw_path.find(b"/", 1)
            target = backend.target(raw_path[slash:] if slash != -1 else b"", query)
            await self._proxy(backend, scope, receive, send, target, prepared, state)
        finally:
            duration = time.perf_counter() - started
            self.metrics.observe(route_label, state.status, duration)
            if state.upstream_error is not None:
                self.metrics.upstream_error(route_label, state.upstream_error)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "%s %s %d",
                    scope["method"],
                    path,
                    state.status,
                    extra={
                        "access": {
                            "request_id": state.request_id.decode("ascii"),
                            "identity": identity.cn if identity is not None else None,
                            "tool": identity.name if isinstance(identity, ToolIdentity) else None,
                            "subject_dn": dn,
                            "route": route_label,
                            "method": scope["method"],
                            "path": path,
                            "status": state.status,
                            "duration_ms": round(duration * 1000, 3),
                            "upstream_error": state.upstream_error,
                            "client": client[0] if client else None,
                        }
                    },
                )

    async def _local(self, path: str, method: str, send: Send, state: _Outcome) -> None:
        if method not in ("GET", "HEAD"):
            await self._error(send, state, 405, f"{path} supports GET only", allow=b"GET, HEAD")
            return
        if path == "/healthz":
            body, content_type = b'{"status":"ok"}', _JSON
        elif path == "/metrics":
            body, content_type = self.metrics.exposition(), CONTENT_TYPE_LATEST.encode("ascii")
        else:
            if self._openapi is None:
                await self._error(send, state, 503, "the gateway is not started")
                return
            body, content_type = await self._openapi.document(), _JSON
        await self._respond(send, state, 200, body, content_type)

    async def _respond(
        self,
        send: Send,
        state: _Outcome,
        status: int,
        body: bytes,
        content_type: bytes,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        headers = [
            (b"content-type", content_type),
            (b"content-length", str(len(body)).encode("ascii")),
            (REQUEST_ID_HEADER, state.request_id),
        ]
        if extra:
            headers.extend(extra)
        state.status = status
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _error(
        self,
        send: Send,
        state: _Outcome,
        status: int,
        message: str,
        *,
        close: bool = False,
        retry_after: bool = False,
        allow: bytes | None = None,
    ) -> None:
        extra: list[tuple[bytes, bytes]] = []
        if close:  # the request body (if any) was not read: do not reuse the connection
            extra.append((b"connection", b"close"))
        if retry_after:
            extra.append((b"retry-after", self._retry_after))
        if allow is not None:
            extra.append((b"allow", allow))
        await self._respond(send, state, status, error_body(message), _JSON, extra)

    async def _refuse_body(
        self, receive: Receive, send: Send, state: _Outcome, *, unread: int | None
    ) -> None:
        """Answer 413 for a body over ``max_body_bytes``.

        Clients send the whole body before they read the response, and closing a connection
        with unread data resets it, so the client would never see the 413. The rest of the
        body (``unread`` bytes, ``None`` if unknown) is therefore read and dropped first, up to
        another ``max_body_bytes`` within :data:`DRAIN_SECONDS`; past that the connection is
        simply closed (nginx's ``lingering_close`` does the same).
        """
        limit = self._limits.max_body_bytes
        if unread is None or 0 < unread <= limit:
            await discard_body(receive, limit, DRAIN_SECONDS)
        await self._error(
            send, state, 413, f"the request body is larger than {limit} bytes", close=True
        )

    async def _proxy(
        self,
        backend: _Backend,
        scope: Scope,
        receive: Receive,
        send: Send,
        target: bytes,
        prepared: RequestHeaders,
        state: _Outcome,
    ) -> None:
        limit = self._limits.max_body_bytes
        length = prepared.content_length
        headers = prepared.forward
        headers.append((b"host", backend.host_header))
        content: bytes | AsyncIterator[bytes] = b""
        if length is not None and length > limit:
            await self._refuse_body(receive, send, state, unread=length)
            return
        if length or prepared.chunked:
            message = await receive()
            if message["type"] == "http.disconnect":
                state.status = CLIENT_CLOSED
                return
            first: bytes = message.get("body", b"")
            if len(first) > limit:
                await self._refuse_body(
                    receive, send, state, unread=None if message.get("more_body") else 0
                )
                return
            if message.get("more_body", False):
                # Sent chunked by the pool when there is no Content-Length.
                content = stream_body(first, receive, limit, length)
            else:
                content = first
                if length is None:  # chunked, but it all came at once
                    headers.append((b"content-length", str(len(first)).encode("ascii")))
        try:
            response = await backend.pool.request(
                scope["method"].encode("ascii"),
                target,
                headers,
                content,
                backend.timeouts,
                backend.total_timeout,
            )
        except BodyTooLargeError as exc:
            await self._refuse_body(receive, send, state, unread=None if exc.more_body else 0)
            return
        except ClientGoneError:
            state.status = CLIENT_CLOSED
            return
        except (UpstreamError, TimeoutError) as exc:
            failure = classify_upstream_error(exc, backend.name)
            state.upstream_error = failure.kind
            log.warning(
                "%s %s: %s (%s)",
                scope["method"],
                scope["path"],
                failure.message,
                str(exc) or type(exc).__name__,
                extra={"request_id": state.request_id.decode("ascii"), "route": backend.name},
            )
            await self._error(
                send,
                state,
                failure.status,
                failure.message,
                retry_after=failure.status == 503,
                close=not isinstance(content, bytes),  # the rest of the body may be unread
            )
            return
        try:
            await self._stream_response(backend, scope, receive, send, response, state)
        finally:
            await response.aclose()

    async def _stream_response(
        self,
        backend: _Backend,
        scope: Scope,
        receive: Receive,
        send: Send,
        response: UpstreamResponse,
        state: _Outcome,
    ) -> None:
        prepared = prepare_response_headers(
            response.headers,
            request_id=state.request_id,
            upstream=backend.upstream,
            prefix=backend.prefix,
        )
        state.status = response.status
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    "headers": prepared.headers,
                }
            )
            if scope["method"] == "HEAD" or response.status in (204, 304):
                await copy_bounded(response, send, 0)  # no body (RFC 9110 section 6.4.1)
            elif prepared.content_length is not None:
                # Bounded body: no watch for disconnects needed, the copy ends by itself.
                await copy_bounded(response, send, prepared.content_length)
            else:
                # Chunked or close-delimited (e.g. NDJSON logs?follow=true): may never end on
                # its own, so stop when the client goes away.
                pump = asyncio.ensure_future(copy_unbounded(response, send))
                watch = asyncio.ensure_future(wait_for_disconnect(receive))
                try:
                    await asyncio.wait((pump, watch), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    watch.cancel()
                    if not pump.done():
                        pump.cancel()
                        state.status = CLIENT_CLOSED
                    await asyncio.gather(pump, watch, return_exceptions=True)
                if not pump.cancelled():
                    pump.result()
        except UpstreamError as exc:
            # Headers are out: all that is left is to end the connection without completing
            # the response, so the client sees it truncated.
            failure = classify_upstream_error(exc, backend.name)
            state.upstream_error = failure.kind
            log.warning(
                "%s %s: response from the %s API cut short: %s",
                scope["method"],
                scope["path"],
                backend.name,
                str(exc) or type(exc).__name__,
                extra={"request_id": state.request_id.decode("ascii"), "route": backend.name},
            )


@dataclass(slots=True)
class _Outcome:
    """What the access log and metrics report about one request."""

    request_id: bytes = b"-"
    status: int = 0
    upstream_error: str | None = None


def create_app(settings: GatewaySettings) -> Gateway:
    """The gateway ASGI app for ``settings``; serve it with :func:`toolforge_gateway.server`."""
    return Gateway(settings)
