"""Routing and the authorisation decision: pure functions, no I/O.

The rules (REFERENCE.md, "Identity and the gateway"), deny by default:

- ``/openapi.json`` and, per route, the configured unauthenticated suffixes
  (``/<api>/openapi.json``, ``/<api>/v1/healthz``, ``/<api>/v1/metrics``) need no client
  certificate at all (the TLS layer asks for one but does not require it);
- every other path needs a verified client certificate: 401 without one;
- the gateway's own ``/healthz`` and ``/metrics`` need a verified certificate but no identity;
- a tool (``CN=<tool>,O=toolforge``) may call ``/<api>/v1/tool/<tool>/...`` for its own name
  only;
- a service (``CN=service:<name>,O=toolforge``) may call the paths that one of its configured
  regexes matches in full;
- everything else is refused: 403, or 404 for a path that names no route.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from toolforge_auth.identity import Identity, ToolIdentity

__all__ = [
    "GATEWAY_PATHS",
    "PUBLIC_GATEWAY_PATHS",
    "AccessPolicy",
    "Decision",
    "authorize",
    "has_dot_segment",
    "has_encoded_slash",
    "is_public",
    "split_route",
]

#: Paths served by the gateway itself, without an identity check.
GATEWAY_PATHS = frozenset({"/healthz", "/metrics", "/openapi.json"})
#: Gateway paths that need no client certificate either.
PUBLIC_GATEWAY_PATHS = frozenset({"/openapi.json"})

# After the route prefix: /v1/tool/<tool> followed by '/' or the end.
_TOOL_PATH_RE = re.compile(r"/v1/tool/([^/]+)(?:/|$)")


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome for one request: ``status`` 200 means allowed, otherwise the HTTP status
    to answer with (400, 403 or 404) and ``reason`` for the error message."""

    status: int
    reason: str = ""

    @property
    def allowed(self) -> bool:
        return self.status == 200


ALLOWED = Decision(200)


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    """What :func:`authorize` needs from the settings.

    ``routes``: route names (first path segment); ``unauthenticated_suffixes``: per-route
    suffixes needing no client certificate; ``services``: service name -> compiled regexes,
    each matched against the whole percent-decoded gateway path with
    :meth:`re.Pattern.fullmatch`.
    """

    routes: Collection[str]
    unauthenticated_suffixes: Collection[str]
    services: Mapping[str, Sequence[re.Pattern[str]]]


def split_route(path: str) -> tuple[str, str]:
    """``"/jobs/v1/x"`` -> ``("jobs", "/v1/x")``; ``"/jobs"`` -> ``("jobs", "")``.

    ``path`` must start with ``/``. Works on decoded and raw (percent-encoded) paths alike.
    """
    name, slash, rest = path[1:].partition("/")
    return name, slash + rest


def has_dot_segment(path: str) -> bool:
    """True when the (decoded) ``path`` has a ``.`` or ``..`` segment (RFC 3986 section 3.3).

    Such paths are refused rather than normalised: a backend or a later proxy could resolve
    them differently from the gateway's authorisation check.
    """
    return any(segment in (".", "..") for segment in path.split("/"))


def has_encoded_slash(raw_path: bytes) -> bool:
    """True when the raw (still percent-encoded) request path holds ``%2F``.

    Such paths are refused: the route prefix is stripped from the raw path while the decision
    is made on the decoded one, so their segments must be the same.
    """
    return b"%2f" in raw_path or b"%2F" in raw_path


def is_public(path: str, policy: AccessPolicy) -> bool:
    """True when the percent-decoded ``path`` needs no client certificate: ``/openapi.json``
    or ``/<route>/<suffix>`` for a configured route and unauthenticated suffix (exact
    matches only, so a path with dot segments is never public)."""
    if path in PUBLIC_GATEWAY_PATHS:
        return True
    route, rest = split_route(path)
    return route in policy.routes and rest in policy.unauthenticated_suffixes


def authorize(
    path: str, identity: Identity | None, policy: AccessPolicy, *, verified: bool
) -> Decision:
    """Decide whether a client may call the percent-decoded gateway ``path``.

    ``verified`` says whether the client presented a certificate that the TLS layer verified;
    ``identity`` is its Toolforge identity, ``None`` without a certificate or when the
    certificate carries no Toolforge identity (such as a cluster-admin certificate
    ``O=system:masters``). Returns a :class:`Decision`: 401 without a certificate (except on
    the public paths, :func:`is_public`), 400 for dot segments, 404 for an unknown route, 403
    when refused.
    """
    if is_public(path, policy):
        return ALLOWED
    if not verified:
        return Decision(401, "a client certificate is required (the tool's ~/.toolskube)")
    if has_dot_segment(path):
        return Decision(400, "the path must not contain '.' or '..' segments")
    if path in GATEWAY_PATHS:
        return ALLOWED
    route, rest = split_route(path)
    if route not in policy.routes:
        return Decision(404, f"no API is served under /{route}")
    if identity is None:
        return Decision(403, "the client certificate does not carry a Toolforge identity")
    if isinstance(identity, ToolIdentity):
        match = _TOOL_PATH_RE.match(rest)
        if match is None:
            return Decision(403, f"tools may only call /{route}/v1/tool/<tool name>/...")
        if match.group(1) != identity.name:
            return Decision(403, f"tool {identity.name!r} may not act on tool {match.group(1)!r}")
        return ALLOWED
    for pattern in policy.services.get(identity.name, ()):
        if pattern.fullmatch(path):
            return ALLOWED
    return Decision(403, f"{identity.cn} may not call {path}")
