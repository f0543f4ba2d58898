"""Wire models and rules of the envvars API (REFERENCE.md, "Envvars"; the upstream client
``toolforge-envvars-cli`` 0.0.16 reads exactly these shapes).

- ``GET .../envvars`` -> ``{envvars: [{name, value}], messages}``;
- ``GET|DELETE .../envvars/{name}``, ``POST .../envvars`` -> ``{envvar: {name, value},
  messages}`` (DELETE answers the last value, as upstream);
- ``GET .../quotas`` -> ``{quota: {quota, used}, messages}``;
- errors -> ``{"error": [...]}`` with the status (:mod:`toolforge_kit.wire`).

Rules (each broken one is a 400 whose message names the rule; values are never echoed in an
error):

- a name matches ``^[A-Z][A-Z_0-9]{2,}[A-Z0-9]$`` (REFERENCE.md): upper-case letters, digits
  and ``_``, at least 4 characters, starting with a letter, not ending with ``_``;
- names the platform sets in tool pods are reserved: :data:`RESERVED_NAMES` and every name
  starting with one of :data:`RESERVED_PREFIXES` (``TOOL_`` is upstream's prefix of the
  variables the platform sets; ``KUBERNETES_`` the service links Kubernetes adds; ``CNB_`` the
  buildpacks platform's);
- a value is not empty, holds no NUL character (POSIX environment strings cannot) and is at
  most ``max_value_bytes`` bytes of UTF-8 (a setting, 8 KiB by default).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from toolforge_kit.wire import HealthResponse, MessagesResponse

__all__ = [
    "NAME_PATTERN",
    "RESERVED_NAMES",
    "RESERVED_PREFIXES",
    "Envvar",
    "EnvvarResponse",
    "EnvvarsResponse",
    "HealthResponse",
    "InvalidEnvvar",
    "NewEnvvar",
    "Quota",
    "QuotaResponse",
    "check_name",
    "check_value",
]

#: The name rule (REFERENCE.md, "Envvars").
NAME_PATTERN = r"^[A-Z][A-Z_0-9]{2,}[A-Z0-9]$"
_NAME_RE = re.compile(NAME_PATTERN)
#: Names the platform itself sets in tool pods (the jobs API, Kubernetes, the shell).
RESERVED_NAMES = frozenset(
    {"HOME", "PATH", "PORT", "NO_HOME", "USER", "SHELL", "HOSTNAME", "PWD", "LANG", "TERM"}
)
#: Prefixes of names the platform sets.
RESERVED_PREFIXES = ("TOOL_", "KUBERNETES_", "CNB_")

Name = Annotated[
    str,
    Field(
        pattern=NAME_PATTERN,
        max_length=128,
        description="Upper-case letters, digits and _, at least 4 characters, starting with "
        "a letter and not ending with _; names the platform sets are reserved.",
    ),
]


class InvalidEnvvar(ValueError):  # noqa: N818 - reads as the rule it names
    """A name or value breaks a rule; the message names the rule (never the value)."""


def check_name(name: str) -> str:
    """``name`` if it may be a tool's variable.

    Raises:
        InvalidEnvvar: it breaks the name rule or is reserved.
    """
    if not _NAME_RE.fullmatch(name):
        raise InvalidEnvvar(
            f"name {name!r} is not valid: use upper-case letters, digits and _, at least 4 "
            f"characters, starting with a letter and not ending with _ ({NAME_PATTERN})"
        )
    if name in RESERVED_NAMES or name.startswith(RESERVED_PREFIXES):
        raise InvalidEnvvar(
            f"name {name!r} is reserved: the platform sets it in tool pods (reserved: "
            f"{', '.join(sorted(RESERVED_NAMES))} and names starting with "
            f"{', '.join(RESERVED_PREFIXES)})"
        )
    return name


def check_value(value: str, *, max_bytes: int) -> str:
    """``value`` if it may be stored.

    Raises:
        InvalidEnvvar: empty, holding a NUL character, or longer than ``max_bytes`` bytes of
            UTF-8. The message gives sizes, never the value.
    """
    if not value:
        raise InvalidEnvvar("value must not be empty")
    if "\x00" in value:
        raise InvalidEnvvar("value must not contain a NUL character")
    size = len(value.encode())
    if size > max_bytes:
        raise InvalidEnvvar(f"value is {size} bytes long; at most {max_bytes} are allowed")
    return value


class Envvar(BaseModel):
    """One variable."""

    model_config = ConfigDict(extra="forbid")

    name: str
    value: str


class NewEnvvar(BaseModel):
    """Body of ``POST .../envvars``: create or replace one variable."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    value: str = Field(
        min_length=1,
        description="Not empty, no NUL character, at most max_value_bytes bytes (8 KiB by "
        "default). Never logged nor echoed in errors.",
    )


class EnvvarsResponse(MessagesResponse):
    """``GET .../envvars``: every variable of the tool, sorted by name, with its value (the
    upstream client shows values with ``list --show-values`` and hides them otherwise)."""

    envvars: list[Envvar]


class EnvvarResponse(MessagesResponse):
    """One variable: show, create, delete (its last value)."""

    envvar: Envvar


class Quota(BaseModel):
    """How many variables the tool may have and has."""

    model_config = ConfigDict(extra="forbid")

    quota: int
    used: int


class QuotaResponse(MessagesResponse):
    """``GET .../quotas``."""

    quota: Quota
