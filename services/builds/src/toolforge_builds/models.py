"""API models of the builds API (v1), pydantic v2.

Every response carries ``messages: {info: [], warning: [], error: []}`` (REFERENCE.md
"Builds API (v1)"); an error response is that envelope with ``error`` filled.

The start request (:class:`BuildRequest`) is validated here, field by field, with messages
that name the field and the rule (:func:`validation_messages` turns a pydantic
``ValidationError`` into such lines):

* ``source_url``: an ``https://`` URL of a public git repository. No user info
  (``user:password@``), no other scheme (``http:``, ``git:``, ``ssh:``, ``file:``, ...), a host
  is required and may not be ``localhost``/``*.localhost`` (RFC 6761), a single-label or
  cluster-internal name (``*.local``, ``*.internal``, ``*.svc``), nor an IP literal that is not
  globally routable (loopback, private, link-local, ... per :mod:`ipaddress`; IPv4 literals in
  the forms ``inet_aton`` accepts, such as ``127.1`` or ``2130706433``, count as literals). No
  query or fragment. This blocks the obvious server-side request forgery targets; a DNS name
  that *resolves* to an internal address is not caught here (that needs egress policy).
* ``ref``: a branch or tag name valid under ``git check-ref-format --allow-onelevel``, or a
  full commit id (40 or 64 hex digits); additionally no leading ``-`` (it would be read as an
  option) and at most 255 characters.
* ``envvars``: names match ``^[A-Za-z_][A-Za-z_0-9]{2,}$`` (REFERENCE.md), values contain no
  NUL; at most :data:`MAX_ENVVARS` variables of at most :data:`MAX_ENVVAR_VALUE_LENGTH`
  characters each.
* ``image_name``: one OCI repository path component (OCI distribution spec,
  ``[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*``), lower-case, at most 128 characters.

Response models keep the upstream field names (``build_id``, ``start_time``, ``end_time``,
``destination_image``) so that existing clients read them. One deliberate difference: build
parameters in responses list environment variable *names* only; values may be secrets and are
never echoed back.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, field_validator

__all__ = [
    "COMMIT_RE",
    "ENVVAR_NAME_RE",
    "IMAGE_NAME_RE",
    "MAX_ENVVARS",
    "MAX_ENVVAR_VALUE_LENGTH",
    "Build",
    "BuildLogLine",
    "BuildParameters",
    "BuildRequest",
    "BuildResponse",
    "BuildStatus",
    "BuildsResponse",
    "CancelResponse",
    "CleanResponse",
    "DeleteResponse",
    "HealthResponse",
    "Messages",
    "NewBuild",
    "Quota",
    "QuotaCategory",
    "QuotaItem",
    "QuotaResponse",
    "ResponseEnvelope",
    "StartResponse",
    "error_response",
    "validate_image_name",
    "validate_ref",
    "validate_source_url",
    "validation_messages",
]

#: REFERENCE.md "Builds API (v1)": environment variable names of a build.
ENVVAR_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z_0-9]{2,}$")
#: One repository path component (OCI distribution spec, "Pulling manifests": ``<name>``).
IMAGE_NAME_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
#: A full commit id: SHA-1 (40 hex digits) or SHA-256 (64) object name.
COMMIT_RE = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
MAX_ENVVARS = 100
MAX_ENVVAR_VALUE_LENGTH = 8192
MAX_IMAGE_NAME_LENGTH = 128
MAX_REF_LENGTH = 255
MAX_URL_LENGTH = 2048
#: Host name suffixes that only make sense inside a cluster or a LAN (RFC 6761, RFC 6762).
_INTERNAL_SUFFIXES = ("localhost", "local", "internal", "svc", "lan", "home.arpa")
_HOST_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_MAYBE_NUMERIC_IPV4_RE = re.compile(r"^[0-9a-fx.]+$")
# git check-ref-format rule 4 and 5 characters, plus backslash (rule 10).
_REF_FORBIDDEN_CHARS = frozenset(" ~^:?*[\\\x7f") | frozenset(chr(c) for c in range(0x20))


# --------------------------------------------------------------------------------- validators


def validate_source_url(value: str) -> str:
    """Return ``value`` if it is an allowed git source URL, else raise ``ValueError``.

    Rules in the module docstring. The error message says which rule was broken.
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
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError:
        raise ValueError("has an invalid port") from None
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise ValueError("must name a host (https://HOST/path)")
    _check_host(host)
    if parts.query or parts.fragment or value.endswith(("?", "#")):
        raise ValueError("must not have a query (?...) or fragment (#...)")
    if parts.path.strip("/") == "":
        raise ValueError("must name a repository path (https://host/OWNER/REPO)")
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
        return
    if not host.isascii():
        raise ValueError(f"host {host!r} must be ASCII (use the punycode xn-- form)")
    if len(host) > 253 or not all(_HOST_LABEL_RE.match(label) for label in host.split(".")):
        raise ValueError(f"host {host!r} is not a valid DNS name")
    if any(host == suffix or host.endswith("." + suffix) for suffix in _INTERNAL_SUFFIXES):
        raise ValueError(f"host {host!r} is an internal name, not a public host")
    if "." not in host:
        raise ValueError(f"host {host!r} must be a fully qualified domain name")


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _MAYBE_NUMERIC_IPV4_RE.match(host):
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
    (40 or 64 lower-case hex digits) are accepted as they are.
    """
    if COMMIT_RE.match(value):
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
    return value


def validate_image_name(value: str) -> str:
    """Return ``value`` if it is one lower-case OCI repository path component, else raise."""
    if not value:
        raise ValueError("must not be empty")
    if len(value) > MAX_IMAGE_NAME_LENGTH:
        raise ValueError(f"must be at most {MAX_IMAGE_NAME_LENGTH} characters")
    if value != value.lower():
        raise ValueError("must be lower-case (OCI repository names are lower-case)")
    if not IMAGE_NAME_RE.match(value):
        raise ValueError(
            "must be one OCI repository path component: lower-case letters and digits, "
            "separated by '.', '_', '__' or dashes; no '/' (OCI distribution spec)"
        )
    return value


def _validate_envvars(value: dict[str, str]) -> dict[str, str]:
    if len(value) > MAX_ENVVARS:
        raise ValueError(f"at most {MAX_ENVVARS} variables are allowed (got {len(value)})")
    for name, val in value.items():
        if not ENVVAR_NAME_RE.match(name):
            raise ValueError(
                f"name {name!r} must match {ENVVAR_NAME_RE.pattern} (a letter or '_', then "
                "at least two letters, digits or '_')"
            )
        if "\x00" in val:
            raise ValueError(f"value of {name} must not contain NUL characters")
        if len(val) > MAX_ENVVAR_VALUE_LENGTH:
            raise ValueError(
                f"value of {name} must be at most {MAX_ENVVAR_VALUE_LENGTH} characters"
            )
    return value


# ----------------------------------------------------------------------------- request model


class BuildRequest(BaseModel):
    """Body of ``POST /v1/tool/{tool}/builds``. Unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source_url: str = Field(description="https URL of the public git repository to build.")
    ref: str | None = Field(
        default=None, description="Branch, tag or commit to build; default: the remote HEAD."
    )
    envvars: dict[str, str] = Field(
        default_factory=dict, description="Environment variables set at build time."
    )
    image_name: str | None = Field(
        default=None, description="Name of the image; default: tool-<tool>."
    )
    use_latest_versions: StrictBool = Field(
        default=False, description="Build with the newest builder image instead of the default."
    )

    @field_validator("source_url")
    @classmethod
    def _source_url(cls, value: str) -> str:
        return validate_source_url(value)

    @field_validator("ref")
    @classmethod
    def _ref(cls, value: str | None) -> str | None:
        return None if value is None else validate_ref(value)

    @field_validator("envvars")
    @classmethod
    def _envvars(cls, value: dict[str, str]) -> dict[str, str]:
        return _validate_envvars(value)

    @field_validator("image_name")
    @classmethod
    def _image_name(cls, value: str | None) -> str | None:
        return None if value is None else validate_image_name(value)


