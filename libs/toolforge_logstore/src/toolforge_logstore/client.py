"""An asynchronous client of the log store (VictoriaLogs HTTP API), built on httpx.

- :meth:`LogStoreClient.query`: ``/select/logsql/query`` with a :class:`LogQuery`;
- :meth:`LogStoreClient.tail`: ``/select/logsql/tail`` with a :class:`TailQuery`, as an async
  iterator; closing it closes the response, and the store stops the query as soon as it sees
  the connection gone (VictoriaLogs querying docs);
- :meth:`LogStoreClient.insert`: ``/insert/jsonline`` with the collector's stream fields, for
  writers other than the collector (the logs API's write endpoint, benchmarks).

The store runs with TLS and HTTP Basic auth (``-httpAuth.*``; only ``/health`` is open), so a
:class:`LogStoreConfig` names the URL, the CA file and the credentials. Failures raise
:class:`LogStoreUnavailableError` (no connection, timeout, 5xx) or :class:`LogStoreError` (any other
refusal, with the store's message).
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import httpx

from toolforge_logstore import fields
from toolforge_logstore.logsql import (
    InvalidValueError,
    LogQuery,
    TailQuery,
    Timestamp,
    format_rfc3339_ns,
    parse_rfc3339_ns,
    to_ns,
)

__all__ = [
    "LogEntry",
    "LogStoreClient",
    "LogStoreConfig",
    "LogStoreError",
    "LogStoreUnavailableError",
    "NewLogEntry",
]

_JSONLINE: Final = "application/stream+json"


class LogStoreError(Exception):
    """The store refused a request; ``status`` is its HTTP status (0 without an answer)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class LogStoreUnavailableError(LogStoreError):
    """The store could not be reached, timed out, or answered with a 5xx status."""


@dataclass(frozen=True)
class LogStoreConfig:
    """Where the store is and how to authenticate: ``url`` (``https://host:port``), the CA
    file that verifies its certificate (``None``: the system CAs), HTTP Basic credentials,
    and the timeout of one request in seconds (a tail has no read timeout)."""

    url: str
    username: str
    password: str = field(repr=False)
    ca_file: Path | None = None
    timeout: float = 10.0


@dataclass(frozen=True)
class LogEntry:
    """One line read back: ``time_ns`` (nanoseconds since the epoch, the container runtime's
    timestamp), ``message`` (the line), and where it came from."""

    time_ns: int
    message: str
    namespace: str
    job: str | None
    pod: str | None
    container: str | None
    container_id: str | None
    stream_id: str

    @property
    def time(self) -> str:
        """``time_ns`` as RFC 3339 with nine fraction digits, UTC."""
        return format_rfc3339_ns(self.time_ns)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> LogEntry:
        """Parse one JSON line of the query or tail API. Raises :class:`LogStoreError` for a
        row without ``_time`` or ``_stream_id``."""
        try:
            time_ns = parse_rfc3339_ns(str(row[fields.TIME]))
            stream_id = str(row[fields.STREAM_ID])
        except (KeyError, ValueError) as exc:
            raise LogStoreError(f"malformed row from the store: {exc}") from exc

        def text(name: str) -> str | None:
            value = row.get(name)
            return str(value) if value not in (None, "") else None

        return cls(
            time_ns=time_ns,
            message=str(row.get(fields.MESSAGE, "")),
            namespace=str(row.get(fields.NAMESPACE, "")),
            job=text(fields.JOB),
            pod=text(fields.POD),
            container=text(fields.CONTAINER),
            container_id=text(fields.CONTAINER_ID),
            stream_id=stream_id,
        )


@dataclass(frozen=True)
class NewLogEntry:
    """One line to write: ``time`` (aware datetime or ns), the line, and its stream."""

    time: Timestamp
    message: str
    namespace: str
    job: str | None = None
    pod: str | None = None
    container: str | None = None

    def row(self) -> dict[str, str]:
        """The JSON object of ``/insert/jsonline``: a dict, so no field can appear twice (the
        store v1.52.2 crashes on a row that repeats a stream field, see ``docs/logs.md``)."""
        if not self.namespace:
            raise InvalidValueError("namespace must not be empty")
        row = {fields.TIME: format_rfc3339_ns(to_ns(self.time)), fields.MESSAGE: self.message}
        for name, value in (
            (fields.NAMESPACE, self.namespace),
            (fields.JOB, self.job),
            (fields.POD, self.pod),
            (fields.CONTAINER, self.container),
        ):
            if value:
                row[name] = value
        return row


