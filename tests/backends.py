"""A small backend behind the gateway, built like the jobs and builds APIs (for TLS tests)."""

from __future__ import annotations

import ssl
from pathlib import Path

from fastapi import FastAPI

from certs import AuthPKI
from toolforge_auth.dependencies import CurrentIdentity, CurrentTool, GatewayPeer, install_auth
from toolforge_auth.settings import AuthSettings
from toolforge_auth.tls import server_ssl_context


def backend_app(pki: AuthPKI) -> FastAPI:
    app = FastAPI()
    install_auth(app, AuthSettings(backend_ca_file=pki.path("backend-ca.crt")))

    @app.get("/v1/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/peer")
    async def peer(cert: GatewayPeer) -> dict[str, str]:
        return {"peer": cert.subject.rfc4514_string()}

    @app.get("/v1/whoami")
    async def whoami(identity: CurrentIdentity) -> dict[str, str]:
        return {"cn": identity.cn}

    @app.get("/v1/tool/{tool}/whoami")
    async def tool_whoami(tool: CurrentTool) -> dict[str, str]:
        return {"tool": tool.name}

    return app


def backend_context(pki: AuthPKI, *extra_cas: Path) -> ssl.SSLContext:
    return server_ssl_context(
        certfile=pki.path("jobs-api-server.crt"),
        keyfile=pki.path("jobs-api-server.key"),
        client_ca_files=[pki.path("backend-ca.crt"), *extra_cas],
        client_cert="optional",
    )