def validation_messages(errors: ValidationError | Sequence[Mapping[str, Any]]) -> list[str]:
    """One ``"<field>: <rule>"`` line per validation error (for the ``error`` messages).

    ``errors`` is a pydantic ``ValidationError`` or its ``errors()`` list (FastAPI's
    ``RequestValidationError.errors()`` too: a leading ``body`` location is dropped).
    ``<field>`` is the dotted location (``envvars``, ``envvars.NAME``, ``ref``; ``body`` when
    the body itself is not an object).
    """
    if isinstance(errors, ValidationError):
        errors = errors.errors(include_url=False)
    lines = []
    for error in errors:
        loc = list(error.get("loc") or ())
        if loc[:1] == ["body"]:
            loc = loc[1:]
        field = ".".join(str(part) for part in loc) or "body"
        kind = error["type"]
        if kind == "extra_forbidden":
            allowed = ", ".join(BuildRequest.model_fields)
            message = f"unknown field (allowed: {allowed})"
        elif kind == "missing":
            message = "field required"
        elif kind == "value_error" and "error" in (error.get("ctx") or {}):
            message = str(error["ctx"]["error"])
        else:
            message = str(error.get("msg", "invalid value"))
        lines.append(f"{field}: {message}")
    return lines


# ---------------------------------------------------------------------------- response models


