"""Read access to the image registry: does a tool's image exist, which images has a tool.

The jobs API reads the registry the build service pushes to (upstream: Harbor; locally the
CNCF distribution registry's read-only pull endpoint) with a **pull-only** account, never with
the build service's push credentials (settings ``registry_*``). The calls are those of the OCI
distribution spec v1.1 / Docker Registry HTTP API V2:

- ``HEAD /v2/<name>/manifests/<tag or digest>`` with an ``Accept`` of the image manifest and
  index types: 200 exists, 404 does not;
- ``GET /v2/_catalog?n=&last=`` (repositories; served by distribution and Harbor) and
  ``GET /v2/<name>/tags/list?n=&last=``, paginated with a ``Link: <...?last=x>; rel="next"``
  header (RFC 8288); only its ``last`` value is used, never its host, so the credentials go
  to the configured registry only.

Errors (nothing of the registry's body is passed on; details are logged without
credentials): unreachable, timed out, 429/502/503/504 ->
:class:`~toolforge_kit.errors.UnavailableError` (503 with ``Retry-After``); our credentials
refused (401/403), a TLS failure or any other answer -> :class:`~toolforge_kit.errors.ClusterError`
(502).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, quote, urlsplit

import httpx

from toolforge_jobs.builtimages import BuiltImage, repository_prefix
from toolforge_jobs.errors import JobSpecError
from toolforge_jobs.models import ImageSummary
from toolforge_jobs.settings import JobsSettings
from toolforge_kit.errors import APIError, ClusterError, UnavailableError

__all__ = ["MANIFEST_ACCEPT", "BuiltImageRegistry", "next_last"]

_log = logging.getLogger(__name__)

MANIFEST_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)
_PAGE = 1000
_RETRYABLE = frozenset({429, 502, 503, 504})


def next_last(link_header: str | None) -> str | None:
    """The ``last`` query value of the ``rel="next"`` link of a ``Link`` header, or ``None``."""
    if not link_header:
        return None
    for link in httpx.Response(200, headers={"Link": link_header}).links.values():
        if link.get("rel") == "next":
            values = parse_qs(urlsplit(link.get("url", "")).query).get("last")
            return values[0] if values else None
    return None


class BuiltImageRegistry:
    """The build service images of tools, as the pull endpoint serves them.

    ``pull_address`` (``host[:port]``) is what pod image references start with;
    ``client`` talks to the registry's HTTP API (base URL, TLS, the pull account).
    """

    def __init__(self, client: httpx.AsyncClient, pull_address: str, retry_after: int) -> None:
        self._client = client
        self.pull_address = pull_address
        self._retry_after = retry_after

    @classmethod
    def from_settings(cls, settings: JobsSettings) -> BuiltImageRegistry | None:
        """The registry of ``settings``; ``None`` when ``registry_pull_address`` is unset."""
        address = settings.registry_pull_address
        if address is None:
            return None
        verify: ssl.SSLContext | bool = True
        if settings.registry_ca_file is not None:
            verify = ssl.create_default_context(cafile=str(settings.registry_ca_file))
        auth = None
        if settings.registry_username is not None and settings.registry_password is not None:
            auth = httpx.BasicAuth(
                settings.registry_username, settings.registry_password.get_secret_value()
            )
        client = httpx.AsyncClient(
            base_url=settings.registry_url or f"https://{address}",
            verify=verify,
            auth=auth,
            timeout=settings.registry_timeout_seconds,
            follow_redirects=False,
        )
        return cls(client, address, settings.retry_after_seconds)

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def _request(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        try:
            reply = await self._client.request(method, path, **kwargs)  # type: ignore[arg-type]
        except httpx.TransportError as exc:
            if isinstance(exc, httpx.ConnectError) and "CERTIFICATE_VERIFY_FAILED" in str(exc):
                _log.error("registry %s %s: TLS verification failed: %s", method, path, exc)
                raise ClusterError("the image registry's certificate is not trusted") from exc
            _log.warning("registry %s %s: %s", method, path, exc)
            raise UnavailableError(
                "the image registry cannot be reached now", retry_after=self._retry_after
            ) from exc
        if reply.status_code in _RETRYABLE:
            _log.warning("registry %s %s: HTTP %s", method, path, reply.status_code)
            raise UnavailableError(
                "the image registry is unavailable now", retry_after=self._retry_after
            )
        return reply

    def _unexpected(self, method: str, path: str, reply: httpx.Response) -> ClusterError:
        _log.error("registry %s %s: unexpected HTTP %s", method, path, reply.status_code)
        if reply.status_code in (401, 403):
            return ClusterError("the image registry refused the jobs API's pull credentials")
        return ClusterError("the image registry gave an unexpected answer")

    async def _manifest_exists(self, repository: str, reference: str) -> bool:
        path = f"/v2/{repository}/manifests/{quote(reference, safe=':')}"
        reply = await self._request("HEAD", path, headers={"Accept": MANIFEST_ACCEPT})
        if reply.status_code == 200:
            return True
        if reply.status_code == 404:
            return False
        raise self._unexpected("HEAD", path, reply)

    async def resolve(self, image: BuiltImage) -> str:
        """The pod image reference of ``image`` at the pull endpoint, once the registry has
        shown that its tag (and its digest, when pinned) exist.

        Raises:
            JobSpecError: (400, ``imagename``) no such tag or digest in the registry.
            UnavailableError, ClusterError: see the module docstring.
        """
        if not await self._manifest_exists(image.repository, image.tag):
            raise JobSpecError(
                "imagename",
                f"{image.shortname!r} does not exist in the registry (no tag {image.tag!r} "
                f"in {image.repository}); see `toolforge jobs images` and `toolforge build list`",
            )
        if image.digest is not None and not await self._manifest_exists(
            image.repository, image.digest
        ):
            raise JobSpecError(
                "imagename",
                f"{image.shortname!r} does not exist in the registry (no manifest {image.digest})",
            )
        return image.reference(self.pull_address)

    async def _pages(self, path: str, key: str) -> AsyncIterator[str]:
        last: str | None = None
        while True:
            params = {"n": str(_PAGE), **({"last": last} if last else {})}
            reply = await self._request("GET", path, params=params)
            if reply.status_code == 404 and key == "tags":
                return  # the repository went away meanwhile
            if reply.status_code != 200:
                raise self._unexpected("GET", path, reply)
            try:
                items = reply.json().get(key) or []
            except (ValueError, AttributeError) as exc:
                raise self._unexpected("GET", path, reply) from exc
            for item in items:
                if isinstance(item, str):
                    yield item
            last = next_last(reply.headers.get("Link"))
            if last is None or not items:
                return

    async def tool_images(self, tool: str) -> list[BuiltImage]:
        """Every tagged image of ``tool`` (repositories ``tool-<tool>/...``), sorted by
        repository and tag.

        Raises:
            UnavailableError, ClusterError: see the module docstring.
        """
        prefix = repository_prefix(tool)
        found = []
        async for repository in self._pages("/v2/_catalog", "repositories"):
            if not repository.startswith(prefix):
                continue
            async for tag in self._pages(f"/v2/{repository}/tags/list", "tags"):
                found.append(BuiltImage(tool, repository[len(prefix) :], tag))
        return sorted(found, key=lambda i: (i.name, i.tag))

    async def summaries(self, tool: str) -> tuple[list[ImageSummary], list[str]]:
        """:meth:`tool_images` as entries of the images endpoint (``image`` is the pull
        reference), and warnings: when the registry cannot be read, no entries and one
        warning saying so (the image-config list is still answered)."""
        try:
            built = await self.tool_images(tool)
        except APIError as exc:
            return [], [f"the tool's own images cannot be listed now: {exc.message}"]
        address = self.pull_address
        return [ImageSummary(shortname=b.shortname, image=b.reference(address)) for b in built], []
