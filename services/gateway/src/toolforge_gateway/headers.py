"""Header hygiene between the client and the backends: pure functions over ASGI header lists.

Towards the backend (:func:`prepare_request_headers`):

- dropped: every client-sent ``ssl-client-subject-dn`` and ``x-toolforge-*`` (only the
  gateway may assert an identity), hop-by-hop headers (RFC 9110 section 7.6.1: ``Connection``
  and every header it names, ``Keep-Alive``, ``Proxy-*``, ``TE``, ``Trailer``,
  ``Transfer-Encoding``, ``Upgrade``), ``Host`` (the backend's host is set by the HTTP client)
  and ``Expect`` (``100-continue`` is answered by the gateway's server);
- set: ``ssl-client-subject-dn`` (the verified subject DN, when there is one),
  ``x-toolforge-tool`` (the tool's name, for a tool's certificate; REFERENCE.md, "The wire as
  production serves it"), ``x-request-id``, ``x-forwarded-for`` (client address appended),
  ``x-forwarded-proto: https`` and ``x-forwarded-host`` (the client's ``Host``).

Towards the client (:func:`prepare_response_headers`): hop-by-hop headers dropped,
``x-request-id`` set, ``Location`` pointing into the backend rewritten to the gateway path.
Header names in ASGI are lower-case bytes (ASGI HTTP spec), as they are here.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from toolforge_auth.identity import SUBJECT_DN_HEADER

__all__ = [
    "HOP_BY_HOP",
    "REQUEST_ID_HEADER",
    "REQUEST_ID_RE",
    "TOOL_HEADER",
    "BadRequestHeadersError",
    "RequestHeaders",
    "ResponseHeaders",
    "header_bytes",
    "new_request_id",
    "prepare_request_headers",
    "prepare_response_headers",
    "rewrite_location",
]

Header = tuple[bytes, bytes]

REQUEST_ID_HEADER = b"x-request-id"
#: The verified tool's name, for backends that read the tool from a header (upstream's do).
TOOL_HEADER = b"x-toolforge-tool"
#: A client-sent X-Request-ID is kept only when it matches this; otherwise a new one is made.
REQUEST_ID_RE = re.compile(rb"[A-Za-z0-9._-]{1,128}")
#: Hop-by-hop headers (RFC 9110 section 7.6.1, plus the non-standard Keep-Alive and
#: Proxy-Connection); any ``proxy-*`` header is dropped as well.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
_SUBJECT_DN = SUBJECT_DN_HEADER.encode("ascii")
# Request headers the gateway drops and sets itself (or leaves to the HTTP client).
_REPLACED = frozenset(
    {
        _SUBJECT_DN,
        REQUEST_ID_HEADER,
        b"host",
        b"expect",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
    }
)


class BadRequestHeadersError(ValueError):
    """The request headers are malformed (e.g. a non-numeric Content-Length)."""


@dataclass(slots=True)
class RequestHeaders:
    """The result of :func:`prepare_request_headers`.

    ``forward``: headers for the backend; ``request_id``: the request's ID; ``content_length``:
    the client's Content-Length or ``None``; ``chunked``: the body is sent with
    ``Transfer-Encoding: chunked`` (length unknown).
    """

    forward: list[Header]
    request_id: bytes
    content_length: int | None
    chunked: bool


def new_request_id() -> bytes:
    """A fresh request ID: a random UUID (RFC 9562 version 4) in its 36-character form."""
    return str(uuid.uuid4()).encode("ascii")


def header_bytes(headers: Iterable[Header]) -> int:
    """Size of ``headers`` on the wire in HTTP/1.1: ``name: value\\r\\n`` for each."""
    return sum(len(name) + len(value) + 4 for name, value in headers)


def _connection_tokens(value: bytes) -> set[bytes]:
    return {token.strip().lower() for token in value.split(b",") if token.strip()}


def prepare_request_headers(
    headers: Iterable[Header],
    *,
    client_host: str | None,
    subject_dn: str | None,
    tool: str | None = None,
) -> RequestHeaders:
    """Clean the client's ``headers`` for the backend (see the module docstring).

    ``client_host`` is appended to ``X-Forwarded-For``; ``subject_dn`` (the verified
    certificate's RFC 4514 subject, or ``None``) becomes ``ssl-client-subject-dn`` and ``tool``
    (the verified tool's name, or ``None``) ``x-toolforge-tool``; client-sent values of both
    are always dropped. Raises
    :class:`BadRequestHeadersError` for an invalid or contradictory ``Content-Length``.
    """
    forward: list[Header] = []
    named: set[bytes] = set()
    request_id: bytes | None = None
    forwarded_for: list[bytes] = []
    host: bytes | None = None
    content_length: int | None = None
    chunked = False
    for name, value in headers:
        if name in _REPLACED:
            if name == REQUEST_ID_HEADER:
                if request_id is None and REQUEST_ID_RE.fullmatch(value):
                    request_id = value
            elif name == b"x-forwarded-for":
                forwarded_for.append(value)
            elif name == b"host":
                host = value
            continue
        if name in HOP_BY_HOP or name.startswith((b"proxy-", b"x-toolforge-")):
            if name == b"connection":
                named |= _connection_tokens(value)
            elif name == b"transfer-encoding":
                chunked = True
            continue
        if name == b"content-length":
            if not value.isdigit():
                raise BadRequestHeadersError("Content-Length must be a decimal number")
            length = int(value)
            if content_length is not None and content_length != length:
                raise BadRequestHeadersError("conflicting Content-Length headers")
            if content_length is not None:
                continue  # identical repeat (RFC 9110 section 8.6 allows folding it)
            content_length = length
        forward.append((name, value))
    if chunked and content_length is not None:
        # RFC 9112 section 6.3: a message with both is an attack vector; refuse it.
        raise BadRequestHeadersError("Content-Length and Transfer-Encoding must not both be sent")
    if named:
        forward = [header for header in forward if header[0] not in named]
    if request_id is None:
        request_id = new_request_id()
    forward.append((REQUEST_ID_HEADER, request_id))
    if client_host is not None:
        forwarded_for.append(client_host.encode("ascii"))
    if forwarded_for:
        forward.append((b"x-forwarded-for", b", ".join(forwarded_for)))
    forward.append((b"x-forwarded-proto", b"https"))
    if host is not None:
        forward.append((b"x-forwarded-host", host))
    if subject_dn is not None:
        forward.append((_SUBJECT_DN, subject_dn.encode("utf-8")))
    if tool is not None:
        forward.append((TOOL_HEADER, tool.encode("ascii")))
    return RequestHeaders(forward, request_id, content_length, chunked)


def rewrite_location(value: bytes, *, upstream: bytes, prefix: bytes) -> bytes:
    """Map a backend ``Location`` into the gateway's URL space, as nginx's default
    ``proxy_redirect`` does.

    ``upstream`` is the route's backend URL (``https://host:port[/base]``), ``prefix`` the
    route prefix (``/jobs``). ``https://host:port/base/v1/x`` and the absolute path
    ``/base/v1/x`` both become ``/jobs/v1/x``; any other value is returned unchanged.
    """
    scheme_end = upstream.find(b"://")
    path_start = upstream.find(b"/", scheme_end + 3)
    base_path = upstream[path_start:] if path_start != -1 else b""
    if value.startswith(upstream) and value[len(upstream) : len(upstream) + 1] in (b"", b"/"):
        return prefix + value[len(upstream) :]
    if value.startswith(b"/") and not value.startswith(b"//"):
        if not base_path:
            return prefix + value
        if value.startswith(base_path) and value[len(base_path) : len(base_path) + 1] in (
            b"",
            b"/",
        ):
            return prefix + value[len(base_path) :]
    return value


@dataclass(slots=True)
class ResponseHeaders:
    """The result of :func:`prepare_response_headers`: ``headers`` for the client and the
    backend's ``content_length`` (``None`` when the body is chunked or delimited by close)."""

    headers: list[Header]
    content_length: int | None


def prepare_response_headers(
    headers: Iterable[Header],
    *,
    request_id: bytes,
    upstream: bytes,
    prefix: bytes,
) -> ResponseHeaders:
    """Clean a backend's response ``headers`` for the client and add ``x-request-id``.

    Names are lower-cased; ``upstream`` and ``prefix`` are as in :func:`rewrite_location`.
    """
    result: list[Header] = []
    named: set[bytes] = set()
    content_length: int | None = None
    for raw_name, value in headers:
        name = raw_name.lower()
        if name in HOP_BY_HOP or name.startswith(b"proxy-") or name == REQUEST_ID_HEADER:
            if name == b"connection":
                named |= _connection_tokens(value)
            continue
        if name == b"location":
            value = rewrite_location(value, upstream=upstream, prefix=prefix)
        elif name == b"content-length" and value.isdigit():
            content_length = int(value)
        result.append((name, value))
    if named:
        result = [header for header in result if header[0] not in named]
    result.append((REQUEST_ID_HEADER, request_id))
    return ResponseHeaders(result, content_length)