class Messages(BaseModel):
    """The ``messages`` object of every response."""

    info: list[str] = Field(default_factory=list)
    warning: list[str] = Field(default_factory=list)
    error: list[str] = Field(default_factory=list)


class ResponseEnvelope(BaseModel):
    """Base of every response: just ``messages``. Also the error response."""

    messages: Messages = Field(default_factory=Messages)


def error_response(*errors: str) -> ResponseEnvelope:
    """An error body: the envelope with ``messages.error`` set to ``errors``."""
    return ResponseEnvelope(messages=Messages(error=list(errors)))


class BuildStatus(StrEnum):
    """Status of a build, derived from its PipelineRun (see :mod:`toolforge_builds.status`)."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    FAILURE = "failure"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    UNKNOWN = "unknown"


class BuildParameters(BaseModel):
    """Parameters of an existing build, as recorded in its PipelineRun.

    ``ref`` is what the user asked for (``HEAD`` when omitted); ``envvars`` lists the names
    only (values are never returned); ``image_name`` is the repository name that was built.
    """

    source_url: str
    ref: str
    envvars: list[str] = Field(default_factory=list)
    image_name: str
    use_latest_versions: bool = False


class NewBuild(BaseModel):
    """A build that was just started: its id (the PipelineRun name) and what it builds."""

    name: str
    resolved_ref: str = Field(description="Commit id the ref resolved to.")
    parameters: BuildParameters


class Build(BaseModel):
    """One build. Times are RFC 3339 UTC; ``None`` while unknown."""

    build_id: str
    start_time: datetime | None = None
    end_time: datetime | None = None
    status: BuildStatus
    message: str = ""
    parameters: BuildParameters
    resolved_ref: str
    destination_image: str


class StartResponse(ResponseEnvelope):
    new_build: NewBuild


class BuildsResponse(ResponseEnvelope):
    """``GET /builds``: newest first."""

    builds: list[Build]


class BuildResponse(ResponseEnvelope):
    """``GET /builds/latest`` and ``GET /builds/{id}``."""

    build: Build


class DeleteResponse(ResponseEnvelope):
    id: str


class CancelResponse(ResponseEnvelope):
    id: str


class QuotaItem(BaseModel):
    """One quota line; values are human-readable quantities (``512.00Mi``) as upstream.
    Storage lines also give exact byte counts in ``limit_bytes`` / ``used_bytes``."""

    name: str
    limit: str
    used: str
    available: str | None = None
    limit_bytes: int | None = Field(default=None, description="Storage lines: limit in bytes.")
    used_bytes: int | None = Field(default=None, description="Storage lines: bytes used.")


class QuotaCategory(BaseModel):
    name: str
    items: list[QuotaItem]


class Quota(BaseModel):
    categories: list[QuotaCategory]


class QuotaResponse(ResponseEnvelope):
    quota: Quota


class CleanResponse(ResponseEnvelope):
    """``POST /clean``: the image references whose tags were deleted
    (``<registry>/tool-<tool>/<name>:<tag>``) and how many manifests went (an image index
    counts with each of its children)."""

    deleted_images: list[str]
    deleted_manifests: int


class HealthResponse(ResponseEnvelope):
    status: Literal["OK", "ERROR"]


class BuildLogLine(BaseModel):
    """One NDJSON record of ``GET /builds/{id}/logs``: ``{"line": "[container] <ts> text"}``."""

    line: str
