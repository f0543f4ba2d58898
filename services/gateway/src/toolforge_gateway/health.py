"""A plain-HTTP health listener for kubelet probes.

On the gateway's own TLS port ``/healthz`` needs a verified client certificate (401 without
one), and the kubelet's ``httpGet`` probes present none. So, when ``health_port`` is set, the
gateway also listens on
that port without TLS and answers exactly one thing: ``GET``/``HEAD /healthz`` → ``200
{"status": "OK"}``. Every other request is ``404``; a connection that sends no valid HTTP/1.x
request within :data:`READ_TIMEOUT` seconds is closed without an answer. No request is ever
forwarded to a backend, so the port reveals nothing but liveness. HTTP/1.1
framing is parsed by h11 (RFC 9112); each connection answers one request and is closed.

API: :func:`start_health_server` ``(host, port) -> asyncio.Server``; close it with
``server.close(); await server.wait_closed()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import h11

__all__ = ["start_health_server"]

#: Seconds a probe connection may take to send its request.
READ_TIMEOUT = 5.0
_MAX_REQUEST_BYTES = 8 * 1024


async def _read_request(reader: asyncio.StreamReader, conn: h11.Connection) -> h11.Request:
    while True:
        event = conn.next_event()
        if isinstance(event, h11.Request):
            return event
        if event is h11.NEED_DATA:
            data = await reader.read(4096)
            conn.receive_data(data)
            continue
        raise h11.RemoteProtocolError("connection closed before a request", error_status_hint=400)


def _answer(request: h11.Request) -> tuple[int, dict[str, str]]:
    if request.method in (b"GET", b"HEAD") and request.target.split(b"?")[0] == b"/healthz":
        return 200, {"status": "OK"}
    return 404, {"error": "only GET /healthz is served on this port"}


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_REQUEST_BYTES)
    try:
        try:
            request = await asyncio.wait_for(_read_request(reader, conn), READ_TIMEOUT)
        except (h11.RemoteProtocolError, TimeoutError):
            return
        status, payload = _answer(request)
        body = json.dumps(payload).encode()
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
        ]
        writer.write(conn.send(h11.Response(status_code=status, headers=headers)) or b"")
        if request.method != b"HEAD":
            writer.write(conn.send(h11.Data(data=body)) or b"")
        writer.write(conn.send(h11.EndOfMessage()) or b"")
        await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def start_health_server(host: str, port: int, *, shared: bool = False) -> asyncio.Server:
    """Listen on ``host:port`` (plain TCP) for health probes; returns the started server.

    ``shared``: every worker process binds the port (``SO_REUSEPORT``). Raises
    :class:`OSError` when the address cannot be bound.
    """
    return await asyncio.start_server(_handle, host, port, reuse_port=shared or None)
