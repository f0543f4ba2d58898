"""Connections from the gateway to the backends: pooled keep-alive HTTP/1.1 over mTLS.

A small HTTP/1.1 client on asyncio protocols, made for the proxy path: responses are parsed by
httptools (llhttp, the C parser of Node.js, which also frames the body: ``Content-Length``,
chunked or delimited by the close), TLS runs in the event loop's native TLS transport, and a
request is written as one buffer. It replaced httpcore on this path, which cost about 200 µs of
CPU per request against about 15 µs for this client (measured with 32 concurrent requests on
the benchmark's nginx backend; see ``docs/benchmarks.md``). The gateway's own requests (the
OpenAPI documents) still use httpx.

Why not a library: aiohttp's client (the same C parser, llhttp) was put in its place with
every gateway test passing, and cost about 58 µs per request on its own against about 17 µs
for this client (``bench/upstream_clients.py``); the whole gateway then served 28-29 % of
nginx's keep-alive throughput at 32 connections instead of 53-61 %, missing issue 20's
targets. The numbers, and the other clients tried, are in ``services/gateway/README.md``
("Why the gateway has its own upstream client").

- :class:`UpstreamPool`: one per route; at most ``max_connections`` connections, of which
  ``max_keepalive_connections`` are kept while idle, for ``keepalive_expiry`` seconds. An idle
  connection the backend closed is noticed (``connection_lost``) and never reused. A request
  that finds every connection busy waits up to the ``pool`` timeout for one.
- :class:`UpstreamResponse`: status, raw headers, the body as an async iterator of chunks
  (decoded from chunked framing, content-encoding untouched); reading stops when more than
  :data:`HIGH_WATER` bytes wait unread, so a slow client slows the backend down.
- Errors are :class:`UpstreamError` subclasses; :func:`classify_upstream_error` maps them to
  the answer (both in :mod:`toolforge_gateway.upstream_errors`, re-exported here).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

import httptools

from toolforge_gateway.upstream_errors import (
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
    UpstreamFailure,
    WriteError,
    WriteTimeoutError,
    classify_upstream_error,
)

__all__ = [
    "HIGH_WATER",
    "SWEEP_INTERVAL",
    "ConnectError",
    "ConnectTimeoutError",
    "PoolTimeoutError",
    "ProtocolError",
    "ReadError",
    "ReadTimeoutError",
    "TLSError",
    "Timeouts",
    "TotalTimeoutError",
    "UpstreamError",
    "UpstreamFailure",
    "UpstreamPool",
    "UpstreamResponse",
    "WriteError",
    "WriteTimeoutError",
    "classify_upstream_error",
]

#: Unread response bytes above which the gateway stops reading from the backend.
HIGH_WATER = 256 * 1024
#: Seconds between two checks of the read and total timeouts of the requests waiting for a
#: backend (one periodic check per pool instead of a timer per request): a timeout is noticed
#: up to this much late.
SWEEP_INTERVAL = 0.1
_LOW_WATER = HIGH_WATER // 4


class _Connection(asyncio.Protocol):
    """One keep-alive connection to a backend, one exchange at a time."""

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.idle = False
        self.idle_since = 0.0
        # The exchange under way.
        self.head: asyncio.Future[tuple[int, list[tuple[bytes, bytes]]]] | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.complete = False
        self.keep_alive = False
        self.no_body = False
        self.framed = True
        self.interim = False
        self.error: UpstreamError | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.activity = 0.0
        self.read_timeout: float | None = None
        self.deadline: float | None = None
        self.write_paused = False
        self.read_paused = False
        self.drained: asyncio.Future[None] | None = None

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.activity = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ProtocolError(f"invalid HTTP response: {exc}"))
            self.close()
        except httptools.HttpParserUpgrade:
            # 101 Switching Protocols: the gateway does not relay upgraded connections.
            self._fail(ProtocolError("the backend switched protocols"))
            self.close()

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.idle:
            self.pool._forget(self)
        elif self.head is not None and not self.complete:
            head_done = self.head.done()
            if head_done and not self.framed:
                self.complete = True  # the body was delimited by the close (RFC 9112 6.3)
                self._wake()
            else:
                self._fail(ReadError(f"the backend closed the connection ({exc or 'EOF'})"))
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    # -- httptools callbacks ---------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self.interim = True  # 1xx: the real response follows
            self.headers = []
            return
        head = self.head
        if head is None or head.done():
            self._fail(ProtocolError("a response nobody asked for"))
            self.close()
            return
        if status == 101:
            return  # refused in data_received once httptools reports the upgrade
        self.framed = status in (204, 304) or any(
            name.lower() in (b"content-length", b"transfer-encoding") for name, _ in self.headers
        )
        if self.no_body:
            self.complete = True  # HEAD: no body whatever the headers say
        head.set_result((status, self.headers))
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > HIGH_WATER and not self.read_paused and self.transport is not None:
            self.read_paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()  # llhttp forgets it afterwards
        self._wake()

    # -- the exchange ----------------------------------------------------------------------

    def start(self, method: bytes) -> asyncio.Future[tuple[int, list[tuple[bytes, bytes]]]]:
        self.head = self.loop.create_future()
        self.headers = []
        self.chunks.clear()
        self.buffered = 0
        self.complete = False
        self.keep_alive = False
        self.no_body = method == b"HEAD"
        self.framed = True
        self.error = None
        self.activity = self.loop.time()
        return self.head

    def reusable(self) -> bool:
        return (
            self.complete
            and not self.closed
            and not self.no_body
            and self.framed
            and self.error is None
            and self.keep_alive
        )

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _fail(self, error: UpstreamError) -> None:
        if self.error is None:
            self.error = error
        if self.head is not None and not self.head.done():
            self.head.set_exception(error)
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, timeout: float | None) -> None:
        """Wait until something happens (data, the end, an error); raises
        :class:`ReadTimeoutError` after ``timeout`` seconds without any data from the
        backend (checked by the pool's sweep)."""
        waiter = self.waiter = self.loop.create_future()
        self.activity = max(self.activity, self.loop.time())
        self.read_timeout = timeout
        self.pool._watch(self)
        try:
            await waiter
        finally:
            self.waiter = None
            self.pool._unwatch(self)

    async def wait_head(
        self, timeout: float | None, deadline: float | None
    ) -> tuple[int, list[tuple[bytes, bytes]]]:
        """The response status and headers; raises :class:`ReadTimeoutError` after
        ``timeout`` seconds of silence, :class:`TotalTimeoutError` at ``deadline`` (loop time)."""
        head = self.head
        if head is None:
            raise RuntimeError("no request was sent")
        if not head.done():
            self.activity = max(self.activity, self.loop.time())
            self.read_timeout = timeout
            self.deadline = deadline
            self.pool._watch(self)
            try:
                await head
            finally:
                self.deadline = None
                self.pool._unwatch(self)
        return head.result()

    def check_timeouts(self, now: float) -> None:
        """Fail the wait under way if its read or total timeout has passed at ``now``."""
        target: asyncio.Future[Any] | None = self.waiter
        if target is None or target.done():
            target = self.head
        if target is None or target.done():
            return
        if self.deadline is not None and now >= self.deadline:
            target.set_exception(TotalTimeoutError("no response headers in time"))
        elif self.read_timeout is not None and now - self.activity >= self.read_timeout:
            target.set_exception(
                ReadTimeoutError(f"no data from the backend for {self.read_timeout} s")
            )

    async def drain(self, timeout: float | None) -> None:
        """Wait until the transport takes more (raises :class:`WriteTimeoutError`/`WriteError`)."""
        if self.closed:
            raise WriteError("the backend closed the connection")
        if not self.write_paused:
            return
        self.drained = self.loop.create_future()
        try:
            async with asyncio.timeout(timeout):
                await self.drained
        except TimeoutError as exc:
            if isinstance(exc, TotalTimeoutError):
                raise
            raise WriteTimeoutError(f"the backend took nothing for {timeout} s") from exc
        finally:
            self.drained = None
        if self.closed:
            raise WriteError("the backend closed the connection")

    def write(self, data: bytes) -> None:
        if self.closed or self.transport is None or self.transport.is_closing():
            raise WriteError("the backend closed the connection")
        self.transport.write(data)


class UpstreamPool:
    """Keep-alive mTLS connections to one backend at ``host:port``.

    ``server_hostname`` is checked against the backend's certificate; ``max_connections``
    bounds the open connections, ``max_keepalive_connections`` the idle ones kept for
    ``keepalive_expiry`` seconds. Must be created and used in one running event loop.
    """

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
        self.loop = asyncio.get_running_loop()
        self._context = context
        self._host = host
        self._port = port
        self._max = max_connections
        self._max_idle = max_keepalive_connections
        self._expiry = keepalive_expiry
        self._idle: list[_Connection] = []
        self._open = 0
        self._waiters: deque[asyncio.Future[_Connection | None]] = deque()
        self._closed = False
        self._waiting: set[_Connection] = set()
        self._sweep_handle: asyncio.TimerHandle | None = None

    async def request(
        self,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        content: bytes | AsyncIterable[bytes],
        timeouts: Timeouts,
        total_timeout: float | None = None,
    ) -> UpstreamResponse:
        """Send a request (``target``: path and query, raw; ``headers`` include ``Host`` and,
        for a body of known length, ``Content-Length``; a streamed ``content`` without one is
        sent chunked); returns once the response headers are in, which must happen within
        ``total_timeout`` seconds (:class:`TotalTimeoutError`). The caller must
        :meth:`UpstreamResponse.aclose` the response. Raises :class:`UpstreamError`, and
        whatever iterating ``content`` raises."""
        deadline = None if total_timeout is None else self.loop.time() + total_timeout
        conn = await self._acquire(timeouts, deadline)
        head_future = conn.start(method)
        parts = [method, b" ", target, b" HTTP/1.1\r\n"]
        for name, value in headers:
            parts += (name, b": ", value, b"\r\n")
        try:
            if isinstance(content, bytes):
                parts += (b"\r\n", content)
                conn.write(b"".join(parts))
                if conn.write_paused:
                    async with _until(deadline):
                        await conn.drain(timeouts.write)
            else:
                async with _until(deadline):
                    await self._send_stream(conn, parts, headers, content, timeouts)
            status, response_headers = await conn.wait_head(timeouts.read, deadline)
        except WriteError:
            # The backend may have answered (and closed) before taking the whole body.
            if not head_future.done() or head_future.exception() is not None:
                self._release(conn, reuse=False)
                raise
            status, response_headers = head_future.result()
        except BaseException:
            self._release(conn, reuse=False)
            raise
        return UpstreamResponse(self, conn, status, response_headers, timeouts.read)

    @staticmethod
    async def _send_stream(
        conn: _Connection,
        parts: list[bytes],
        headers: list[tuple[bytes, bytes]],
        content: AsyncIterable[bytes],
        timeouts: Timeouts,
    ) -> None:
        chunked = not any(name == b"content-length" for name, _ in headers)
        if chunked:
            parts.append(b"transfer-encoding: chunked\r\n")
        parts.append(b"\r\n")
        conn.write(b"".join(parts))
        async for chunk in content:
            if chunk:
                conn.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
                await conn.drain(timeouts.write)
        if chunked:
            conn.write(b"0\r\n\r\n")
        await conn.drain(timeouts.write)

    def _watch(self, conn: _Connection) -> None:
        self._waiting.add(conn)
        if self._sweep_handle is None:
            self._sweep_handle = self.loop.call_later(SWEEP_INTERVAL, self._sweep)

    def _unwatch(self, conn: _Connection) -> None:
        self._waiting.discard(conn)

    def _sweep(self) -> None:
        now = self.loop.time()
        for conn in list(self._waiting):
            conn.check_timeouts(now)
        self._sweep_handle = (
            self.loop.call_later(SWEEP_INTERVAL, self._sweep) if self._waiting else None
        )

    async def _acquire(self, timeouts: Timeouts, deadline: float | None) -> _Connection:
        now = self.loop.time()
        idle = self._idle
        while idle:
            conn = idle.pop()
            conn.idle = False
            if conn.closed or now - conn.idle_since > self._expiry:
                conn.close()
                self._open -= 1
                continue
            return conn
        if self._open >= self._max:
            waiter: asyncio.Future[_Connection | None] = self.loop.create_future()
            self._waiters.append(waiter)
            try:
                async with _until(deadline, timeouts.pool):
                    handed = await waiter
            except BaseException as exc:  # a timeout, or the request was cancelled
                if waiter.done() and not waiter.cancelled():
                    late = waiter.result()  # handed over just as the wait ended
                    if late is not None:
                        self._release(late, reuse=True)
                    else:
                        self._open -= 1
                        self._wake_waiter()
                elif waiter in self._waiters:
                    self._waiters.remove(waiter)
                if isinstance(exc, TimeoutError) and not isinstance(exc, TotalTimeoutError):
                    raise PoolTimeoutError(f"no free connection within {timeouts.pool} s") from exc
                raise
            if handed is not None:
                return handed
            # A slot was freed and reserved for this request (counted in self._open).
        else:
            self._open += 1
        try:
            async with _until(deadline):
                return await self._connect(timeouts.connect)
        except BaseException:
            self._open -= 1
            self._wake_waiter()
            raise

    async def _connect(self, timeout: float) -> _Connection:
        try:
            async with asyncio.timeout(timeout):
                _, conn = await self.loop.create_connection(
                    lambda: _Connection(self),
                    self._host,
                    self._port,
                    ssl=self._context,
                    server_hostname=self._host,
                    ssl_handshake_timeout=timeout,
                )
        except TimeoutError as exc:
            if isinstance(exc, TotalTimeoutError):
                raise
            raise ConnectTimeoutError(f"connecting to {self._host}:{self._port} timed out") from exc
        except ssl.SSLError as exc:
            raise TLSError(str(exc)) from exc
        except OSError as exc:
            raise ConnectError(str(exc) or type(exc).__name__) from exc
        return conn

    def _release(self, conn: _Connection, *, reuse: bool) -> None:
        if reuse and conn.reusable() and not self._closed:
            while self._waiters:
                waiter = self._waiters.popleft()
                if not waiter.done():
                    waiter.set_result(conn)
                    return
            if len(self._idle) < self._max_idle:
                conn.idle = True
                conn.idle_since = self.loop.time()
                self._idle.append(conn)
                return
        conn.close()
        self._open -= 1
        self._wake_waiter()

    def _wake_waiter(self) -> None:
        """Let one waiting request open a connection in a slot that just became free."""
        while self._waiters and self._open < self._max:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._open += 1  # reserved for the woken request
                waiter.set_result(None)
                return

    def _forget(self, conn: _Connection) -> None:
        """An idle connection was closed (by the backend, or it expired)."""
        conn.idle = False
        if conn in self._idle:
            self._idle.remove(conn)
            self._open -= 1
            self._wake_waiter()

    async def aclose(self) -> None:
        """Close every idle connection; connections in use close when released."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.idle = False
            conn.close()
            self._open -= 1


@contextlib.asynccontextmanager
async def _until(deadline: float | None, within: float | None = None) -> AsyncIterator[None]:
    """Raise :class:`TotalTimeoutError` at ``deadline`` (loop time), or :class:`TimeoutError`
    after ``within`` seconds if that comes first; for the less common waits of a request."""
    loop = asyncio.get_running_loop()
    limit = None if within is None else loop.time() + within
    if deadline is not None and (limit is None or deadline <= limit):
        try:
            async with asyncio.timeout_at(deadline):
                yield
        except TimeoutError as exc:
            if isinstance(exc, TotalTimeoutError):
                raise
            raise TotalTimeoutError("no response headers in time") from exc
    else:
        async with asyncio.timeout_at(limit):
            yield


class UpstreamResponse:
    """A backend's response: ``status``, ``headers`` (raw, as sent) and the body as an async
    iterator of chunks. Iterating raises :class:`ReadTimeoutError`/:class:`ReadError`/
    :class:`ProtocolError`."""

    __slots__ = ("_conn", "_pool", "_read_timeout", "_released", "headers", "status")

    def __init__(
        self,
        pool: UpstreamPool,
        conn: _Connection,
        status: int,
        headers: list[tuple[bytes, bytes]],
        read_timeout: float | None,
    ) -> None:
        self._pool = pool
        self._conn = conn
        self._read_timeout = read_timeout
        self._released = False
        self.status = status
        self.headers = headers

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        conn = self._conn
        while True:
            if conn.chunks:
                chunk = conn.chunks.popleft()
                conn.buffered -= len(chunk)
                if conn.read_paused and conn.buffered < _LOW_WATER and conn.transport is not None:
                    conn.read_paused = False
                    conn.transport.resume_reading()
                return chunk
            if conn.error is not None:
                raise conn.error
            if conn.complete:
                raise StopAsyncIteration
            await conn.wait(self._read_timeout)

    async def aclose(self) -> None:
        """Release the connection: back to the pool when the body was read to its end,
        closed otherwise (e.g. the client left a stream)."""
        if not self._released:
            self._released = True
            self._pool._release(self._conn, reuse=True)
