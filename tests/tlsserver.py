"""Serve an ASGI app with uvicorn over real TLS on loopback, inside the test's event loop."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn

from toolforge_auth.uvicorn import TLSHttpToolsProtocol, ssl_context_factory


@asynccontextmanager
async def serve(
    app: Any,
    context: ssl.SSLContext,
    *,
    http: type[asyncio.Protocol] | str = TLSHttpToolsProtocol,
    **config: Any,
) -> AsyncIterator[str]:
    """Run ``app`` on ``127.0.0.1:<free port>`` with ``context``; yields ``https://127.0.0.1:N``.

    Stops the server (draining open requests) when the block exits.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            http=http,
            ssl_context_factory=ssl_context_factory(context),
            log_level="warning",
            lifespan="on",
            **config,
        )
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        yield f"https://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()
