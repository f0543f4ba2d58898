"""The gateway's backend connections through aiohttp's client (evaluated against ``upstream.py``).

Not part of the gateway: ``bench/make_aiohttp_variant.py`` builds a copy of the gateway that
uses it, for ``bench/gateway.py --variant`` and the gateway tests; why the gateway keeps its own
client is in ``services/gateway/README.md``.

The same interface as :class:`toolforge_gateway.upstream.UpstreamPool` (``request`` ->
:class:`UpstreamResponse`, the same :class:`~toolforge_gateway.upstream.UpstreamError`
subclasses), on an ``aiohttp.ClientSession`` per route: aiohttp's C HTTP parser (llhttp),
its ``TCPConnector`` keep-alive pool over the event loop's TLS, request bodies streamed from an
async iterator (chunked without a Content-Length), response bodies read as they arrive.

What aiohttp is told, so that it relays instead of acting as a browser: no cookie jar (a
backend's ``Set-Cookie`` must never reach another client's request), no decompression, no
redirects, no default ``Accept``/``Accept-Encoding``/``User-Agent``/``Content-Type`` headers,
no environment proxies. The pool limit is a semaphore here rather than the connector's
``limit``, because aiohttp's ``connect`` timeout covers the wait for a pooled connection and
the connection itself together, and the gateway answers the first 503 and the second 504.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterable, AsyncIterator

import aiohttp
from yarl import URL

from toolforge_gateway.upstream import (
    HIGH_WATER,
    ConnectError,
    ConnectTimeoutError,
    PoolTimeoutError,
    ProtocolError,
    ReadError,
    ReadTimeoutError,
    Timeouts,
    TLSError,
    TotalTimeoutError,
    UpstreamError,
    WriteError,
)

__all__ = ["UpstreamPool", "UpstreamResponse"]

_SKIP = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")
#: Longest response header line accepted from a backend (aiohttp's default is 8190).
_MAX_FIELD = 64 * 1024


def _mapped(exc: BaseException) -> BaseException:
    """The gateway's error for an aiohttp exception (or what the request body raised)."""
    cause = exc.__cause__
    if (
        isinstance(exc, aiohttp.ClientConnectionError)
        and cause is not None
        and not isinstance(cause, (OSError, aiohttp.ClientError, asyncio.TimeoutError))
    ):
        return cause  # raised by the request body's iterator (413, client gone)
    if isinstance(exc, (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError)):
        return TLSError(str(exc))
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return ConnectTimeoutError(str(exc) or "connecting timed out")
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return ReadTimeoutError(str(exc) or "no data from the backend in time")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ConnectError(str(exc))
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError)):
        return ReadError(str(exc) or type(exc).__name__)
    if isinstance(exc, aiohttp.ClientOSError):
        return WriteError(str(exc) or type(exc).__name__)
    if isinstance(exc, aiohttp.ClientConnectionError):
        return ReadError(str(exc) or type(exc).__name__)
    return ProtocolError(str(exc) or type(exc).__name__)


class UpstreamPool:
    """Keep-alive mTLS connections to one backend at ``host:port`` through aiohttp (same
    arguments as :class:`toolforge_gateway.upstream.UpstreamPool`; aiohttp keeps every idle
    connection up to ``max_connections``, so ``max_keepalive_connections`` is not used)."""

    def __init__(
        self,
        context: ssl.SSLContext,
        *,
        host: str,
        port: int,
        max_connections: int,
        max_keepalive_connections: int,
        keepalive_expiry: float,
    ) -> None:
        self._origin = f"https://{host}:{port}"
        self._slots = asyncio.Semaphore(max_connections)
        self._session: aiohttp.ClientSession | None = None
        self._context = context
        self._expiry = keepalive_expiry
        self._max = max_connections
        del max_keepalive_connections

    def _open(self, timeouts: Timeouts) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            ssl=self._context,
            limit=0,
            limit_per_host=0,
            keepalive_timeout=self._expiry,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            trust_env=False,
            skip_auto_headers=_SKIP,
            requote_redirect_url=False,
            timeout=aiohttp.ClientTimeout(
                total=None, connect=None, sock_connect=timeouts.connect, sock_read=timeouts.read
            ),
            read_bufsize=HIGH_WATER // 2,  # reading pauses at twice this
            max_field_size=_MAX_FIELD,
            max_line_size=_MAX_FIELD,
        )
        return self._session

    async def request(
        self,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        content: bytes | AsyncIterable[bytes],
        timeouts: Timeouts,
        total_timeout: float | None = None,
    ) -> UpstreamResponse:
        """As :meth:`toolforge_gateway.upstream.UpstreamPool.request`."""
        session = self._session or self._open(timeouts)
        loop = asyncio.get_running_loop()
        deadline = None if total_timeout is None else loop.time() + total_timeout
        try:
            async with asyncio.timeout(timeouts.pool):
                await self._slots.acquire()
        except TimeoutError as exc:
            raise PoolTimeoutError(f"no free connection within {timeouts.pool} s") from exc
        try:
            data: bytes | AsyncIterable[bytes] | None = content
            if content == b"" and not any(name == b"content-length" for name, _ in headers):
                data = None
            str_headers = [
                (name.decode("latin-1"), value.decode("latin-1")) for name, value in headers
            ]
            url = URL(self._origin + target.decode("ascii"), encoded=True)
            try:
                async with asyncio.timeout_at(deadline):
                    try:
                        response = await session.request(
                            method.decode("ascii"),
                            url,
                            headers=str_headers,
                            data=data,
                            allow_redirects=False,
                        )
                    except aiohttp.ClientError as exc:
                        raise _mapped(exc) from exc
            except TimeoutError as exc:
                if isinstance(exc, (UpstreamError, aiohttp.ClientError)):
                    raise
                raise TotalTimeoutError("no response headers in time") from exc
            if response.status == 101:
                response.close()
                raise ProtocolError("the backend switched protocols")
        except BaseException:
            self._slots.release()
            raise
        return UpstreamResponse(self, response)

    async def aclose(self) -> None:
        """Close every connection."""
        if self._session is not None:
            await self._session.close()


class UpstreamResponse:
    """A backend's response: ``status``, ``headers`` (raw, as sent) and the body as an async
    iterator of chunks (raises the gateway's :class:`UpstreamError` subclasses)."""

    __slots__ = ("_body", "_pool", "_released", "_response", "headers", "status")

    def __init__(self, pool: UpstreamPool, response: aiohttp.ClientResponse) -> None:
        self._pool = pool
        self._response = response
        self._released = False
        self._body = response.content.iter_any()
        self.status = response.status
        self.headers = list(response.raw_headers)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self._body.__anext__()
        except aiohttp.ClientError as exc:
            raise _mapped(exc) from exc

    async def aclose(self) -> None:
        """Back to the pool when the body was read to its end, closed otherwise."""
        if not self._released:
            self._released = True
            response = self._response
            if response.content.is_eof() and response.content.exception() is None:
                response.release()
            else:
                response.close()
            self._pool._slots.release()
