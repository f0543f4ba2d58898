"""A client of the image registry's HTTP API, for ``/quotas`` (storage used) and ``/clean``.

The calls are those of the Docker Registry HTTP API V2, which the OCI distribution spec
(v1.1, "Pull", "Content discovery", "Content management") standardises:

- ``GET /v2/_catalog?n=&last=`` lists repositories (Docker Registry API, "Listing
  Repositories"; not part of the OCI spec, served by distribution and Harbor);
- ``GET /v2/<name>/tags/list?n=&last=`` lists a repository's tags;
- both paginate with ``n``/``last`` and a ``Link: <...?last=x&n=y>; rel="next"`` header
  (RFC 8288); only the ``last`` value of that link is used, never its host, so credentials are
  sent to the configured registry only;
- ``GET /v2/<name>/manifests/<reference>`` with an ``Accept`` of the OCI image manifest and
  index and the Docker v2 manifest and manifest list types; the digest is the SHA-256 of the
  body (checked against ``Docker-Content-Digest`` when the registry sends it);
- ``DELETE /v2/<name>/manifests/<digest>`` (202 Accepted; the registry must allow deletes:
  distribution's ``storage.delete.enabled``).

Errors map to the API's typed errors, and no registry body is ever passed on:
unreachable, timed out, 429 or 502/503/504 -> :class:`~toolforge_builds.errors.UnavailableError`
(503 with ``Retry-After``); 401/403 (our credentials refused), 405 on delete, a TLS
verification failure or anything unexpected -> :class:`~toolforge_builds.errors.RegistryError`
(502, details logged without credentials).

Authentication is HTTP Basic, sent with every request (distribution's htpasswd access
controller). Registries that answer 401 with a ``Bearer`` challenge (token auth, e.g. Harbor)
are not supported yet; that shows as a :class:`RegistryError`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import ssl
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from toolforge_builds.errors import RegistryError
from toolforge_builds.settings import BuildsSettings
from toolforge_kit.errors import UnavailableError

__all__ = [
    "IMAGE_INDEX_TYPES",
    "IMAGE_MANIFEST_TYPES",
    "MANIFEST_ACCEPT",
    "Blob",
    "ImageManifest",
    "RegistryClient",
    "format_bytes",
    "next_last",
    "parse_manifest",
    "storage_used",
    "tool_repository_prefix",
]

_log = logging.getLogger(__name__)

#: Single-platform image manifests: ``config`` + ``layers`` descriptors (OCI image spec
#: "Image Manifest"; Docker Image Manifest V2, Schema 2).
IMAGE_MANIFEST_TYPES = frozenset(
    {
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    }
)
#: Multi-platform indexes: ``manifests`` descriptors of child manifests (OCI image spec
#: "Image Index"; Docker manifest list).
IMAGE_INDEX_TYPES = frozenset(
    {
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    }
)
MANIFEST_ACCEPT = ", ".join(sorted(IMAGE_MANIFEST_TYPES | IMAGE_INDEX_TYPES))

#: Repository name (OCI distribution spec, "Pulling manifests": ``<name>``).
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
#: Tag (OCI distribution spec: ``[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}``).
_TAG_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
#: Digest (OCI image spec "Digests": ``algorithm:encoded``).
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
_RETRYABLE = frozenset({429, 502, 503, 504})
_IEC = (("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10))


def tool_repository_prefix(tool: str) -> str:
    """``tool-<tool>/``: every image of ``tool`` is ``<registry>/tool-<tool>/<name>:<tag>``
    (REFERENCE.md "Builds API (v1)", ``APP_IMAGE``)."""
    return f"tool-{tool}/"


def format_bytes(size: int) -> str:
    """Bytes for humans with the largest binary (IEC) suffix not above the value and two
    decimals, as quotas are shown upstream: ``1073741824`` -> ``"1.00Gi"``, ``1536`` ->
    ``"1.50Ki"``, ``512`` -> ``"512"``."""
    for suffix, unit in _IEC:
        if size >= unit:
            return f"{size / unit:.2f}{suffix}"
    return str(size)


def next_last(link_header: str | None) -> str | None:
    """The ``last`` query value of the ``rel="next"`` link of a ``Link`` header (RFC 8288),
    or ``None`` when there is no next page. Only that value is used, never the link's host."""
    if not link_header:
        return None
    for link in httpx.Response(200, headers={"Link": link_header}).links.values():
        if link.get("rel") == "next":
            values = parse_qs(urlsplit(link.get("url", "")).query).get("last")
            return values[0] if values else None
    return None


@dataclass(frozen=True)
class Blob:
    """A content-addressed blob an image manifest refers to (config or layer)."""

    digest: str
    size: int


@dataclass(frozen=True)
class ImageManifest:
    """A manifest as far as storage and deletion need it: its own digest, its media type,
    the blobs it refers to (image manifest) and its children (index)."""

    digest: str
    media_type: str
    blobs: tuple[Blob, ...] = ()
    children: tuple[str, ...] = field(default=())


