"""The rules of a build start request's fields, as validators and as OpenAPI patterns. Pure.

Each rule exists twice on purpose: a validator that says which rule was broken (the 400's
message names the field and the rule), and a pattern for the OpenAPI schema, so that the
spec accepts exactly what the API accepts. The patterns are the API's own last gate (a value
the validators let through must still match them), and
``tests/builds/test_builds_spec_patterns.py`` checks that every value matching a pattern
passes the validators. They use only regular-expression syntax that Python and ECMA-262
(JSON Schema's dialect) read alike: classes, groups, counted repeats and lookaheads; each ends
in ``$(?!\n)``, end of input in both (Python's ``$`` alone also matches before a final
newline, which Python-based schema tools would then accept and the API refuse).

Sources: REFERENCE.md "Builds API (v1)" (env var names), git-check-ref-format(1) (refs), the
OCI distribution spec (image names), RFC 3986 (URL syntax), RFC 6761/6762 (internal names).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from contextvars import ContextVar
from urllib.parse import urlsplit

__all__ = [
    "COMMIT_RE",
    "ENVVAR_NAME_PATTERN",
    "ENVVAR_NAME_RE",
    "ENVVAR_VALUE_PATTERN",
    "IMAGE_NAME_PATTERN",
    "IMAGE_NAME_RE",
    "MAX_ENVVARS",
    "MAX_ENVVAR_VALUE_LENGTH",
    "MAX_IMAGE_NAME_LENGTH",
    "MAX_REF_LENGTH",
    "MAX_URL_LENGTH",
    "REF_PATTERN",
    "SOURCE_URL_PATTERN",
    "TRUSTED_SOURCE_PREFIXES",
    "TRUSTED_SOURCE_PREFIX_RE",
    "validate_envvars",
    "validate_image_name",
    "validate_ref",
    "validate_source_url",
]

MAX_ENVVARS = 100
MAX_ENVVAR_VALUE_LENGTH = 8192
MAX_IMAGE_NAME_LENGTH = 128
MAX_REF_LENGTH = 255
MAX_URL_LENGTH = 2048
MAX_HOST_LENGTH = 253

#: URL prefixes of the platform's own git servers (settings ``trusted_source_prefixes``): a
#: ``source_url`` under one is accepted although its host is not public (the local
#: platform's git server is ``https://10.244.0.1:8451/``). The app sets it for each request
#: (:mod:`toolforge_builds.app`); empty everywhere else, so the public-host rules hold.
TRUSTED_SOURCE_PREFIXES: ContextVar[tuple[str, ...]] = ContextVar(
    "TRUSTED_SOURCE_PREFIXES", default=()
)
#: A trusted prefix: ``https://host[:port]/`` plus optional path components, ending in ``/``
#: (so ``https://h:1/`` cannot also match ``https://h:12/``).
TRUSTED_SOURCE_PREFIX_RE = re.compile(r"^https://[A-Za-z0-9.\[\]:-]+/([A-Za-z0-9._~-]+/)*$")

#: REFERENCE.md "Builds API (v1)": environment variable names of a build.
_END = r"$(?!\n)"
ENVVAR_NAME_PATTERN = rf"^[A-Za-z_][A-Za-z_0-9]{{2,}}{_END}"
ENVVAR_NAME_RE = re.compile(ENVVAR_NAME_PATTERN)
#: An env var value: anything but NUL (it cannot pass through a process environment).
ENVVAR_VALUE_PATTERN = rf"^[^\x00]*{_END}"
#: One repository path component (OCI distribution spec, "Pulling manifests": ``<name>``).
IMAGE_NAME_PATTERN = rf"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*{_END}"
IMAGE_NAME_RE = re.compile(IMAGE_NAME_PATTERN)
#: A full commit id: SHA-1 (40 hex digits) or SHA-256 (64) object name.
COMMIT_RE = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")

#: git check-ref-format rules 3-10 plus: no leading '-'. Each lookahead is one rule; the class
#: is rules 4 and 5 (and backslash, rule 10). At most 255 characters: ``maxLength``.
REF_PATTERN = (
    r"^(?!-)"  # would be read as an option
    r"(?!@$)"  # rule 9
    r"(?!.*\.\.)"  # rule 3
    r"(?!.*@\{)"  # rule 8
    r"(?!/)(?!.*/$)(?!.*//)"  # rule 6
    r"(?!.*\.$)"  # rule 7
    r"(?!\.)(?!.*/\.)(?!.*\.lock(?:/|$))"  # rule 1
    r"[^\x00-\x20~^:?*\[\\\x7f]+" + _END  # the length: maxLength (code points)
)
_REF_RE = re.compile(REF_PATTERN)
# git check-ref-format rule 4 and 5 characters, plus backslash (rule 10).
_REF_FORBIDDEN_CHARS = frozenset(" ~^:?*[\\\x7f") | frozenset(chr(c) for c in range(0x20))

#: Host name suffixes that only make sense inside a cluster or a LAN (RFC 6761, RFC 6762).
INTERNAL_SUFFIXES = ("localhost", "local", "internal", "svc", "lan", "home.arpa")
_HOST_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_MAYBE_NUMERIC_IPV4_RE = re.compile(r"^[0-9a-fx.]+$")


def _caseless(text: str) -> str:
    """``text`` as a pattern that matches it in any letter case, without a regex flag (ECMA
    patterns in JSON Schema take none)."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in text)


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_LAST_LABEL = r"[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PORT = r"(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
#: RFC 3986 ``pchar`` (unreserved, sub-delims, ':', '@', and '%' of percent-encodings).
_PCHARS = r"A-Za-z0-9._~!$&'()*+,;=:@%-"
_INTERNAL = "|".join(_caseless(suffix) for suffix in INTERNAL_SUFFIXES)
#: The source URL rules of the module docstring of :mod:`toolforge_builds.models`.
SOURCE_URL_PATTERN = (
    f"^{_caseless('https')}://"
    rf"(?=[^/:]{{1,{MAX_HOST_LENGTH}}}\.?[:/])"  # host length
    rf"(?!(?:[^/:]*\.)?(?:{_INTERNAL})\.?[:/])"  # no internal names
    rf"(?:{_LABEL}\.)+{_LAST_LABEL}\.?"  # a DNS name of two labels or more, no IP address
    rf"(?::{_PORT})?"
    rf"/+[{_PCHARS}][/{_PCHARS}]*{_END}"  # a path with something in it; no query or fragment
)
_SOURCE_URL_RE = re.compile(SOURCE_URL_PATTERN)


def validate_source_url(value: str) -> str:
    """Return ``value`` if it is an allowed git source URL, else raise ``ValueError``.

    Rules in the module docstring of :mod:`toolforge_builds.models`; the error message says
    which rule was broken.
    """
    if len(value) > MAX_URL_LENGTH:
        raise ValueError(f"must be at most {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValueError("must not contain whitespace or control characters")
    try:
        parts = urlsplit(value)
    except ValueError as exc:  # e.g. an unbalanced '[' in the host
        raise ValueError(f"is not a valid URL ({exc})") from None
    if parts.scheme != "https":
        got = f"scheme {parts.scheme!r}" if parts.scheme else "no scheme"
        raise ValueError(
            f"must be an https:// URL of a public git repository (got {got}; http, git, ssh "
            "and file URLs are not allowed)"
        )
    if "@" in parts.netloc:
        raise ValueError("must not contain credentials (user:password@); use a public repository")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("has an invalid port") from None
    if port == 0 or parts.netloc.endswith(":"):
        raise ValueError("has an invalid port")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise ValueError("must name a host (https://HOST/path)")
    if parts.query or parts.fragment or value.endswith(("?", "#")):
        raise ValueError("must not have a query (?...) or fragment (#...)")
    trusted = TRUSTED_SOURCE_PREFIXES.get()
    if any(value.startswith(prefix) and len(value) > len(prefix) for prefix in trusted):
        return value  # the platform's own git server
    _check_host(host)
    if parts.path.strip("/") == "":
        raise ValueError("must name a repository path (https://host/OWNER/REPO)")
    if not _SOURCE_URL_RE.fullmatch(value):
        raise ValueError(
            "must be https://HOST[:PORT]/PATH with a DNS host name and a path of URL path "
            "characters (RFC 3986; percent-encode anything else)"
        )
    return value


def _check_host(host: str) -> None:
    address = _ip_literal(host)
    if address is not None:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if not address.is_global or address.is_multicast:
            raise ValueError(
                f"host {host!r} is not a public address (loopback, private, link-local and "
                "other non-global addresses are not allowed)"
            )
        raise ValueError(
            f"host {host!r} is an IP address; use the repository's host name (its TLS "
            "certificate names that)"
        )
    if not host.isascii():
        raise ValueError(f"host {host!r} must be ASCII (use the punycode xn-- form)")
    if len(host) > MAX_HOST_LENGTH or not all(
        _HOST_LABEL_RE.match(label) for label in host.lower().split(".")
    ):
        raise ValueError(f"host {host!r} is not a valid DNS name")
    lowered = host.lower()
    if any(lowered == suffix or lowered.endswith("." + suffix) for suffix in INTERNAL_SUFFIXES):
        raise ValueError(f"host {host!r} is an internal name, not a public host")
    if "." not in host:
        raise ValueError(f"host {host!r} must be a fully qualified domain name")
    if not host.rsplit(".", 1)[1][:1].isalpha():
        raise ValueError(
            f"host {host!r} is not a DNS name (its last label must start with a letter)"
        )


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _MAYBE_NUMERIC_IPV4_RE.match(host.lower()):
        # curl (and so git) resolves legacy numeric forms like 127.1, 0x7f.0.0.1, 2130706433.
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def validate_ref(value: str) -> str:
    """Return ``value`` if it is a safe git ref name or commit id, else raise ``ValueError``.

    A ref name must pass ``git check-ref-format --allow-onelevel`` (git-check-ref-format(1)
    rules 1, 3-10), must not start with ``-`` and is at most 255 characters. Full commit ids
    (40 or 64 lower-case hex digits) pass these rules as they are.
    """
    if COMMIT_RE.fullmatch(value):
        return value
    if not value:
        raise ValueError("must not be empty (omit it to build HEAD)")
    if len(value) > MAX_REF_LENGTH:
        raise ValueError(f"must be at most {MAX_REF_LENGTH} characters")
    if value.startswith("-"):
        raise ValueError("must not start with '-'")
    bad = sorted({ch for ch in value if ch in _REF_FORBIDDEN_CHARS})
    if bad:
        shown = ", ".join(repr(ch) for ch in bad)
        raise ValueError(
            f"must not contain control characters, space, ~ ^ : ? * [ or \\ (found {shown}) "
            "(git-check-ref-format)"
        )
    rules = (
        (".." in value, "must not contain '..'"),
        ("@{" in value, "must not contain '@{'"),
        (value == "@", "must not be '@'"),
        (value.startswith("/") or value.endswith("/"), "must not start or end with '/'"),
        ("//" in value, "must not contain '//'"),
        (value.endswith("."), "must not end with '.'"),
        (
            any(part.startswith(".") or part.endswith(".lock") for part in value.split("/")),
            "no '/'-separated part may start with '.' or end with '.lock'",
        ),
    )
    for broken, message in rules:
        if broken:
            raise ValueError(f"{message} (git-check-ref-format)")
    if not _REF_RE.fullmatch(value):  # the spec's pattern; the rules above say why in words
        raise ValueError("is not a valid branch or tag name (git-check-ref-format)")
    return value


def validate_image_name(value: str) -> str:
    """Return ``value`` if it is one lower-case OCI repository path component, else raise."""
    if not value:
        raise ValueError("must not be empty")
    if len(value) > MAX_IMAGE_NAME_LENGTH:
        raise ValueError(f"must be at most {MAX_IMAGE_NAME_LENGTH} characters")
    if value != value.lower():
        raise ValueError("must be lower-case (OCI repository names are lower-case)")
    if not IMAGE_NAME_RE.fullmatch(value):
        raise ValueError(
            "must be one OCI repository path component: lower-case letters and digits, "
            "separated by '.', '_', '__' or dashes; no '/' (OCI distribution spec)"
        )
    return value


def validate_envvars(value: dict[str, str]) -> dict[str, str]:
    """Return ``value`` if every name and value is allowed (module docstring), else raise."""
    if len(value) > MAX_ENVVARS:
        raise ValueError(f"at most {MAX_ENVVARS} variables are allowed (got {len(value)})")
    for name, val in value.items():
        if not ENVVAR_NAME_RE.fullmatch(name):
            raise ValueError(
                f"name {name!r} must match {ENVVAR_NAME_PATTERN} (a letter or '_', then "
                "at least two letters, digits or '_')"
            )
        if "\x00" in val:
            raise ValueError(f"value of {name} must not contain NUL characters")
        if len(val) > MAX_ENVVAR_VALUE_LENGTH:
            raise ValueError(
                f"value of {name} must be at most {MAX_ENVVAR_VALUE_LENGTH} characters"
            )
    return value
