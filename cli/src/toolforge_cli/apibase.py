"""What every platform API client of the ``toolforge`` CLI shares: the typed answer base and
the per-tool base path (REFERENCE.md, "Identity and the gateway": every tool route is
``/<api>/v1/tool/<tool>/...``, the gateway strips ``/<api>``).

Answers are pydantic models that are tolerant of what they do not know:

- fields the CLI does not read are ignored (``extra="ignore"``), so a newer API that adds
  fields does not break the client;
- every field the API may leave out has a default: production's jobs API omits fields that do
  not apply to a job's type (REFERENCE.md, "The wire as production serves it"), older answers
  send ``null`` for them; both read the same.

Each answer keeps the decoded JSON body it was made from (:attr:`Answer.raw`), so
``-o json`` prints the API's answer as it came, not a re-serialisation.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Self, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from toolforge_cli.client import ApiClient, ApiServerError

__all__ = [
    "Answer",
    "ApiBase",
    "Messages",
    "Quota",
    "QuotaAnswer",
    "QuotaCategory",
    "QuotaItem",
    "WireModel",
]

A = TypeVar("A", bound="Answer")


class WireModel(BaseModel):
    """Base of every object read from an API: unknown fields are ignored, ``null`` and absent
    read alike (each optional field defaults to ``None`` or an empty value)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Messages(WireModel):
    """``messages: {info, warning, error}``: lists of strings, each possibly absent."""

    info: list[str] = Field(default_factory=list)
    warning: list[str] = Field(default_factory=list)
    error: list[str] = Field(default_factory=list)


class Answer(WireModel):
    """A 2xx answer body: a JSON object with ``messages`` (absent: none)."""

    messages: Messages = Field(default_factory=Messages)
    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    @property
    def raw(self) -> dict[str, Any]:
        """The decoded JSON body, as the API sent it (for ``-o json``)."""
        return self._raw

    @classmethod
    def from_body(cls, body: Mapping[str, Any], *, api: str = "the") -> Self:
        """Validate a decoded answer body. Raises :class:`ApiServerError` (exit code 2)
        naming ``api`` and the first wrong field when the body is not of this shape."""
        try:
            answer = cls.model_validate(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            raise ApiServerError(
                200,
                f"unexpected answer from the {api} API: {where}: {first['msg']}",
                {},
                details=[f"{len(exc.errors())} problem(s) in the answer"],
            ) from None
        answer._raw = dict(body)
        return answer


class QuotaItem(WireModel):
    """One quota line: human-readable quantities as the API formats them. The builds API adds
    ``available`` and ``capacity`` (``"12%"``); older builds APIs sent ``limit_bytes`` and
    ``used_bytes`` (ignored: ``-o json`` shows them)."""

    name: str
    limit: str | int | float | None = None
    used: str | int | float | None = None
    available: str | int | float | None = None
    capacity: str | None = None


class QuotaCategory(WireModel):
    name: str = ""
    items: list[QuotaItem] = Field(default_factory=list)


class Quota(WireModel):
    """``{categories: [{name, items: [...]}]}``, the quota shape of the jobs and builds APIs."""

    categories: list[QuotaCategory] = Field(default_factory=list)


class QuotaAnswer(Answer):
    """GET ``/quotas``."""

    quota: Quota


class ApiBase:
    """One platform API for the client's tool: paths under ``/<name>/v1/tool/<tool>``.

    Subclasses add one method per endpoint; each returns an :class:`Answer` subclass and
    raises what :class:`~toolforge_cli.client.ApiClient` raises (4xx -> exit 1,
    5xx/transport -> exit 2), plus :class:`ApiServerError` for an answer of the wrong shape.
    """

    #: The gateway route of the API (first path segment), e.g. ``jobs``.
    name: str = ""

    def __init__(self, client: ApiClient):
        self.client = client
        self.base = f"/{self.name}/v1/tool/{quote(client.tool, safe='')}"

    def path(self, *segments: str) -> str:
        """``base/segment/...``, each segment percent-encoded (a name cannot add a level)."""
        return "/".join([self.base, *(quote(s, safe="") for s in segments)])

    def call(
        self,
        model: type[A],
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        report: bool = True,
    ) -> A:
        """Send a request and validate the answer as ``model``. ``report=False`` keeps the
        answer's messages from being printed (polling, or a command that prints them
        itself)."""
        body = self.client.request(method, path, json_body=json_body, params=params, report=report)
        return model.from_body(body, api=self.name)

    def lines(
        self, path: str, *, params: Mapping[str, str] | None = None, follow: bool = False
    ) -> Iterator[str]:
        """The non-empty lines of a streamed (NDJSON) answer, as they arrive."""
        return self.client.stream_lines(path, params=params, follow=follow)
