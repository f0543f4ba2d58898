"""API models of the builds API (v1), pydantic v2, on the wire as production serves it
(REFERENCE.md "The wire as production serves it", Builds).

Every success carries ``messages: {info: [], warning: [], error: []}``. An error answer is
upstream's body, the message list at the top level (``{"error": ["..."]}``, what
``toolforge-build`` 0.0.29 reads), plus the same messages in ``messages`` (what our own
``toolforge`` CLI read before): :class:`ErrorResponse`.

The start request (:class:`BuildRequest`) is validated here, field by field, with messages
that name the field and the rule (:func:`validation_messages` turns a pydantic
``ValidationError`` into such lines). Each rule is also stated in the OpenAPI schema
(``pattern``, ``minLength``, ``maxLength``...): the patterns below are the API's own gates,
so the spec accepts exactly what the API accepts (tests/builds/test_builds_spec_patterns.py):

* ``source_url`` (:data:`SOURCE_URL_PATTERN`): an ``https://`` URL of a public git
  repository, at most 2048 characters: a DNS host name of at least two labels whose last label
  starts with a letter (so no IP address, in any form: certificates name hosts, and private
  addresses are server-side request forgery targets), at most 253 characters, not
  ``localhost`` nor a cluster-internal or LAN name (``*.localhost``, ``*.local``,
  ``*.internal``, ``*.svc``, ``*.lan``, ``*.home.arpa``; RFC 6761/6762), an optional port
  1-65535, and a path of RFC 3986 path characters with at least one that is not ``/``. No
  user info (``user:password@``), no query or fragment. A DNS name that *resolves* to an
  internal address is not caught here (that needs egress policy).
* ``ref`` (:data:`REF_PATTERN`): a branch or tag name valid under ``git check-ref-format
  --allow-onelevel``, or a full commit id (40 or 64 hex digits); additionally no leading
  ``-`` (it would be read as an option) and at most 255 characters.
* ``envvars``: names match ``^[A-Za-z_][A-Za-z_0-9]{2,}$`` (REFERENCE.md), values contain no
  NUL; at most :data:`MAX_ENVVARS` variables of at most :data:`MAX_ENVVAR_VALUE_LENGTH`
  characters each.
* ``image_name``: one OCI repository path component (OCI distribution spec,
  ``[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*``), lower-case, at most 128 characters.
* ``use_latest_versions`` and ``use_deprecated_versions`` exclude each other.

Response models keep the upstream field names and shapes (``build_id``, ``start_time`` and
``end_time`` as RFC 3339 strings, ``""`` while unset, ``status`` ``BUILD_*``,
``parameters.envvars`` an object). One deliberate difference: the values of
``parameters.envvars`` are never echoed back (they are often tokens; the logs are scrubbed of
them too): each reads :data:`HIDDEN_VALUE`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from toolforge_builds.rules import (
    COMMIT_RE,
    ENVVAR_NAME_PATTERN,
    ENVVAR_NAME_RE,
    ENVVAR_VALUE_PATTERN,
    IMAGE_NAME_PATTERN,
    IMAGE_NAME_RE,
    MAX_ENVVAR_VALUE_LENGTH,
    MAX_ENVVARS,
    MAX_IMAGE_NAME_LENGTH,
    MAX_REF_LENGTH,
    MAX_URL_LENGTH,
    REF_PATTERN,
    SOURCE_URL_PATTERN,
    validate_envvars,
    validate_image_name,
    validate_ref,
    validate_source_url,
)

__all__ = [
    "COMMIT_RE",
    "ENVVAR_NAME_RE",
    "HIDDEN_VALUE",
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
    "ErrorResponse",
    "HealthResponse",
    "Messages",
    "NewBuild",
    "Quota",
    "QuotaCategory",
    "QuotaItem",
    "QuotaResponse",
    "ResponseEnvelope",
    "StartResponse",
    "StorageBytes",
    "error_response",
    "validate_image_name",
    "validate_ref",
    "validate_source_url",
    "validation_messages",
]

#: What ``parameters.envvars`` shows for each value (values are never echoed back).
HIDDEN_VALUE = "***"

# ----------------------------------------------------------------------------- request model


class BuildRequest(BaseModel):
    """Body of ``POST /v1/tool/{tool}/builds``. Unknown fields are rejected.

    Every rule is also in the JSON schema (the patterns of :mod:`toolforge_builds.rules`);
    both version flags together are refused (``not`` in the schema)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "not": {
                "required": ["use_latest_versions", "use_deprecated_versions"],
                "properties": {
                    "use_latest_versions": {"const": True},
                    "use_deprecated_versions": {"const": True},
                },
            }
        },
    )

    source_url: str = Field(
        description="https URL of a public git repository: a DNS host name (no IP address, "
        "no internal name such as localhost or *.svc), optional port, a path; no "
        "credentials, query or fragment.",
        json_schema_extra={
            "minLength": len("https://a.b/c"),
            "maxLength": MAX_URL_LENGTH,
            "pattern": SOURCE_URL_PATTERN,
        },
    )
    ref: str | None = Field(
        default=None,
        description="Branch, tag or commit to build (git check-ref-format rules, no "
        "leading '-'); default: the remote HEAD.",
        json_schema_extra={"minLength": 1, "maxLength": MAX_REF_LENGTH, "pattern": REF_PATTERN},
    )
    envvars: dict[str, str] = Field(
        default_factory=dict,
        description=f"Environment variables set at build time (at most {MAX_ENVVARS}). "
        "Their values are never returned.",
        json_schema_extra={
            "maxProperties": MAX_ENVVARS,
            "propertyNames": {"pattern": ENVVAR_NAME_PATTERN},
            "additionalProperties": {
                "type": "string",
                "maxLength": MAX_ENVVAR_VALUE_LENGTH,
                "pattern": ENVVAR_VALUE_PATTERN,
            },
        },
    )
    image_name: str | None = Field(
        default=None,
        description="Name of the image (one lower-case OCI repository path component); "
        "default: tool-<tool>.",
        json_schema_extra={
            "minLength": 1,
            "maxLength": MAX_IMAGE_NAME_LENGTH,
            "pattern": IMAGE_NAME_PATTERN,
        },
    )
    use_latest_versions: StrictBool = Field(
        default=False,
        description="Build with the newest buildpack versions (the builder image "
        "builder_image_latest; the default builder, with a warning, where none is configured).",
    )
    use_deprecated_versions: StrictBool = Field(
        default=False,
        description="Build with the deprecated older buildpack versions (the builder image "
        "builder_image_deprecated; the default builder, with a warning, where none is "
        "configured). Not together with use_latest_versions.",
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
        return validate_envvars(value)

    @field_validator("image_name")
    @classmethod
    def _image_name(cls, value: str | None) -> str | None:
        return None if value is None else validate_image_name(value)

    @field_validator("use_deprecated_versions")
    @classmethod
    def _one_version_flag(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("use_latest_versions"):
            raise ValueError("cannot be combined with use_latest_versions; choose one")
        return value


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
    """Base of every success: ``messages``."""

    messages: Messages = Field(default_factory=Messages)


class ErrorResponse(BaseModel):
    """Every error answer: upstream's top-level ``error`` list (``toolforge-build`` prints
    it), and the same in ``messages.error`` (our envelope, kept for older clients)."""

    error: list[str] = Field(description="What went wrong, for the user.")
    messages: Messages = Field(default_factory=Messages)


def error_response(*errors: str) -> ErrorResponse:
    """The body of an error answer with ``errors``."""
    return ErrorResponse(error=list(errors), messages=Messages(error=list(errors)))


class BuildStatus(StrEnum):
    """Status of a build, derived from its PipelineRun (see :mod:`toolforge_builds.status`).
    The wire values are upstream's ``BUILD_*`` strings (``toolforge-build`` splits them on
    ``_``)."""

    PENDING = "BUILD_PENDING"
    RUNNING = "BUILD_RUNNING"
    SUCCESS = "BUILD_SUCCESS"
    FAILURE = "BUILD_FAILURE"
    CANCELLED = "BUILD_CANCELLED"
    TIMEOUT = "BUILD_TIMEOUT"
    UNKNOWN = "BUILD_UNKNOWN"

    @property
    def short(self) -> str:
        """``pending``, ``running``, ``success``... (for messages)."""
        return self.value.removeprefix("BUILD_").lower()


class BuildParameters(BaseModel):
    """Parameters of an existing build, as recorded in its PipelineRun.

    ``ref`` is what the user asked for (``HEAD`` when omitted); ``envvars`` maps each name to
    ``"***"`` (values are never returned); ``image_name`` is the repository name that was
    built.
    """

    source_url: str
    ref: str
    envvars: dict[str, str] = Field(
        default_factory=dict,
        description=f"Name -> {HIDDEN_VALUE!r}: the values are never returned.",
    )
    image_name: str
    use_latest_versions: bool = False
    use_deprecated_versions: bool = False


class NewBuild(BaseModel):
    """A build that was just started: its id (the PipelineRun name) and what it builds."""

    name: str
    resolved_ref: str = Field(description="Commit id the ref resolved to.")
    parameters: BuildParameters


class Build(BaseModel):
    """One build. Times are RFC 3339 UTC (``2024-05-01T12:00:00Z``), ``""`` while unset."""

    build_id: str
    start_time: str = Field(default="", description='RFC 3339 UTC; "" before the start.')
    end_time: str = Field(default="", description='RFC 3339 UTC; "" until it ends.')
    status: BuildStatus
    message: str = ""
    parameters: BuildParameters
    resolved_ref: str
    destination_image: str = Field(
        description="The image reference; <registry>/tool-<tool>/<name>:latest@sha256:<digest> "
        "once the build has pushed it."
    )


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
    """One quota line as upstream: ``limit``, ``used`` and ``available`` human-readable
    (``1.00Gi``, ``512.00Mi``; counts for build slots) and ``capacity`` the share used,
    ``"NN%"`` (rounded down)."""

    name: str
    limit: str
    used: str
    available: str
    capacity: str = Field(pattern=r"^[0-9]+%$", description='Share used, e.g. "45%".')


class QuotaCategory(BaseModel):
    name: str
    items: list[QuotaItem]


class StorageBytes(BaseModel):
    """Registry storage in exact bytes (the ``Registry``/``Storage`` item rounds)."""

    limit: int
    used: int


class Quota(BaseModel):
    """Categories ``Registry`` (item ``Storage``, as upstream) and ``Builds`` (item
    ``Parallel builds``, ours); ``storage_bytes`` repeats the storage item in exact bytes
    (outside the items, which ``toolforge-build quota`` prints key by key)."""

    categories: list[QuotaCategory]
    storage_bytes: StorageBytes


class QuotaResponse(ResponseEnvelope):
    quota: Quota


class CleanResponse(ResponseEnvelope):
    """``POST /clean``: the image references whose tags were deleted
    (``<registry>/tool-<tool>/<name>:<tag>``) and how many manifests went (an image index
    counts with each of its children); ``messages.info`` says it as upstream does."""

    deleted_images: list[str]
    deleted_manifests: int


class HealthResponse(ResponseEnvelope):
    status: Literal["OK", "ERROR"]


class BuildLogLine(BaseModel):
    """One NDJSON record of ``GET /builds/{id}/logs``: ``{"line": "[container] <ts> text"}``."""

    line: str
