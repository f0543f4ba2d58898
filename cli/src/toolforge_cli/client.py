"""HTTP to the gateway with mutual TLS, shared by every API of the ``toolforge`` client.

Every answer of the platform APIs is a JSON object with ``messages: {info, warning, error}``.
An error has an HTTP status of 4xx or 5xx and one of two bodies: production's
``{"error": ["<message>", ...]}`` at the top level (REFERENCE.md, "The wire as production
serves it"), or the older envelope with ``messages.error`` filled ("Jobs API (v1)").
:class:`ApiClient` hands the ``messages`` of every answer to its ``on_messages`` callback (the
CLI prints them on stderr), returns the body of a success and raises for everything else:

- 4xx -> :class:`ApiClientError` (exit code 1), message = the body's first error;
- 5xx or an answer that is not a JSON object -> :class:`ApiServerError` (exit code 2);
- refused connection, failed TLS handshake, time-out -> :class:`TransportError` (exit 2)
  with a hint.

FastAPI's own ``{"detail": ...}`` bodies are understood too, for errors raised before a
handler runs.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Any

import httpx

from toolforge_cli import __version__
from toolforge_cli.config import Connection
from toolforge_cli.errors import CliError, InternalError, UserError

__all__ = [
    "ApiClient",
    "ApiClientError",
    "ApiError",
    "ApiServerError",
    "MessagesCallback",
    "TransportError",
    "error_from_response",
]

MessagesCallback = Callable[[Mapping[str, Any]], None]
_CONNECT_TIMEOUT = 10.0


class ApiError(CliError):
    """The API answered with an error; ``status`` is the HTTP status and ``messages`` the
    envelope's ``messages`` (empty lists when the body had none)."""

    def __init__(self, status: int, message: str, messages: Mapping[str, Any], **kw: Any):
        super().__init__(message, **kw)
        self.status = status
        self.messages = messages


class ApiClientError(ApiError, UserError):
    """HTTP 4xx: the request was wrong (exit code 1)."""


class ApiServerError(ApiError, InternalError):
    """HTTP 5xx, or an answer that is not the documented shape (exit code 2)."""


class TransportError(InternalError):
    """No answer: connection refused, TLS handshake failed, time-out (exit code 2)."""


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(e) for e in value if isinstance(e, str | int)]
    return []


def _error_texts(body: Any) -> tuple[list[str], Mapping[str, Any]]:
    """(error texts, messages) of an error body: the top-level ``error`` list (production),
    the envelope's ``messages.error`` (older answers), or FastAPI's ``detail`` (a string, or a
    list of ``{loc, msg}``); a body that is a JSON string is the error text."""
    if isinstance(body, str) and body.strip():
        return [body], {}
    if not isinstance(body, dict):
        return [], {}
    messages = body.get("messages")
    messages = messages if isinstance(messages, dict) else {}
    errors = _strings(body.get("error")) or _strings(messages.get("error"))
    if errors or messages:
        return errors, messages
    detail = body.get("detail")
    if isinstance(detail, str):
        return [detail], {}
    if isinstance(detail, list):
        texts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                texts.append(f"{loc}: {item.get('msg')}" if loc else str(item.get("msg")))
        return texts, {}
    return [], {}


def error_from_response(method: str, url: str, status: int, content: bytes) -> ApiError:
    """The :class:`ApiError` for an HTTP error answer (status >= 400, or an unexpected one)."""
    try:
        body = json.loads(content)
    except ValueError:
        body = None
    errors, messages = _error_texts(body)
    if not errors:
        text = content.decode("utf-8", "replace").strip()
        errors = [f"HTTP {status} from {method} {url}" + (f": {text[:300]}" if text else "")]
    cls = ApiClientError if 400 <= status < 500 else ApiServerError
    return cls(status, errors[0], messages, details=errors[1:])


def _ssl_error(exc: BaseException) -> ssl.SSLError | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