class LogStoreClient:
    """The store's HTTP API. Use as ``async with LogStoreClient(config) as client: ...``."""

    def __init__(self, config: LogStoreConfig) -> None:
        self.config = config
        verify: ssl.SSLContext | bool = True
        if config.url.startswith("https://"):
            verify = ssl.create_default_context(
                cafile=str(config.ca_file) if config.ca_file else None
            )
        self._http = httpx.AsyncClient(
            base_url=config.url,
            auth=httpx.BasicAuth(config.username, config.password),
            verify=verify,
            timeout=config.timeout,
        )

    async def __aenter__(self) -> LogStoreClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def healthy(self) -> bool:
        """``GET /health`` answers 200 (needs no credentials)."""
        try:
            reply = await self._http.get("/health")
        except httpx.HTTPError:
            return False
        return reply.status_code == 200

    async def query(self, query: LogQuery) -> list[LogEntry]:
        """The lines of ``query``, ordered by ``(time_ns, stream_id)`` in its direction.
        Raises :class:`LogStoreError`."""
        try:
            reply = await self._http.post("/select/logsql/query", data=query.params())
        except httpx.HTTPError as exc:
            raise LogStoreUnavailableError(f"log store: {exc!r}") from exc
        _check(reply)
        entries = [LogEntry.from_row(json.loads(line)) for line in _json_lines(reply.content)]
        if query.uses_limit_argument:  # the store returns these unsorted
            entries.sort(key=lambda e: (e.time_ns, e.stream_id), reverse=True)
        return entries

    async def tail(self, query: TailQuery) -> AsyncGenerator[LogEntry, None]:
        """Lines of ``query`` as the store receives them, until the caller stops iterating
        (``aclose()`` on the iterator ends the request). Raises :class:`LogStoreError`."""
        timeout = httpx.Timeout(self.config.timeout, read=None)
        try:
            async with self._http.stream(
                "POST", "/select/logsql/tail", data=dict(query.params()), timeout=timeout
            ) as reply:
                if reply.status_code != 200:
                    await reply.aread()
                    _check(reply)
                pending = b""
                async for chunk in reply.aiter_bytes():
                    *complete, pending = (pending + chunk).split(b"\n")
                    for line in _json_lines(b"\n".join(complete)):
                        yield LogEntry.from_row(json.loads(line))
        except httpx.HTTPError as exc:
            raise LogStoreUnavailableError(f"log store: {exc!r}") from exc

    async def insert(self, entries: Iterable[NewLogEntry]) -> int:
        """Write ``entries`` (one request); returns how many were sent. The store makes them
        searchable within about a second. Raises :class:`LogStoreError`."""
        body = "".join(json.dumps(e.row(), ensure_ascii=False) + "\n" for e in entries)
        params = {
            "_stream_fields": ",".join(fields.STREAM_FIELDS),
            "_time_field": fields.TIME,
            "_msg_field": fields.MESSAGE,
        }
        try:
            # The content type matters: a form-encoded body would be consumed as form data
            # and nothing stored.
            reply = await self._http.post(
                "/insert/jsonline",
                params=params,
                content=body.encode(),
                headers={"Content-Type": _JSONLINE},
            )
        except httpx.HTTPError as exc:
            raise LogStoreUnavailableError(f"log store: {exc!r}") from exc
        _check(reply)
        return body.count("\n")


def _json_lines(body: bytes) -> list[bytes]:
    """The non-empty lines of a JSON-lines body, split at ``\n`` only: a JSON string may hold
    U+2028 and other characters that ``str.splitlines`` (and httpx's ``aiter_lines``) would
    split at."""
    return [line for line in body.split(b"\n") if line.strip()]


def _check(reply: httpx.Response) -> None:
    if reply.status_code == 200:
        return
    message = f"log store answered {reply.status_code}: {reply.text.strip()[:500]}"
    if reply.status_code >= 500:
        raise LogStoreUnavailableError(message, reply.status_code)
    raise LogStoreError(message, reply.status_code)
