"""uvicorn HTTP protocols for the platform's servers: the ASGI TLS extension, and limits.

uvicorn does not implement the ASGI TLS extension, so an app cannot see the verified client
certificate. These protocol classes fill ``scope["extensions"]["tls"]`` (see
:class:`toolforge_auth.tls.TLSExtension`) for every request on a TLS connection. Select one with
``uvicorn --http toolforge_auth.uvicorn:TLSHttpToolsProtocol`` or
``uvicorn.Config(http=TLSHttpToolsProtocol)``; :func:`toolforge_auth.serving.uvicorn_config`
does it for every service of the suite.

The TLS facts are read once per connection, after the handshake (asyncio calls
``connection_made`` on the HTTP protocol only once the handshake is done).

:class:`TLSHttpToolsProtocol` also enforces :class:`ConnectionLimits` (issue 14, finding 1:
uvicorn's httptools protocol has no limit on the size of a request head and no time limit on
receiving it, so a client could hold a connection open for ever):

- a request head (request line and headers) larger than ``max_head_bytes`` is answered 431
  and the connection closed, as soon as that many bytes arrived without the head ending;
- a request head must arrive within ``header_timeout`` seconds of its first byte (or of the
  connection's start), a request body within ``body_timeout`` seconds of the end of its head
  (not counting time in which the server itself stopped reading); otherwise 408 (when no
  response has started) and the connection is closed. Deadlines are checked every 0.5 s, so
  they are noticed up to 0.5 s late;
- idle keep-alive connections are closed after ``keepalive_timeout`` seconds and each process
  serves at most ``max_connections`` connections at once (uvicorn's ``timeout_keep_alive`` and
  ``limit_concurrency``, set by :func:`toolforge_auth.serving.uvicorn_config`: above the limit
  requests are answered 503 and their connection closed).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import weakref
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, ClassVar

from cryptography import x509
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from toolforge_auth.tls import TLSExtension

if TYPE_CHECKING:
    from uvicorn import Config

__all__ = [
    "ConnectionLimits",
    "TLSH11Protocol",
    "TLSHttpToolsProtocol",
    "ssl_context_factory",
    "tls_extension_for",
]

# IANA TLS version numbers (RFC 8446 section 4.2.1, RFC 5246 appendix A.1).
_TLS_VERSIONS = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}
# OpenSSL cipher name -> IANA cipher suite number, filled lazily from SSLContext.get_ciphers(),
# whose ``id`` is OpenSSL's 0x0300XXXX form with the IANA number in the low 16 bits.
_CIPHER_IDS: dict[str, int] = {}


def _cipher_suite(ssl_object: ssl.SSLObject) -> int | None:
    cipher = ssl_object.cipher()
    if cipher is None:
        return None
    name = cipher[0]
    if name not in _CIPHER_IDS:
        for info in ssl_object.context.get_ciphers():
            _CIPHER_IDS.setdefault(info["name"], info["id"] & 0xFFFF)
    return _CIPHER_IDS.get(name)


def tls_extension_for(transport: asyncio.BaseTransport) -> TLSExtension | None:
    """The ASGI TLS extension for a connection, or ``None`` when it is not TLS."""
    ssl_object: ssl.SSLObject | None = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    chain: list[str] = []
    name: str | None = None
    if der:
        chain.append(ssl.DER_cert_to_PEM_cert(der))
        name = x509.load_der_x509_certificate(der).subject.rfc4514_string()
    version = ssl_object.version()
    return TLSExtension(
        server_cert=None,
        client_cert_chain=chain,
        client_cert_name=name,
        client_cert_error=None,  # a certificate that fails verification fails the handshake
        tls_version=_TLS_VERSIONS.get(version) if version else None,
        cipher_suite=_cipher_suite(ssl_object),
    )


class _TLSExtensionMixin:
    """Wraps the protocol's ASGI app, per connection, so each scope gets the TLS extension."""

    app: Callable[[Any, Any, Any], Awaitable[None]]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        tls = tls_extension_for(transport)
        if tls is None:
            return
        inner = self.app

        async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
            scope.setdefault("extensions", {})["tls"] = tls
            await inner(scope, receive, send)

        self.app = app


def error_json(message: str) -> bytes:
    """The default body of the protocol's own error answers: ``{"error": [message]}``, the
    error shape of upstream's APIs (REFERENCE.md, "The wire as production serves it")."""
    return json.dumps({"error": [message]}).encode()


