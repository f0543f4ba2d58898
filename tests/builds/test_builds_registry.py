"""The registry client of the builds API: pure parsing, and calls against a real registry
process (``registry`` fixture: CNCF distribution over TLS with htpasswd auth; no cluster)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from builds.api_harness import registry_settings
from builds.registry_push import (
    OCI_INDEX,
    OCI_MANIFEST,
    push_image,
    push_index,
    registry_client,
    tags_of,
)

from toolforge_builds.errors import RegistryError
from toolforge_builds.registry import (
    Blob,
    ImageManifest,
    RegistryClient,
    format_bytes,
    next_last,
    parse_manifest,
    storage_used,
)
from toolforge_builds.settings import BuildsSettings
from toolforge_dev.registry import LocalRegistry, RegistryCredentials
from toolforge_kit.errors import UnavailableError

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64


def _prefix() -> str:
    return f"tool-t{uuid.uuid4().hex[:10]}"


# ----- pure ---------------------------------------------------------------------------------


def test_parse_oci_manifest_gives_config_and_layers() -> None:
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"digest": D1, "size": 10},
            "layers": [{"digest": D2, "size": 20}, {"digest": D3, "size": 30}],
        }
    ).encode()
    parsed = parse_manifest(body, "text/plain", "sha256:x")
    assert parsed.media_type == OCI_MANIFEST
    assert parsed.blobs == (Blob(D1, 10), Blob(D2, 20), Blob(D3, 30))
    assert parsed.children == ()


def test_parse_uses_content_type_when_the_body_has_no_media_type() -> None:
    docker = "application/vnd.docker.distribution.manifest.v2+json"
    body = json.dumps({"schemaVersion": 2, "config": {"digest": D1, "size": 5}}).encode()
    parsed = parse_manifest(body, f"{docker}; charset=utf-8", "sha256:x")
    assert parsed.media_type == docker
    assert parsed.blobs == (Blob(D1, 5),)


def test_parse_index_gives_children_and_unknown_types_nothing() -> None:
    body = json.dumps(
        {
            "mediaType": OCI_INDEX,
            "manifests": [{"digest": D1, "size": 1}, {"digest": D2, "size": 2}],
        }
    ).encode()
    assert parse_manifest(body, None, "sha256:x").children == (D1, D2)
    schema1 = json.dumps({"schemaVersion": 1, "fsLayers": [{"blobSum": D1}]}).encode()
    parsed = parse_manifest(
        schema1, "application/vnd.docker.distribution.manifest.v1+prettyjws", "d"
    )
    assert (parsed.blobs, parsed.children) == ((), ())


@pytest.mark.parametrize(
    "document",
    [
        [],
        {"mediaType": OCI_MANIFEST, "config": {"digest": "nope", "size": 1}},
        {"mediaType": OCI_MANIFEST, "config": {"digest": D1, "size": -1}},
        {"mediaType": OCI_MANIFEST, "config": {"digest": D1, "size": True}},
        {"mediaType": OCI_MANIFEST, "config": {"digest": D1, "size": 1}, "layers": {}},
        {"mediaType": OCI_INDEX, "manifests": [{"size": 1}]},
    ],
)
def test_malformed_manifests_are_refused(document: Any) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - every parse error is a ValueError
        parse_manifest(json.dumps(document).encode(), None, "sha256:x")


def test_storage_counts_each_blob_once() -> None:
    one = ImageManifest("a", OCI_MANIFEST, blobs=(Blob(D1, 10), Blob(D2, 20)))
    two = ImageManifest("b", OCI_MANIFEST, blobs=(Blob(D2, 20), Blob(D3, 30)))
    assert storage_used([one, two, one]) == 60
    assert storage_used([]) == 0


def test_next_page_uses_only_the_last_value() -> None:
    assert next_last('</v2/_catalog?last=tool-a%2Fweb&n=2>; rel="next"') == "tool-a/web"
    # another host in the link changes nothing: only `last` is taken
    assert next_last('<https://evil.example/v2/_catalog?n=1&last=b>; rel="next"') == "b"
    assert next_last('</v2/_catalog?last=b>; rel="prev"') is None
    assert next_last(None) is None


def test_format_bytes() -> None:
    assert format_bytes(0) == "0"
    assert format_bytes(1023) == "1023"
    assert format_bytes(1536) == "1.50Ki"
    assert format_bytes(5 * (1 << 20)) == "5.00Mi"
    assert format_bytes(1 << 30) == "1.00Gi"


# ----- against the real registry ------------------------------------------------------------


def _client(registry: LocalRegistry, **overrides: Any) -> RegistryClient:
    values = {**registry_settings(registry), **overrides}
    return RegistryClient.from_settings(BuildsSettings(**values))


@pytest.fixture
async def client(registry: LocalRegistry) -> AsyncIterator[RegistryClient]:
    # pages of one entry: every listing below goes through the Link pagination
    instance = _client(registry, registry_page_size=1)
    yield instance
    await instance.close()


async def test_repositories_pages_through_the_catalog_and_keeps_the_prefix(
    registry: LocalRegistry, client: RegistryClient
) -> None:
    prefix = _prefix()
    async with registry_client(registry) as push:
        for name in (f"{prefix}/web", f"{prefix}/api", f"{prefix}x/web", f"{prefix}-b/web"):
            await push_image(push, name, "latest")
    assert await client.repositories(f"{prefix}/") == [f"{prefix}/api", f"{prefix}/web"]


async def test_tags_manifest_and_delete(registry: LocalRegistry, client: RegistryClient) -> None:
    repository = f"{_prefix()}/web"
    async with registry_client(registry) as push:
        pushed = await push_image(push, repository, "latest", layers=[b"a" * 100, b"b" * 50])
        await push_image(push, repository, "v2")
        assert await client.tags(repository) == ["latest", "v2"]
        manifest = await client.manifest(repository, "latest")
        assert manifest is not None
        assert manifest.digest == pushed.digest
        assert {b.digest: b.size for b in manifest.blobs} == pushed.blobs
        assert await client.manifest(repository, "nope") is None

        assert await client.delete_manifest(repository, pushed.digest) is True
        assert await client.delete_manifest(repository, pushed.digest) is False  # gone
        assert await tags_of(push, repository) == ["v2"]
    assert await client.tags(f"{_prefix()}/never-pushed") == []


async def test_index_children_are_read_by_digest(
    registry: LocalRegistry, client: RegistryClient
) -> None:
    repository = f"{_prefix()}/multi"
    async with registry_client(registry) as push:
        children = [await push_image(push, repository, None) for _ in range(2)]
        index = await push_index(push, repository, "latest", children)
    manifest = await client.manifest(repository, "latest")
    assert manifest is not None
    assert manifest.digest == index.digest
    assert manifest.children == tuple(c.digest for c in children)
    child = await client.manifest(repository, children[0].digest)
    assert child is not None
    assert {b.digest: b.size for b in child.blobs} == children[0].blobs


async def test_wrong_credentials_are_a_registry_error_without_the_secret(
    registry: LocalRegistry,
) -> None:
    wrong = "not-the-registry-password-42"
    client = _client(registry, registry_password=wrong)
    try:
        with pytest.raises(RegistryError) as caught:
            await client.repositories("tool-")
    finally:
        await client.close()
    assert caught.value.status_code == 502
    assert "refused the builds API's credentials" in caught.value.message
    assert wrong not in caught.value.message
    assert registry.credentials.username not in caught.value.message


async def test_an_untrusted_certificate_is_a_registry_error(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    other = LocalRegistry.standalone(tmp_path / "other-ca")
    other.prepare()  # makes a CA that did not sign the session registry's certificate
    client = _client(registry, registry_ca_file=other.ca_file)
    try:
        with pytest.raises(RegistryError, match="cannot verify the image registry's certificate"):
            await client.repositories("tool-")
    finally:
        await client.close()


async def test_a_stopped_registry_is_unavailable(tmp_path: Path) -> None:
    down = LocalRegistry.standalone(
        tmp_path / "down", RegistryCredentials("someone", "some-password-123")
    )
    down.start()
    client = _client(down, retry_after_seconds=7)
    try:
        assert await client.repositories("tool-") == []
        down.stop()
        with pytest.raises(UnavailableError) as caught:
            await client.repositories("tool-")
    finally:
        down.stop()
        await client.close()
    assert caught.value.status_code == 503
    assert caught.value.headers == {"Retry-After": "7"}
    assert caught.value.message == "the image registry cannot be reached; try again later"
