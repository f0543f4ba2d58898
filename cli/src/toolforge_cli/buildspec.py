"""``toolforge build start`` flags -> the body of ``POST /v1/tool/{tool}/builds``
(REFERENCE.md, "Builds API (v1)"; ``BuildRequest`` in ``services/builds/openapi.json``).

================================ ===========================================
flag                             body field
================================ ===========================================
URL (argument)                   ``source_url``
``--ref R``                      ``ref`` (default: the repository's HEAD)
``-i/--image-name N``            ``image_name`` (default: ``tool-<tool>``)
``-e/--envvar K=V`` (repeatable) ``envvars: {K: V}``
``-L/--use-latest-versions``     ``use_latest_versions: true``
``--use-deprecated-versions``    ``use_deprecated_versions: true``
================================ ===========================================

Only given flags are sent, so the API applies its defaults. Env var names follow the
upstream rule ``^[A-Za-z_][A-Za-z_0-9]{2,}$`` (REFERENCE.md: ``ENV_VARS``); the CLI checks them
before sending anything, the API checks everything again (URL, ref, image name).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from toolforge_cli.errors import UserError

__all__ = ["ENVVAR_NAME_PATTERN", "parse_envvars", "start_body"]

#: Build-time env var names (REFERENCE.md, "Builds API (v1)", ``ENV_VARS``).
ENVVAR_NAME_PATTERN = r"^[A-Za-z_][A-Za-z_0-9]{2,}$"


def parse_envvars(values: Sequence[str]) -> dict[str, str]:
    """``["NAME=value", ...]`` -> ``{NAME: value}``; the value is everything after the first
    ``=`` and may be empty or contain ``=``.

    Raises :class:`UserError` listing every bad item: no ``=``, a name that breaks
    :data:`ENVVAR_NAME_PATTERN`, or a name given twice.
    """
    result: dict[str, str] = {}
    problems: list[str] = []
    for item in values:
        name, sep, value = item.partition("=")
        if not sep:
            problems.append(f"-e {item!r}: expected NAME=VALUE")
            continue
        if not re.fullmatch(ENVVAR_NAME_PATTERN, name):
            problems.append(
                f"-e {name!r}: env var names have at least 3 characters, letters, digits "
                "and '_', and do not start with a digit"
            )
            continue
        if name in result:
            problems.append(f"-e {name!r}: given more than once")
            continue
        result[name] = value
    if problems:
        raise UserError("invalid options", details=problems)
    return result


def start_body(
    source_url: str,
    *,
    ref: str | None = None,
    image_name: str | None = None,
    envvars: Sequence[str] = (),
    use_latest_versions: bool = False,
    use_deprecated_versions: bool = False,
) -> dict[str, Any]:
    """The request body for the given flags (see the module table). Raises
    :class:`UserError` for bad ``-e`` items or an empty URL, ref or image name."""
    problems = [
        f"{flag} must not be empty"
        for flag, value in (("URL", source_url), ("--ref", ref), ("--image-name", image_name))
        if value is not None and not value.strip()
    ]
    if problems:
        raise UserError("invalid options", details=problems)
    body: dict[str, Any] = {"source_url": source_url}
    if ref is not None:
        body["ref"] = ref
    if image_name is not None:
        body["image_name"] = image_name
    parsed = parse_envvars(envvars)
    if parsed:
        body["envvars"] = parsed
    if use_latest_versions:
        body["use_latest_versions"] = True
    if use_deprecated_versions:
        body["use_deprecated_versions"] = True
    return body
