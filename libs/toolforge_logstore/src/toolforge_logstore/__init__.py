"""Typed client of the platform's log store (VictoriaLogs).

- :mod:`toolforge_logstore.fields`: the field names the collector writes (the contract);
- :mod:`toolforge_logstore.logsql`: :class:`StreamSelector`, :class:`LogQuery`,
  :class:`TailQuery`: LogsQL in which names are always quoted values;
- :mod:`toolforge_logstore.client`: :class:`LogStoreClient` (query, tail, insert).
"""

from toolforge_logstore.client import (
    LogEntry,
    LogStoreClient,
    LogStoreConfig,
    LogStoreError,
    LogStoreUnavailableError,
    NewLogEntry,
)
from toolforge_logstore.logsql import (
    Direction,
    InvalidValueError,
    LogQuery,
    StreamSelector,
    TailQuery,
    quote,
)

__all__ = [
    "Direction",
    "InvalidValueError",
    "LogEntry",
    "LogQuery",
    "LogStoreClient",
    "LogStoreConfig",
    "LogStoreError",
    "LogStoreUnavailableError",
    "NewLogEntry",
    "StreamSelector",
    "TailQuery",
    "quote",
]