class ApiClient:
    """A connection to the gateway as one tool (``connection.tool``).

    Paths are relative to the gateway root, e.g. ``/jobs/v1/tool/<tool>/jobs``. Use as a
    context manager (or call :meth:`close`). ``on_messages`` receives the ``messages`` of
    every answer, successes and errors alike.
    """

    def __init__(
        self,
        connection: Connection,
        *,
        on_messages: MessagesCallback | None = None,
        transport: httpx.BaseTransport | None = None,
    ):
        self.connection = connection
        self._on_messages = on_messages
        self._http = httpx.Client(
            base_url=connection.api_url,
            verify=connection.ssl_context(),
            timeout=httpx.Timeout(connection.timeout, connect=_CONNECT_TIMEOUT),
            headers={"User-Agent": f"toolforge-cli/{__version__}", "Accept": "application/json"},
            follow_redirects=False,
            transport=transport,
        )

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    @property
    def tool(self) -> str:
        return self.connection.tool

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        report: bool = True,
    ) -> dict[str, Any]:
        """Send a request and return the JSON object of a 2xx answer.

        ``report=False`` keeps the ``messages`` of a success from ``on_messages`` (for
        polling); the info and warnings of an error are always reported (its errors are the
        exception's message and details). Raises :class:`ApiClientError` (4xx),
        :class:`ApiServerError` (5xx, 3xx, not a JSON object) or :class:`TransportError`.
        """
        url = self.connection.api_url + path
        with self._transport_errors():
            response = self._http.request(method, path, json=json_body, params=params)
        if response.status_code >= 300:
            error = error_from_response(method, url, response.status_code, response.content)
            self._report_error(error)
            raise error
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ApiServerError(
                response.status_code,
                f"unexpected answer from {method} {url}: not a JSON object",
                {},
            )
        if report:
            self._report(body.get("messages"))
        return body

    def stream_lines(
        self,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        follow: bool = False,
    ) -> Iterator[str]:
        """GET ``path`` and yield each non-empty line of the body as it arrives.

        With ``follow`` there is no read time-out: the stream lasts until the server ends it.
        Raises like :meth:`request` (an error answer is read whole first).
        """
        url = self.connection.api_url + path
        timeout = httpx.Timeout(
            self.connection.timeout,
            connect=_CONNECT_TIMEOUT,
            read=None if follow else self.connection.timeout,
        )
        with (
            self._transport_errors(),
            self._http.stream(
                "GET",
                path,
                params=params,
                timeout=timeout,
                headers={"Accept": "application/x-ndjson, application/json"},
            ) as response,
        ):
            if response.status_code >= 300:
                response.read()
                error = error_from_response("GET", url, response.status_code, response.content)
                self._report_error(error)
                raise error
            for line in response.iter_lines():
                if line.strip():
                    yield line

    def _report_error(self, error: ApiError) -> None:
        self._report({k: v for k, v in error.messages.items() if k in ("info", "warning")})

    def _report(self, messages: Any) -> None:
        if self._on_messages is not None and isinstance(messages, Mapping):
            self._on_messages(messages)

    def _transport_errors(self) -> _TransportErrors:
        return _TransportErrors(self.connection)


class _TransportErrors:
    """Maps httpx transport exceptions to :class:`TransportError` with a helpful hint."""

    def __init__(self, connection: Connection):
        self.connection = connection

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None or not isinstance(exc, httpx.TransportError):
            return
        raise self._failure(exc) from None

    def _failure(self, exc: httpx.TransportError) -> TransportError:
        conn = self.connection
        url = conn.api_url
        ssl_exc = _ssl_error(exc)
        if isinstance(ssl_exc, ssl.SSLCertVerificationError):
            return TransportError(
                f"TLS: the certificate of {url} was not accepted: "
                f"{ssl_exc.verify_message or ssl_exc.reason}",
                hint=f"the gateway's certificate is checked against the CA from "
                f"{conn.ca_source}; pass --ca FILE with the cluster CA, or fix --api-url",
            )
        if ssl_exc is not None:
            return TransportError(
                f"TLS with {url} failed: {ssl_exc.reason or ssl_exc}",
                hint=f"the gateway may have refused the client certificate {conn.cert} "
                "(expired, or not issued by the cluster CA?)",
            )
        if isinstance(exc, httpx.TimeoutException):
            return TransportError(
                f"no answer from {url} within {conn.timeout:g} seconds ({type(exc).__name__})",
                hint="try again later, or raise TOOLFORGE_TIMEOUT",
            )
        if isinstance(exc, httpx.ConnectError):
            return TransportError(
                f"cannot connect to {url}: {exc}",
                hint=f"is the gateway running? Locally start it with `make run`; elsewhere "
                f"set --api-url or TOOLFORGE_API_URL (this URL came from {conn.api_url_source})",
            )
        if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
            # With TLS 1.3 a server checks the client certificate after the handshake; when it
            # refuses it, the client only sees the connection close.
            return TransportError(
                f"{url} closed the connection without an answer ({exc})",
                hint=f"the gateway refuses client certificates it does not trust: is {conn.cert} "
                "the tool's current certificate, issued by the cluster CA? Otherwise the gateway "
                "may be restarting; try again",
            )
        return TransportError(f"connection to {url} failed: {type(exc).__name__}: {exc}")
