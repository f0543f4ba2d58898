"""The gateway URL where upstream's clients find it, so that a tool's home configured for them
(REFERENCE.md, "The wire as production serves it") works with ``toolforge`` too.

Upstream's clients (``toolforge-weld`` 1.6.15, ``toolforge_weld.config``) take the URL from,
highest priority first:

1. the environment variable ``TOOL_TOOLFORGE_API_URL`` (:data:`ENV_VAR`);
2. ``api_gateway: {url: ...}`` in the YAML files of :func:`config_files`, read from the lowest
   priority to the highest, each file's top-level keys replacing the earlier files' (so the
   last file that has ``api_gateway`` decides): ``/etc/toolforge/common.yaml``,
   ``~/.toolforge.yaml``, ``~/.config/toolforge.yaml``, ``$XDG_CONFIG_HOME/toolforge.yaml``.

Upstream reads ``/etc/toolforge/<client>.yaml`` first as well (``jobs-cli.yaml``,
``builds.yaml``, ``envvars.yaml``: per-client settings such as endpoint prefixes); ``toolforge``
takes no per-client settings and does not read them. Missing files are skipped; an empty file
has no settings. ``toolforge`` asks this module only when neither ``--api-url`` nor
``TOOLFORGE_API_URL`` is given (:func:`toolforge_cli.config.load_settings`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from toolforge_cli.errors import UserError

__all__ = [
    "ENV_VAR",
    "SYSTEM_CONFIG_DIR",
    "UpstreamConfigError",
    "config_files",
    "upstream_api_url",
]

#: The environment variable upstream's clients read first.
ENV_VAR = "TOOL_TOOLFORGE_API_URL"
#: Where Toolforge puts the clients' system-wide configuration.
SYSTEM_CONFIG_DIR = Path("/etc/toolforge")


class UpstreamConfigError(UserError):
    """A configuration file cannot be read or has a wrong shape (exit code 1)."""


def config_files(system_dir: Path | None = None) -> list[Path]:
    """The files upstream reads the gateway URL from, lowest priority first. ``~`` is
    ``$HOME``; the ``$XDG_CONFIG_HOME`` one only when that variable is set."""
    home = Path.home()
    files = [
        (system_dir or SYSTEM_CONFIG_DIR) / "common.yaml",
        home / ".toolforge.yaml",
        home / ".config" / "toolforge.yaml",
    ]
    xdg = os.environ.get("XDG_CONFIG_HOME")
    if xdg:
        files.append(Path(xdg) / "toolforge.yaml")
    return files


def _read(path: Path) -> dict[str, Any]:
    """The top-level mapping of a config file; ``{}`` when missing or empty."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise UpstreamConfigError(
            f"cannot read configuration file {path}: {getattr(exc, 'strerror', None) or exc}"
        ) from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UpstreamConfigError(f"configuration file {path} is not valid YAML: {exc}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise UpstreamConfigError(
            f"configuration file {path} is not a mapping (expected e.g. "
            "'api_gateway: {url: https://...}')"
        )
    return doc


def upstream_api_url(system_dir: Path | None = None) -> tuple[str, str] | None:
    """``(url, where it came from)`` as upstream's clients would find it, or ``None`` when
    neither :data:`ENV_VAR` nor any file sets it. The URL is returned as written (the caller
    checks it).

    Raises:
        UpstreamConfigError: a file exists but is not readable, not YAML, not a mapping, or
            its ``api_gateway`` is not a mapping with a string ``url``.
    """
    env = os.environ.get(ENV_VAR)
    if env:
        return env, ENV_VAR
    gateway: Any = None
    source = ""
    for path in config_files(system_dir):
        doc = _read(path)
        if "api_gateway" in doc:  # a later file's key replaces the earlier one, as upstream
            gateway, source = doc["api_gateway"], str(path)
    if gateway is None:
        return None
    if not isinstance(gateway, dict):
        raise UpstreamConfigError(f"{source}: api_gateway must be a mapping with 'url'")
    url = gateway.get("url")
    if url is None:
        return None
    if not isinstance(url, str):
        raise UpstreamConfigError(f"{source}: api_gateway.url must be a string")
    return url, f"{source} (api_gateway.url)"
