"""FastAPI dependencies for backends behind the gateway.

A backend trusts the identity header ``ssl-client-subject-dn`` only when the TLS peer is the
gateway: its client certificate chains to the backend CA and its CN is on the allow-list
(REFERENCE.md, "Identity and the gateway"). The backend serves TLS with
``client_cert="optional"`` (so health probes without a certificate get in) and these
dependencies decide per route:

- :data:`GatewayPeer`: the gateway's certificate; 401 without a client certificate, 403 for
  any other certificate.
- :data:`CurrentIdentity`: the identity from the header, trusted only with a valid
  :data:`GatewayPeer`; 401 when the header is missing, repeated or invalid.
- :data:`CurrentTool`: a tool identity equal to the route's ``{tool}`` path parameter; 403
  for a service identity or another tool.

Errors are :class:`fastapi.HTTPException`; each service renders them in its own envelope.

Usage::

    app = FastAPI()
    install_auth(app, AuthSettings())

    @app.get("/v1/tool/{tool}/jobs")
    async def list_jobs(tool: CurrentTool) -> ...: ...
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Annotated

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID
from fastapi import Depends, FastAPI, HTTPException, Path, Request, status

from toolforge_auth.identity import (
    SUBJECT_DN_HEADER,
    Identity,
    InvalidSubjectDN,
    ToolIdentity,
    parse_subject_dn,
)
from toolforge_auth.settings import AuthSettings
from toolforge_auth.tls import peer_certificate

__all__ = [
    "CurrentIdentity",
    "CurrentTool",
    "GatewayPeer",
    "GatewayVerifier",
    "current_identity",
    "current_tool",
    "install_auth",
    "require_gateway_peer",
]

_STATE_KEY = "toolforge_auth"


@dataclass
class GatewayVerifier:
    """Decides whether a TLS peer certificate is the gateway's.

    A certificate passes when it is within its validity period, is directly signed by one of
    ``cas`` and its subject CN is in ``allowed_cns``. Signature checks are cached per
    certificate (bounded); the validity period is checked every time.
    """

    cas: list[x509.Certificate]
    allowed_cns: frozenset[str]
    _signed: dict[bytes, bool] = field(default_factory=dict, repr=False)

    @classmethod
    def from_settings(cls, settings: AuthSettings) -> GatewayVerifier:
        """Load the backend CA bundle; raises :class:`OSError` or :class:`ValueError` when it
        is missing or holds no certificate."""
        cas = x509.load_pem_x509_certificates(settings.backend_ca_file.read_bytes())
        return cls(cas=cas, allowed_cns=frozenset(settings.gateway_peer_cns))

    def problem(self, cert: x509.Certificate, now: dt.datetime | None = None) -> str | None:
        """Why ``cert`` is not the gateway's, or ``None`` when it is."""
        now = now or dt.datetime.now(dt.UTC)
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            return "the client certificate is not valid at this time"
        if not self._is_signed_by_ca(cert):
            return "the client certificate is not issued by the backend CA"
        cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if len(cns) != 1 or cns[0].value not in self.allowed_cns:
            return "the client certificate is not the API gateway's"
        return None

    def _is_signed_by_ca(self, cert: x509.Certificate) -> bool:
        key = cert.fingerprint(hashes.SHA256())
        known = self._signed.get(key)
        if known is None:
            known = any(_directly_issued_by(cert, ca) for ca in self.cas)
            if len(self._signed) >= 1024:
                self._signed.clear()
            self._signed[key] = known
        return known


def _directly_issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def install_auth(app: FastAPI, settings: AuthSettings) -> GatewayVerifier:
    """Make the dependencies of this module work in ``app``: loads the backend CA from
    ``settings`` (raising :class:`OSError`/:class:`ValueError` if it cannot) and keeps the
    verifier in ``app.state``."""
    verifier = GatewayVerifier.from_settings(settings)
    setattr(app.state, _STATE_KEY, verifier)
    return verifier


def _verifier(request: Request) -> GatewayVerifier:
    verifier: GatewayVerifier | None = getattr(request.app.state, _STATE_KEY, None)
    if verifier is None:
        raise RuntimeError("toolforge_auth.install_auth(app, settings) was not called")
    return verifier


async def require_gateway_peer(request: Request) -> x509.Certificate:
    """The gateway's verified client certificate. 401 without one, 403 for another one."""
    cert = peer_certificate(request.scope)
    if cert is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "this API is reached through the API gateway (no client certificate was presented)",
        )
    problem = _verifier(request).problem(cert)
    if problem is not None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, problem)
    return cert


GatewayPeer = Annotated[x509.Certificate, Depends(require_gateway_peer)]


async def current_identity(request: Request, _peer: GatewayPeer) -> Identity:
    """The identity the gateway forwarded in ``ssl-client-subject-dn``.

    401 when the header is missing, repeated or not a valid identity DN (see
    :func:`toolforge_auth.identity.parse_subject_dn`).
    """
    values = request.headers.getlist(SUBJECT_DN_HEADER)
    if len(values) != 1:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"exactly one {SUBJECT_DN_HEADER} header is required, got {len(values)}",
        )
    try:
        return parse_subject_dn(values[0])
    except InvalidSubjectDN as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"invalid identity: {exc}") from exc


CurrentIdentity = Annotated[Identity, Depends(current_identity)]


async def current_tool(
    identity: CurrentIdentity,
    path_tool: Annotated[str, Path(alias="tool", description="The tool's name.")],
) -> ToolIdentity:
    """The calling tool, which must be the route's ``{tool}``; 403 otherwise.

    Declaring ``{tool}`` here puts it in the route's OpenAPI parameters; FastAPI refuses a
    route with this dependency but without ``{tool}`` in its path.
    """
    if not isinstance(identity, ToolIdentity):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"{identity.cn} may not act as tool {path_tool!r}"
        )
    if identity.name != path_tool:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"tool {identity.name!r} may not act on tool {path_tool!r}",
        )
    return identity


CurrentTool = Annotated[ToolIdentity, Depends(current_tool)]