@dataclass(frozen=True)
class ConnectionLimits:
    """What one client connection may take from a server (sizes in bytes, times in seconds).

    The defaults follow nginx's where nginx has one (``client_header_timeout`` and
    ``client_body_timeout`` 60 s there; shorter here, as the platform's requests are small),
    and uvicorn's keep-alive timeout (5 s). ``error_body`` makes the body of the protocol's
    own 408/431 answers (JSON).
    """

    #: Largest request head: request line plus headers, with their CRLFs. Larger: 431, close.
    max_head_bytes: int = 64 * 1024
    #: From a request's first byte (or the connection's start) to the end of its head.
    header_timeout: float = 10.0
    #: From the end of a request's head to the end of its body.
    body_timeout: float = 60.0
    #: Idle time between two requests on one connection.
    keepalive_timeout: float = 5.0
    #: Connections served at once by one process (uvicorn's ``limit_concurrency``).
    max_connections: int = 1024
    error_body: Callable[[str], bytes] = field(default=error_json, compare=False)


class TLSHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, plus ``scope["extensions"]["tls"]`` and
    :class:`ConnectionLimits` (:attr:`limits`; :meth:`with_limits` makes a subclass with
    others)."""

    limits: ClassVar[ConnectionLimits] = ConnectionLimits()

    @classmethod
    def with_limits(cls, limits: ConnectionLimits) -> type[TLSHttpToolsProtocol]:
        """A subclass enforcing ``limits`` (uvicorn builds its protocols from a class)."""
        return type(cls.__name__, (cls,), {"limits": limits, "__module__": cls.__module__})

    # Per connection: bytes of the current request head received so far, whether a head is
    # being received (as opposed to a body), the deadlines (event loop time; checked by
    # _Sweeper) and a refusal to answer.
    _head_bytes: int = 0
    _head_size: int = 0
    _in_head: bool = True
    _head_deadline: float | None = None
    _body_deadline: float | None = None
    _idle_deadline: float | None = None
    _refusal: tuple[int, str] | None = None

    _tls: TLSExtension | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        # Read once per connection, put in each request's scope by on_message_begin.
        self._tls = tls_extension_for(transport)
        # Responses go out in one write per event loop turn (head and body together).
        self.transport = _CorkedTransport(self.transport, self.loop)  # type: ignore[assignment]
        # Also bounds a connection that never sends a request.
        self._head_deadline = self.loop.time() + self.limits.header_timeout
        _Sweeper.watch(self)

    def data_received(self, data: bytes) -> None:
        self._idle_deadline = None
        if self._in_head:
            self._head_bytes += len(data)
            if self._head_deadline is None:
                self._head_deadline = self.loop.time() + self.limits.header_timeout
        super().data_received(data)
        # Still no end of the head: refuse as soon as it is too large, without waiting for it.
        if self._in_head and self._head_bytes > self.limits.max_head_bytes:
            self._refuse(431, self._too_large())

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._tls is not None:
            scope: dict[str, Any] = self.scope  # type: ignore[assignment]
            scope["extensions"] = {"tls": self._tls}
        self._head_size = 0

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._head_size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._head_size += len(name) + len(value) + 4

    def on_headers_complete(self) -> None:
        if self._head_size > self.limits.max_head_bytes:
            # Raised through httptools, which makes uvicorn call send_400_response().
            self._refusal = (431, self._too_large())
            raise _RefusedError
        self._in_head = False
        self._head_bytes = 0
        self._head_deadline = None
        self._body_deadline = self.loop.time() + self.limits.body_timeout
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        self._body_deadline = None
        super().on_message_complete()

    def on_response_complete(self) -> None:
        # uvicorn's (0.54), except that the keep-alive timeout is a deadline for the sweeper
        # instead of a timer per response.
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._unset_keepalive_if_required()
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self._idle_deadline = self.loop.time() + self.timeout_keep_alive

    def check_deadlines(self, now: float) -> None:
        """Refuse the request whose head or body is overdue at ``now`` (called by the
        :class:`_Sweeper`)."""
        if self._idle_deadline is not None and now >= self._idle_deadline:
            self._idle_deadline = None
            if not self.transport.is_closing():
                self.transport.close()
        elif self._head_deadline is not None and now >= self._head_deadline:
            self._head_deadline = None
            if self._head_bytes:
                timeout = self.limits.header_timeout
                self._refuse(408, f"the request headers took longer than {timeout} s")
            elif not self.transport.is_closing():
                self.transport.close()  # nothing of a request arrived: nothing to answer
        elif self._body_deadline is not None and now >= self._body_deadline:
            if self.flow.read_paused:
                # The server stopped reading (the app is not consuming the body): not the
                # client's fault, so its clock starts again.
                self._body_deadline = now + self.limits.body_timeout
                return
            self._body_deadline = None
            timeout = self.limits.body_timeout
            self._refuse(408, f"the request body took longer than {timeout} s")

    def send_400_response(self, msg: str) -> None:
        refusal, self._refusal = self._refusal, None
        if refusal is not None:
            self._refuse(*refusal)
        else:
            self._refuse(400, msg)

    def _too_large(self) -> str:
        return f"the request line and headers are larger than {self.limits.max_head_bytes} bytes"

    def _refuse(self, status: int, message: str) -> None:
        """Answer ``status`` (when no response is under way on this connection) and close."""
        self._head_deadline = self._body_deadline = self._idle_deadline = None
        self._in_head = False
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # The app is still at work on this connection: it must write nothing more.
            cycle.disconnected = True
            cycle.message_event.set()
            if cycle.response_started:
                self.transport.close()
                return
        body = self.limits.error_body(message)
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s"
            % (status, HTTPStatus(status).phrase.encode(), len(body), body)
        )
        self.transport.close()


class _RefusedError(Exception):
    """Stops httptools' parsing of a request that :class:`TLSHttpToolsProtocol` refuses."""


