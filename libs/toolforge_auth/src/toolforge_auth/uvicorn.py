"""uvicorn HTTP protocols that give the ASGI app the connection's TLS facts.

uvicorn does not implement the ASGI TLS extension, so an app cannot see the verified client
certificate. These protocol classes fill ``scope["extensions"]["tls"]`` (see
:class:`toolforge_auth.tls.TLSExtension`) for every request on a TLS connection. Select one with
``uvicorn --http toolforge_auth.uvicorn:TLSHttpToolsProtocol`` or
``uvicorn.Config(http=TLSHttpToolsProtocol)``.

The TLS facts are read once per connection, after the handshake (asyncio calls
``connection_made`` on the HTTP protocol only once the handshake is done).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from cryptography import x509
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from toolforge_auth.tls import TLSExtension

if TYPE_CHECKING:
    from uvicorn import Config

__all__ = [
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


class TLSHttpToolsProtocol(_TLSExtensionMixin, HttpToolsProtocol):
    """uvicorn's httptools protocol, plus ``scope["extensions"]["tls"]``."""


class TLSH11Protocol(_TLSExtensionMixin, H11Protocol):
    """uvicorn's h11 protocol, plus ``scope["extensions"]["tls"]``."""


def ssl_context_factory(
    context: ssl.SSLContext,
) -> Callable[[Config, Callable[[], ssl.SSLContext]], ssl.SSLContext]:
    """For ``uvicorn.Config(ssl_context_factory=...)``: serve with ``context`` as it is (for
    example one from :func:`toolforge_auth.tls.server_ssl_context`)."""

    def factory(_config: Config, _default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        return context

    return factory