def _descriptor(value: Any, where: str) -> Blob:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} is not a descriptor")
    digest, size = value.get("digest"), value.get("size")
    if not isinstance(digest, str) or not _DIGEST_RE.match(digest):
        raise ValueError(f"{where} has no valid digest")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValueError(f"{where} has no valid size")
    return Blob(digest, size)


def parse_manifest(body: bytes, content_type: str | None, digest: str) -> ImageManifest:
    """Parse a manifest body (JSON). The media type is the body's ``mediaType`` or else the
    ``Content-Type`` (without parameters). Image manifests give ``config`` + ``layers`` blobs;
    indexes give the child digests of ``manifests``; other types (e.g. Docker schema 1)
    give neither. Pure.

    Raises :class:`ValueError` for a body that is not a JSON object or has malformed
    descriptors.
    """
    document = json.loads(body)
    if not isinstance(document, dict):
        raise ValueError("the manifest is not a JSON object")
    media_type = document.get("mediaType")
    if not isinstance(media_type, str) or not media_type:
        media_type = (content_type or "").split(";")[0].strip()
    if media_type in IMAGE_MANIFEST_TYPES:
        layers = document.get("layers", [])
        if not isinstance(layers, list):
            raise ValueError("layers is not a list")
        blobs = [_descriptor(document.get("config"), "config")]
        blobs += [_descriptor(layer, f"layers[{i}]") for i, layer in enumerate(layers)]
        return ImageManifest(digest, media_type, blobs=tuple(blobs))
    if media_type in IMAGE_INDEX_TYPES:
        manifests = document.get("manifests", [])
        if not isinstance(manifests, list):
            raise ValueError("manifests is not a list")
        children = [_descriptor(m, f"manifests[{i}]").digest for i, m in enumerate(manifests)]
        return ImageManifest(digest, media_type, children=tuple(children))
    return ImageManifest(digest, media_type)


def storage_used(manifests: Iterable[ImageManifest]) -> int:
    """Bytes of the distinct blobs (config and layers) of ``manifests``, each digest counted
    once however many manifests, tags or repositories share it. Manifest bodies themselves
    are not counted. Pure."""
    sizes: dict[str, int] = {}
    for manifest in manifests:
        for blob in manifest.blobs:
            sizes.setdefault(blob.digest, blob.size)
    return sum(sizes.values())