class _Sweeper:
    """Checks the deadlines of a server's connections every :attr:`INTERVAL` seconds.

    One periodic check per server instead of a timer per request (a uvloop timer costs about
    2.5 µs to arm and cancel, twice per request); a deadline is thus noticed up to
    ``INTERVAL`` late. Runs while the server has connections.
    """

    INTERVAL: ClassVar[float] = 0.5
    _running: ClassVar[weakref.WeakKeyDictionary[Any, asyncio.TimerHandle]] = (
        weakref.WeakKeyDictionary()
    )

    @classmethod
    def watch(cls, protocol: TLSHttpToolsProtocol) -> None:
        """Make sure the connections of ``protocol``'s server are being checked."""
        state = protocol.server_state
        if state not in cls._running:
            cls._running[state] = protocol.loop.call_later(
                cls.INTERVAL, cls._sweep, state, protocol.loop
            )

    @classmethod
    def _sweep(cls, state: Any, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for connection in list(state.connections):
            if isinstance(connection, TLSHttpToolsProtocol):
                connection.check_deadlines(now)
        if state.connections:
            cls._running[state] = loop.call_later(cls.INTERVAL, cls._sweep, state, loop)
        else:
            del cls._running[state]


class _CorkedTransport:
    """A transport whose writes are collected and sent once per event loop turn.

    uvicorn writes a response's head as soon as the app starts it and the body with the next
    message; over TLS each write is a TLS record and a ``send()``. Collected, a small
    response goes out as one. Everything but writing and closing is the real transport's.
    """

    __slots__ = ("_buffer", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._buffer: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._buffer:
            self._loop.call_soon(self._flush)
        self._buffer.append(bytes(data))

    def writelines(self, chunks: Iterable[bytes]) -> None:
        for chunk in chunks:
            self.write(chunk)

    def _flush(self) -> None:
        if self._buffer:
            data = b"".join(self._buffer) if len(self._buffer) > 1 else self._buffer[0]
            self._buffer.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._buffer.clear()
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class TLSH11Protocol(_TLSExtensionMixin, H11Protocol):
    """uvicorn's h11 protocol, plus ``scope["extensions"]["tls"]`` (without
    :class:`ConnectionLimits`' head size and time limits: serve with
    :class:`TLSHttpToolsProtocol`)."""


def ssl_context_factory(
    context: ssl.SSLContext,
) -> Callable[[Config, Callable[[], ssl.SSLContext]], ssl.SSLContext]:
    """For ``uvicorn.Config(ssl_context_factory=...)``: serve with ``context`` as it is (for
    example one from :func:`toolforge_auth.tls.server_ssl_context`)."""

    def factory(_config: Config, _default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        return context

    return factory
