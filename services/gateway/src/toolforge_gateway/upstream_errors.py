"""The failures of the gateway's exchanges with the backends (:mod:`toolforge_gateway.upstream`),
the time limits that cause some of them, and how each is answered
(:func:`classify_upstream_error`, pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

__all__ = [
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
    "WriteError",
    "WriteTimeoutError",
    "classify_upstream_error",
]


class UpstreamError(Exception):
    """A failure talking to a backend; ``kind`` names it in metrics and logs."""

    kind: ClassVar[str] = "protocol"


class ConnectError(UpstreamError):
    """The TCP connection could not be made (refused, unreachable, reset)."""

    kind = "connect"


class TLSError(ConnectError):
    """The TLS handshake with the backend failed (e.g. a certificate from another CA)."""

    kind = "tls"


class ConnectTimeoutError(UpstreamError):
    """TCP connect plus TLS handshake took longer than the ``connect`` timeout."""

    kind = "connect_timeout"


class PoolTimeoutError(UpstreamError):
    """No connection became free within the ``pool`` timeout."""

    kind = "pool_timeout"


class ReadTimeoutError(UpstreamError):
    """The backend sent nothing for longer than the ``read`` timeout."""

    kind = "read_timeout"


class TotalTimeoutError(UpstreamError, TimeoutError):
    """The response headers did not arrive within the route's total timeout."""

    kind = "total_timeout"


class WriteTimeoutError(UpstreamError):
    """The backend did not take the request for longer than the ``write`` timeout."""

    kind = "write_timeout"


class ReadError(UpstreamError):
    """The connection broke while a response was expected or being read."""

    kind = "read"


class WriteError(UpstreamError):
    """The connection broke while the request was being sent."""

    kind = "write"


class ProtocolError(UpstreamError):
    """The backend sent something that is not a valid HTTP/1.1 response."""

    kind = "protocol"


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds: ``connect`` (TCP + TLS), ``read`` (longest silence of the backend, ``None``
    for none), ``write`` (longest wait for the backend to take request bytes, ``None`` for
    none), ``pool`` (wait for a free connection)."""

    connect: float
    read: float | None
    write: float | None
    pool: float


@dataclass(frozen=True, slots=True)
class UpstreamFailure:
    """How a failure talking to a backend is answered: HTTP status, metric kind, message."""

    status: int
    kind: str
    message: str


def classify_upstream_error(exc: BaseException, route: str) -> UpstreamFailure:
    """Map an exception from the backend exchange to the answer (pure).

    Connection refused or unreachable -> 503 (sent with Retry-After); no free pooled
    connection -> 503; a timeout (connect, read, write, or the ``asyncio`` total one) -> 504; a
    TLS failure or any other transport or protocol error -> 502.
    """
    backend = f"the {route} API"
    if isinstance(exc, TimeoutError):
        return UpstreamFailure(504, "total_timeout", f"{backend} did not answer in time")
    if isinstance(exc, PoolTimeoutError):
        return UpstreamFailure(503, exc.kind, f"{backend} has no free connection")
    if isinstance(exc, ConnectTimeoutError):
        return UpstreamFailure(504, exc.kind, f"connecting to {backend} timed out")
    if isinstance(exc, ReadTimeoutError):
        return UpstreamFailure(504, exc.kind, f"{backend} did not answer in time")
    if isinstance(exc, WriteTimeoutError):
        return UpstreamFailure(504, exc.kind, f"sending the request to {backend} timed out")
    if isinstance(exc, TLSError):
        return UpstreamFailure(502, exc.kind, f"TLS with {backend} failed")
    if isinstance(exc, ConnectError):
        return UpstreamFailure(503, exc.kind, f"{backend} is not available")
    if isinstance(exc, ReadError):
        return UpstreamFailure(502, exc.kind, f"reading the response of {backend} failed")
    if isinstance(exc, WriteError):
        return UpstreamFailure(502, exc.kind, f"sending the request to {backend} failed")
    return UpstreamFailure(502, "protocol", f"{backend} sent an invalid response")
