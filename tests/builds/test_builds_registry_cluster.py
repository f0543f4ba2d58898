"""``/quotas`` (registry storage) and ``/clean`` of the builds API against a real registry
process with images pushed over its HTTP API, the API called over mTLS as the gateway calls
it, with its real cluster identity (the parallel-build count comes from the apiserver)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from builds.api_harness import builds_api
from builds.registry_push import (
    OCI_MANIFEST,
    manifest_exists,
    push_image,
    push_index,
    put_manifest,
    registry_client,
    tags_of,
)

from toolforge_dev.cluster import Cluster
from toolforge_dev.pytest_plugin import fresh_tool_name
from toolforge_dev.registry import LocalRegistry, RegistryCredentials

pytestmark = pytest.mark.cluster

GIB = 1 << 30


def _storage(reply: dict[str, Any]) -> dict[str, Any]:
    """The ``Registry``/``Storage`` item (upstream's shape, nothing more), with the exact
    ``storage_bytes`` of the quota added as ``used_bytes`` / ``limit_bytes``."""
    categories = {c["name"]: c["items"] for c in reply["quota"]["categories"]}
    assert [c["name"] for c in reply["quota"]["categories"]] == ["Registry", "Builds"]
    assert [i["name"] for i in categories["Builds"]] == ["Parallel builds"]
    (item,) = categories["Registry"]
    assert set(item) == {"name", "limit", "used", "available", "capacity"}
    assert item["name"] == "Storage"
    exact = reply["quota"]["storage_bytes"]
    assert item["capacity"] == f"{exact['used'] * 100 // exact['limit']}%"
    return {**item, "used_bytes": exact["used"], "limit_bytes": exact["limit"]}


async def test_quotas_count_distinct_blobs_and_clean_deletes_only_the_tools_images(
    cluster: Cluster, registry: LocalRegistry
) -> None:
    tool, other = fresh_tool_name(), fresh_tool_name()
    shared_layer = b"a base layer shared by two images " * 40
    async with registry_client(registry) as push:
        web = await push_image(push, f"tool-{tool}/web", "latest", layers=[shared_layer])
        api = await push_image(
            push, f"tool-{tool}/api", "latest", layers=[shared_layer, b"x" * 3000]
        )
        children = [await push_image(push, f"tool-{tool}/multi", None) for _ in range(2)]
        multi = await push_index(push, f"tool-{tool}/multi", "latest", children)
        # a second tag of the same manifest counts nothing twice
        latest = await push.get(
            f"/v2/tool-{tool}/web/manifests/latest", headers={"Accept": OCI_MANIFEST}
        )
        assert latest.status_code == 200, latest.text
        assert (
            await put_manifest(push, f"tool-{tool}/web", "v1", latest.content, OCI_MANIFEST)
            == web.digest
        )
        theirs = await push_image(push, f"tool-{other}/web", "latest")
        # a tool whose name starts like ours is another tool
        lookalike = await push_image(push, f"tool-{tool}x/web", "latest")

    expected = {**web.blobs, **api.blobs, **multi.blobs}
    assert len(expected) < len(web.blobs) + len(api.blobs) + len(multi.blobs)  # shared layer
    async with builds_api(cluster, registry) as gateway:
        reply = await gateway.call("GET", tool, "/quotas")
        assert reply.status_code == 200, reply.text
        storage = _storage(reply.json())
        assert storage["used_bytes"] == sum(expected.values())
        assert storage["limit_bytes"] == GIB
        assert storage["limit"] == "1.00Gi"
        assert storage["used"].endswith("Ki")
        assert storage["available"].endswith("Mi")
        assert storage["capacity"] == "0%"  # some KiB of 1 GiB, rounded down

        # another tool's quotas show its own images only
        reply = await gateway.call("GET", other, "/quotas")
        assert _storage(reply.json())["used_bytes"] == sum(theirs.blobs.values())

        # the identity must match the path: tool cannot clean other's images
        forged = await gateway.client.post(
            f"/v1/tool/{other}/clean", headers={"ssl-client-subject-dn": f"CN={tool},O=toolforge"}
        )
        assert forged.status_code == 403

        reply = await gateway.call("POST", tool, "/clean")
        assert reply.status_code == 200, reply.text
        body = reply.json()
        host = registry.address
        assert sorted(body["deleted_images"]) == sorted(
            [
                f"{host}/tool-{tool}/api:latest",
                f"{host}/tool-{tool}/multi:latest",
                f"{host}/tool-{tool}/web:latest",
                f"{host}/tool-{tool}/web:v1",
            ]
        )
        # web (2 tags, 1 manifest) + api + the index and its 2 children
        assert body["deleted_manifests"] == 5
        assert body["messages"]["info"] == [
            f"Deleted 5 artifacts from the registry ({', '.join(body['deleted_images'])}); "
            "their space is freed at the registry's next garbage collection"
        ]

        async with registry_client(registry) as check:
            for repository in ("web", "api", "multi"):
                assert await tags_of(check, f"tool-{tool}/{repository}") == []
            for child in children:
                assert not await manifest_exists(check, child.repository, child.digest)
            # the other tools' images are untouched
            assert await tags_of(check, f"tool-{other}/web") == ["latest"]
            assert await manifest_exists(check, f"tool-{other}/web", theirs.digest)
            assert await manifest_exists(check, f"tool-{tool}x/web", lookalike.digest)

        reply = await gateway.call("GET", tool, "/quotas")
        assert _storage(reply.json())["used_bytes"] == 0
        assert _storage(reply.json())["used"] == "0"

        again = await gateway.call("POST", tool, "/clean")
        assert again.status_code == 200
        assert again.json()["deleted_images"] == []
        assert again.json()["deleted_manifests"] == 0
        assert again.json()["messages"]["info"] == ["Nothing to clean up"]


async def test_the_storage_limit_is_a_setting(cluster: Cluster, registry: LocalRegistry) -> None:
    async with builds_api(cluster, registry, registry_storage_limit="5MiB") as gateway:
        reply = await gateway.call("GET", fresh_tool_name(), "/quotas")
        storage = _storage(reply.json())
        assert (storage["limit_bytes"], storage["limit"]) == (5 << 20, "5.00Mi")
        assert (storage["used_bytes"], storage["available"]) == (0, "5.00Mi")


async def test_registry_down_is_503_with_retry_after(cluster: Cluster, tmp_path: Path) -> None:
    down = LocalRegistry.standalone(tmp_path / "registry")
    down.start()
    try:
        async with builds_api(cluster, down) as gateway:
            tool = fresh_tool_name()
            assert (await gateway.call("GET", tool, "/quotas")).status_code == 200
            down.stop()
            for method, path in (("GET", "/quotas"), ("POST", "/clean")):
                reply = await gateway.call(method, tool, path)
                assert reply.status_code == 503, reply.text
                assert reply.headers["retry-after"] == "5"
                assert reply.json()["error"] == [
                    "the image registry cannot be reached; try again later"
                ]
    finally:
        down.stop()


async def test_refused_credentials_are_a_server_error_that_leaks_nothing(
    cluster: Cluster, tmp_path: Path
) -> None:
    registry = LocalRegistry.standalone(
        tmp_path / "registry", RegistryCredentials("registry-admin", "the-right-password-1")
    )
    registry.start()
    wrong = "a-wrong-password-that-must-not-leak"
    try:
        async with builds_api(cluster, registry, registry_password=wrong) as gateway:
            for method, path in (("GET", "/quotas"), ("POST", "/clean")):
                reply = await gateway.call(method, fresh_tool_name(), path)
                assert reply.status_code == 502, reply.text
                assert reply.json()["error"] == [
                    "the image registry refused the builds API's credentials; this is a "
                    "platform problem and has been logged"
                ]
                for secret in (wrong, "the-right-password-1", "registry-admin", "UNAUTHORIZED"):
                    assert secret not in reply.text
                    assert secret not in str(reply.headers)
    finally:
        registry.stop()
