"""Pure builders of a published job's web route (no I/O): ``publish: "/"`` -> an ``HTTPRoute``.

A continuous job with a tcp ``port`` and ``publish: "/"`` is served at
``https://<tool>.<public domain>/`` (REFERENCE.md, "The wire as production serves it") through
the platform's Gateway (Gateway API ``gateway.networking.k8s.io/v1``). The jobs API creates,
acting as the tool, after the job's Service (docs/web-traffic.md, "Phase 2"):

- ``HTTPRoute <job>`` in ``tool-<tool>`` with the job's labels (those of its Service);
- one ``parentRef`` to the Gateway ``gateway_namespace/gateway_name`` (group, kind and
  namespace written out: the tool route admission policy refuses a route without them,
  ``toolforge_admin.web_policies``);
- ``hostnames: ["<tool>.<public_domain>"]``, the only host the policy lets the tool name;
- one rule, ``PathPrefix /`` -> Service ``<job>`` on the job's port.

:class:`WebSettings` holds the platform's side (public domain, Gateway, the URL's form);
:func:`build_route` builds the route, :func:`public_url` the URL users see,
:func:`published_paths` and :func:`path_holder` read the routes a tool already has, for the
rule "at most one published job per host path of a tool" (409 naming the job that holds it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from toolforge_auth.tools import JOBS_MANAGER, MANAGED_BY_LABEL
from toolforge_jobs.builders import ToolContext, job_labels
from toolforge_jobs.models import JobSpec

__all__ = [
    "API_VERSION",
    "GATEWAY_GROUP",
    "KIND",
    "WebSettings",
    "build_route",
    "path_holder",
    "public_url",
    "published_paths",
]

GATEWAY_GROUP = "gateway.networking.k8s.io"
API_VERSION = f"{GATEWAY_GROUP}/v1"
KIND = "HTTPRoute"
_NAME_LABEL = "app.kubernetes.io/name"


@dataclass(frozen=True)
class WebSettings:
    """The platform's web side, from the jobs API settings.

    ``public_domain``: tools are served at ``<tool>.<public_domain>``; ``gateway_namespace``
    and ``gateway_name``: the Gateway every route attaches to; ``url_template``: the public
    URL of a tool's host without the path, with ``{tool}`` and ``{domain}``
    (``https://{tool}.{domain}`` in production; locally ``http://{tool}.{domain}:30000``,
    the NodePort).

    Raises (on construction):
        ValueError: an empty field, or a ``url_template`` that is not ``http(s)://...``
            with only the ``{tool}`` and ``{domain}`` fields.
    """

    public_domain: str
    gateway_namespace: str
    gateway_name: str
    url_template: str = "https://{tool}.{domain}"

    def __post_init__(self) -> None:
        for field in ("public_domain", "gateway_namespace", "gateway_name"):
            if not getattr(self, field):
                raise ValueError(f"{field} must not be empty")
        try:
            example = self.url_template.format(tool="t", domain=self.public_domain)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"url_template {self.url_template!r} may only use {{tool}} and {{domain}} ({exc})"
            ) from None
        if not example.startswith(("http://", "https://")) or "{tool}" not in self.url_template:
            raise ValueError(
                f"url_template must be an http(s) URL with {{tool}} (got {self.url_template!r})"
            )

    def host(self, tool: str) -> str:
        """``<tool>.<public_domain>``: the one host a tool's routes may name."""
        return f"{tool}.{self.public_domain}"


def public_url(tool: str, path: str, web: WebSettings) -> str:
    """The URL a job published at ``path`` answers at: ``url_template`` + ``path``
    (``https://mytool.toolforge.org/``)."""
    return web.url_template.format(tool=tool, domain=web.public_domain).rstrip("/") + path


def build_route(spec: JobSpec, tool: ToolContext, web: WebSettings) -> dict[str, Any] | None:
    """The ``HTTPRoute`` of ``spec`` (module docstring), or ``None`` when it is not published.

    Raises:
        ValueError: ``spec`` is published without a port (validation of
            :class:`~toolforge_jobs.models.JobSpec` never lets that through).
    """
    if spec.publish is None:
        return None
    if spec.port is None:
        raise ValueError(f"job {spec.name} is published without a port")
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": spec.name,
            "namespace": tool.namespace,
            "labels": job_labels(spec, tool),
        },
        "spec": {
            "parentRefs": [
                {
                    "group": GATEWAY_GROUP,
                    "kind": "Gateway",
                    "namespace": web.gateway_namespace,
                    "name": web.gateway_name,
                }
            ],
            "hostnames": [web.host(tool.name)],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": spec.publish}}],
                    "backendRefs": [{"name": spec.name, "port": spec.port}],
                }
            ],
        },
    }


def published_paths(route: dict[str, Any]) -> set[str]:
    """The path prefixes an ``HTTPRoute`` serves (a rule without ``matches`` serves ``/``)."""
    paths: set[str] = set()
    for rule in (route.get("spec") or {}).get("rules") or []:
        matches = rule.get("matches") or [{}]
        for match in matches:
            path = (match or {}).get("path") or {}
            paths.add(str(path.get("value") or "/"))
    return paths


def path_holder(routes: list[dict[str, Any]], job: str, path: str) -> str | None:
    """Who already serves ``path`` with a route in ``routes`` other than ``job``'s own:
    ``"job 'x'"`` for a route of the jobs framework (its ``app.kubernetes.io/name``),
    ``"HTTPRoute 'x'"`` for another one; ``None`` when the path is free."""
    for route in routes:
        metadata = route.get("metadata") or {}
        if metadata.get("name") == job or path not in published_paths(route):
            continue
        labels = metadata.get("labels") or {}
        if labels.get(MANAGED_BY_LABEL) == JOBS_MANAGER and labels.get(_NAME_LABEL):
            return f"job '{labels[_NAME_LABEL]}'"
        return f"HTTPRoute '{metadata.get('name')}'"
    return None
