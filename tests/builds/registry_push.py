"""Push small images to a real registry with the HTTP API, as a build's export step would:
monolithic blob uploads (``POST /v2/<name>/blobs/uploads/`` then ``PUT <location>&digest=``)
and a manifest ``PUT`` (OCI distribution spec, "Push").

Blob contents are random bytes (a layer is opaque to the registry), so every call makes new
digests unless the caller passes the same bytes again (to test deduplication).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass

import httpx

from toolforge_dev.registry import LocalRegistry

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Pushed:
    """A pushed manifest: where, its digest and size, and the blobs (digest -> size) it
    refers to."""

    repository: str
    tag: str | None
    digest: str
    size: int
    blobs: dict[str, int]


def registry_client(registry: LocalRegistry) -> httpx.AsyncClient:
    creds = registry.credentials
    return httpx.AsyncClient(
        base_url=registry.url,
        verify=registry.ssl_context(),
        auth=(creds.username, creds.password),
        timeout=30,
    )


async def push_blob(client: httpx.AsyncClient, repository: str, data: bytes) -> str:
    digest = digest_of(data)
    started = await client.post(f"/v2/{repository}/blobs/uploads/")
    assert started.status_code == 202, started.text
    location = httpx.URL(started.headers["Location"])
    location = client.base_url.join(location).copy_merge_params({"digest": digest})
    done = await client.put(
        location, content=data, headers={"Content-Type": "application/octet-stream"}
    )
    assert done.status_code == 201, done.text
    return digest


async def put_manifest(
    client: httpx.AsyncClient, repository: str, reference: str, body: bytes, media_type: str
) -> str:
    reply = await client.put(
        f"/v2/{repository}/manifests/{reference}",
        content=body,
        headers={"Content-Type": media_type},
    )
    assert reply.status_code == 201, reply.text
    assert reply.headers["Docker-Content-Digest"] == digest_of(body)
    return digest_of(body)


async def push_image(
    client: httpx.AsyncClient,
    repository: str,
    tag: str | None,
    *,
    layers: list[bytes] | None = None,
    config: bytes | None = None,
) -> Pushed:
    """Push config + layers and an OCI image manifest (tagged ``tag``, or by digest only)."""
    layers = layers if layers is not None else [secrets.token_bytes(1000 + secrets.randbelow(500))]
    config = (
        config
        or json.dumps(
            {"architecture": "amd64", "os": "linux", "nonce": secrets.token_hex(8)}
        ).encode()
    )
    blobs = {await push_blob(client, repository, config): len(config)}
    descriptors = []
    for layer in layers:
        digest = await push_blob(client, repository, layer)
        blobs[digest] = len(layer)
        descriptors.append({"mediaType": OCI_LAYER, "digest": digest, "size": len(layer)})
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
        "layers": descriptors,
    }
    body = json.dumps(manifest).encode()
    digest = await put_manifest(client, repository, tag or digest_of(body), body, OCI_MANIFEST)
    return Pushed(repository, tag, digest, len(body), blobs)


async def push_index(
    client: httpx.AsyncClient, repository: str, tag: str, children: list[Pushed]
) -> Pushed:
    """Push an OCI image index over ``children`` (pushed by digest to ``repository``)."""
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": child.digest,
                "size": child.size,
                "platform": {"architecture": arch, "os": "linux"},
            }
            for child, arch in zip(children, ("amd64", "arm64", "riscv64"), strict=False)
        ],
    }
    body = json.dumps(index).encode()
    digest = await put_manifest(client, repository, tag, body, OCI_INDEX)
    blobs: dict[str, int] = {}
    for child in children:
        blobs.update(child.blobs)
    return Pushed(repository, tag, digest, len(body), blobs)


async def tags_of(client: httpx.AsyncClient, repository: str) -> list[str]:
    """The repository's tags as the registry lists them (``[]`` when unknown)."""
    reply = await client.get(f"/v2/{repository}/tags/list")
    if reply.status_code == 404:
        return []
    assert reply.status_code == 200, reply.text
    return sorted(reply.json().get("tags") or [])


async def manifest_exists(client: httpx.AsyncClient, repository: str, digest: str) -> bool:
    reply = await client.head(
        f"/v2/{repository}/manifests/{digest}",
        headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"},
    )
    assert reply.status_code in (200, 404), reply.status_code
    return reply.status_code == 200