def _body_digest(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _is_tls_verification_error(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class RegistryClient:
    """Registry calls with the builds API's registry identity; one connection pool.

    Use :meth:`from_settings`; close with :meth:`close`.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        retry_after: int,
        page_size: int,
    ) -> None:
        self._client = client
        self._retry_after = retry_after
        self._page_size = page_size

    @classmethod
    def from_settings(cls, settings: BuildsSettings) -> RegistryClient:
        """A client for ``settings.registry_url`` (default ``https://<registry>``).

        Raises :class:`OSError`/:class:`ssl.SSLError` when ``registry_ca_file`` cannot be
        loaded.
        """
        base_url = settings.registry_url or f"https://{settings.registry}"
        if settings.registry_ca_file is not None:
            verify: ssl.SSLContext | bool = ssl.create_default_context(
                cafile=str(settings.registry_ca_file)
            )
        else:
            verify = True
        auth = None
        if settings.registry_username is not None:
            password = settings.registry_password
            auth = httpx.BasicAuth(
                settings.registry_username, password.get_secret_value() if password else ""
            )
        client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            auth=auth,
            verify=verify,
            timeout=settings.registry_timeout_seconds,
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": "toolforge-builds-api"},
        )
        return cls(
            client, retry_after=settings.retry_after_seconds, page_size=settings.registry_page_size
        )

    async def close(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    # ----- transport and error mapping ------------------------------------------------------

    def _unavailable(self, what: str, retry_after: str | None = None) -> UnavailableError:
        seconds = self._retry_after
        if retry_after is not None and retry_after.isdigit():
            seconds = min(int(retry_after), 300)
        return UnavailableError(f"{what}; try again later", retry_after=seconds)

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        allow: frozenset[int] = frozenset({404}),
    ) -> httpx.Response:
        """One call; 2xx and the statuses in ``allow`` are returned, the rest raise."""
        try:
            response = await self._client.request(
                method, path, params=params, headers=dict(headers or {})
            )
        except httpx.TimeoutException as exc:
            _log.warning("registry %s %s timed out: %s", method, path, type(exc).__name__)
            raise self._unavailable("the image registry did not answer in time") from None
        except httpx.TransportError as exc:
            if _is_tls_verification_error(exc):
                _log.error("registry %s %s: TLS certificate not trusted: %s", method, path, exc)
                raise RegistryError(
                    "the builds API cannot verify the image registry's certificate; this is a "
                    "platform problem and has been logged"
                ) from None
            _log.warning("registry %s %s failed: %s", method, path, type(exc).__name__)
            raise self._unavailable("the image registry cannot be reached") from None
        if response.is_success or response.status_code in allow:
            return response
        status = response.status_code
        codes = _error_codes(response)
        _log.warning("registry %s %s answered %d %s", method, path, status, codes)
        if status in _RETRYABLE:
            raise self._unavailable(
                "the image registry is unavailable", response.headers.get("Retry-After")
            )
        if status in (401, 403):
            raise RegistryError(
                "the image registry refused the builds API's credentials; this is a platform "
                "problem and has been logged"
            )
        if status == 405 and method == "DELETE":
            raise RegistryError("the image registry does not allow deleting images")
        raise RegistryError(
            f"the image registry answered HTTP {status} unexpectedly; it has been logged"
        )

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        try:
            value = response.json()
        except ValueError:
            value = None
        if not isinstance(value, dict):
            _log.warning("registry %s: not a JSON object", response.request.url.path)
            raise RegistryError("the image registry answered something unexpected")
        return value

    async def _pages(self, path: str, key: str) -> AsyncIterator[list[str]]:
        """The ``key`` lists of every page of a paginated listing (``n``/``last`` + Link)."""
        last: str | None = None
        while True:
            params: dict[str, str | int] = {"n": self._page_size}
            if last is not None:
                params["last"] = last
            response = await self._request("GET", path, params=params)
            if response.status_code == 404:  # NAME_UNKNOWN: nothing there
                return
            items = self._json(response).get(key) or []
            if not isinstance(items, list):
                raise RegistryError("the image registry answered something unexpected")
            page = [str(item) for item in items]
            yield page
            following = next_last(response.headers.get("Link"))
            if following is None or following == last or not page:
                return
            last = following

    # ----- calls --------------------------------------------------------------------------------

    async def repositories(self, prefix: str) -> list[str]:
        """Repositories whose name starts with ``prefix`` (the whole catalog is paged through:
        its order differs between registries, so no page can be skipped)."""
        found = []
        async for page in self._pages("/v2/_catalog", "repositories"):
            found += [r for r in page if r.startswith(prefix) and _NAME_RE.match(r)]
        return sorted(set(found))

    async def tags(self, repository: str) -> list[str]:
        """Tags of ``repository``; ``[]`` when it has none or does not exist."""
        _check_name(repository)
        tags: list[str] = []
        async for page in self._pages(f"/v2/{repository}/tags/list", "tags"):
            tags += [t for t in page if _TAG_RE.match(t)]
        return sorted(set(tags))

    async def manifest(self, repository: str, reference: str) -> ImageManifest | None:
        """The manifest of ``repository`` at a tag or digest; ``None`` when it is gone.

        Raises :class:`RegistryError` when the body does not match its digest or cannot be
        parsed.
        """
        _check_name(repository)
        if not (_TAG_RE.match(reference) or _DIGEST_RE.match(reference)):
            raise ValueError(f"not a tag or digest: {reference!r}")
        response = await self._request(
            "GET", f"/v2/{repository}/manifests/{reference}", headers={"Accept": MANIFEST_ACCEPT}
        )
        if response.status_code == 404:
            return None
        body = response.content
        digest = _body_digest(body)
        claimed = response.headers.get("Docker-Content-Digest")
        expected = reference if _DIGEST_RE.match(reference) else claimed
        if expected and expected.startswith("sha256:") and expected != digest:
            _log.warning("registry %s@%s: digest mismatch", repository, reference)
            raise RegistryError("the image registry answered a manifest that fails its digest")
        try:
            return parse_manifest(body, response.headers.get("Content-Type"), digest)
        except ValueError as exc:
            _log.warning("registry %s@%s: bad manifest: %s", repository, reference, exc)
            raise RegistryError("the image registry answered a malformed manifest") from None

    async def delete_manifest(self, repository: str, digest: str) -> bool:
        """Delete the manifest ``digest`` of ``repository`` (its tags go with it); ``False``
        when it was already gone."""
        _check_name(repository)
        if not _DIGEST_RE.match(digest):
            raise ValueError(f"not a digest: {digest!r}")
        response = await self._request("DELETE", f"/v2/{repository}/manifests/{digest}")
        return response.status_code != 404


def _error_codes(response: httpx.Response) -> list[str]:
    """The ``errors[].code`` values of an error body (OCI distribution spec "Error Codes"),
    for the log; the body itself (messages, details) is never passed on."""
    try:
        errors = response.json().get("errors") or []
        return [str(e.get("code"))[:64] for e in errors if isinstance(e, dict)][:5]
    except (ValueError, AttributeError):
        return []


def _check_name(repository: str) -> None:
    """Only valid repository names go into a URL path (no ``..``, no query)."""
    if not _NAME_RE.match(repository):
        raise ValueError(f"not a repository name: {repository!r}")
