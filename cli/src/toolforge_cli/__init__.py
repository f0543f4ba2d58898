"""The ``toolforge`` command-line client (REFERENCE.md, "Jobs API (v1)", CLI paragraph)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("toolforge-cli")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"
