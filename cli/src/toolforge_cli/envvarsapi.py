"""The envvars API v1 as seen through the gateway: ``/envvars/v1/tool/<tool>/...``
(REFERENCE.md, "Envvars"; the gateway strips ``/envvars``). The answers are the shapes the
upstream client ``toolforge-envvars`` 0.0.16 reads:

- ``GET /envvars`` -> ``{envvars: [{name, value}], messages}``;
- ``GET|DELETE /envvars/{name}``, ``POST /envvars`` -> ``{envvar: {name, value}, messages}``
  (DELETE answers the last value);
- ``GET /quotas`` -> ``{quota: {quota, used}, messages}``.

Errors (4xx/5xx, ``{"error": [...]}``) are raised by :class:`~toolforge_cli.client.ApiClient`:
400 for a name or value that breaks a rule (the message names it), 404 ``Envvar 'X' does not
exist``, 409 over the quota.
"""

from __future__ import annotations

from pydantic import Field

from toolforge_cli.apibase import Answer, ApiBase, WireModel

__all__ = [
    "Envvar",
    "EnvvarAnswer",
    "EnvvarList",
    "EnvvarsApi",
    "EnvvarsQuota",
    "EnvvarsQuotaAnswer",
]


class Envvar(WireModel):
    """One variable: ``name`` and its ``value`` (a secret: shown only when asked)."""

    name: str
    value: str = ""


class EnvvarList(Answer):
    """GET ``/envvars``: every variable of the tool (the API sorts them by name)."""

    envvars: list[Envvar] = Field(default_factory=list)


class EnvvarAnswer(Answer):
    """One variable: GET ``/envvars/{name}``, POST ``/envvars``, DELETE ``/envvars/{name}``."""

    envvar: Envvar


class EnvvarsQuota(WireModel):
    """How many variables the tool may have (``quota``) and has (``used``)."""

    quota: int
    used: int

    @property
    def available(self) -> int:
        """``quota - used``, as upstream's client computes it (negative when the quota was
        lowered below what the tool has)."""
        return self.quota - self.used


class EnvvarsQuotaAnswer(Answer):
    """GET ``/quotas``."""

    quota: EnvvarsQuota


class EnvvarsApi(ApiBase):
    """The envvars API for the client's tool; see :class:`~toolforge_cli.apibase.ApiBase`."""

    name = "envvars"

    def list_envvars(self, *, report: bool = True) -> EnvvarList:
        """GET ``/envvars``: every variable with its value."""
        return self.call(EnvvarList, "GET", self.path("envvars"), report=report)

    def get(self, name: str, *, report: bool = True) -> EnvvarAnswer:
        """GET ``/envvars/{name}``; 404 when the tool has no such variable, 400 for a name
        that breaks the rule."""
        return self.call(EnvvarAnswer, "GET", self.path("envvars", name), report=report)

    def create(self, name: str, value: str, *, report: bool = True) -> EnvvarAnswer:
        """POST ``/envvars`` with ``{name, value}``: create or replace; 400 for a bad name
        (pattern, reserved) or value (empty, NUL, too long), 409 for a new name over the
        quota."""
        return self.call(
            EnvvarAnswer,
            "POST",
            self.path("envvars"),
            json_body={"name": name, "value": value},
            report=report,
        )

    def delete(self, name: str, *, report: bool = True) -> EnvvarAnswer:
        """DELETE ``/envvars/{name}``: the answer holds the last value; 404 when absent."""
        return self.call(EnvvarAnswer, "DELETE", self.path("envvars", name), report=report)

    def quota(self, *, report: bool = True) -> EnvvarsQuotaAnswer:
        """GET ``/quotas``."""
        return self.call(EnvvarsQuotaAnswer, "GET", self.path("quotas"), report=report)
