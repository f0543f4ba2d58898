"""Structured logging: one JSON object per line, through the standard :mod:`logging` module.

The access log (logger ``toolforge_gateway.access``) writes one record per request whose
``access`` attribute holds the fields; :class:`JSONFormatter` puts them at the top level::

    {"time": "2026-01-01T12:00:00.123Z", "level": "INFO", "logger": "toolforge_gateway.access",
     "message": "GET /jobs/v1/tool/foo/jobs 200", "request_id": "...", "identity": "foo",
     "tool": "foo", "route": "jobs", "method": "GET", "path": "/jobs/v1/tool/foo/jobs",
     "status": 200, "duration_ms": 3.2, "upstream_error": null, "client": "10.0.0.1"}
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Any

__all__ = ["ACCESS_LOGGER", "JSONFormatter", "configure_logging"]

ACCESS_LOGGER = "toolforge_gateway.access"
# Attributes every LogRecord has; anything else came in through ``extra=``.
_STANDARD_ATTRIBUTES = frozenset(
    logging.LogRecord("", 0, "", 0, None, None, None).__dict__.keys() | {"message", "asctime"}
)


class JSONFormatter(logging.Formatter):
    """Formats a record as one JSON line: time (UTC, ISO 8601), level, logger, message, any
    ``extra=`` attributes (the ``access`` dict is merged in) and the exception, if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key == "access" and isinstance(value, dict):
                entry.update(value)
            elif key not in _STANDARD_ATTRIBUTES:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str) -> None:
    """Send every log record (gateway, uvicorn) to stderr as JSON lines at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
