"""Build service images in the jobs API: the names (pure) and the registry reader against a
real registry (CNCF distribution on loopback over TLS, the ``registry`` fixture; no cluster).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from builds.registry_push import Pushed, push_image, registry_client

from toolforge_dev.registry import LocalRegistry
from toolforge_jobs import registry as registry_module
from toolforge_jobs.builtimages import BuiltImage, parse_built_image
from toolforge_jobs.errors import JobSpecError
from toolforge_jobs.registry import BuiltImageRegistry, next_last
from toolforge_jobs.settings import JobsSettings
from toolforge_kit.errors import ClusterError, UnavailableError

DIGEST = "sha256:" + "0123456789abcdef" * 4
PULL = "10.244.0.1:8450"


# --- names -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("tool-foo/web:latest", BuiltImage("foo", "web", "latest")),
        ("tool-foo/a.b/c_d:v1.2-3", BuiltImage("foo", "a.b/c_d", "v1.2-3")),
        (f"tool-foo/web:latest@{DIGEST}", BuiltImage("foo", "web", "latest", DIGEST)),
    ],
)
def test_own_images_parse(name: str, expected: BuiltImage) -> None:
    image = parse_built_image(name, "foo")
    assert image == expected
    assert image.shortname == name
    assert image.reference(PULL) == f"{PULL}/{name}"
    assert image.repository == f"tool-foo/{expected.name}"


@pytest.mark.parametrize(
    "name",
    ["tool-bar/web:latest", "tool-foobar/web:latest", "tool-fo/web:latest", "tool-bar/tool-foo:x"],
)
def test_another_tools_image_is_refused(name: str) -> None:
    with pytest.raises(JobSpecError) as caught:
        parse_built_image(name, "foo")
    assert caught.value.field == "imagename"
    assert "a tool may run only its own images (tool-foo/...)" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("tool-foo/web", "the tag is required"),
        ("tool-foo/Web:latest", "not a build service image name"),
        ("tool-foo/web:latest@sha256:abc", "not a build service image name"),
        ("tool-foo/web:latest@md5:" + "0" * 32, "not a build service image name"),
        ("registry.local/tool-foo/web:latest", "not a build service image name"),
        ("tool-foo//web:latest", "not a build service image name"),
        ("tool-foo/web:-x", "not a build service image name"),
        ("tool-foo/web:latest\n", "not a build service image name"),
    ],
)
def test_malformed_names_are_refused(name: str, says: str) -> None:
    with pytest.raises(JobSpecError, match=says):
        parse_built_image(name, "foo")


def test_next_last_reads_only_the_last_value_of_the_next_link() -> None:
    assert next_last('<https://evil.example/v2/_catalog?last=b&n=2>; rel="next"') == "b"
    assert next_last('<...?last=b>; rel="prev"') is None
    assert next_last(None) is None


# --- the registry reader, on a real registry --------------------------------------------


def _settings(registry: LocalRegistry, **overrides: object) -> JobsSettings:
    values: dict[str, object] = {
        "registry_pull_address": PULL,
        "registry_url": registry.url,
        "registry_ca_file": registry.ca_file,
        "registry_username": registry.credentials.username,
        "registry_password": registry.credentials.password,
    }
    values.update(overrides)
    return JobsSettings.model_validate(values)


@pytest.fixture
async def reader(registry: LocalRegistry) -> AsyncIterator[BuiltImageRegistry]:
    built = BuiltImageRegistry.from_settings(_settings(registry))
    assert built is not None
    yield built
    await built.close()


@pytest.fixture(scope="module")
def tool_name() -> str:
    import secrets

    return f"bi{secrets.token_hex(3)}"


@pytest.fixture
async def pushed(registry: LocalRegistry, tool_name: str) -> dict[str, Pushed]:
    """Images of ``tool_name`` (and of tools whose names it prefixes or that prefix it)."""
    async with registry_client(registry) as client:
        return {
            "app:latest": await push_image(client, f"tool-{tool_name}/app", "latest"),
            "app:v1": await push_image(client, f"tool-{tool_name}/app", "v1"),
            "web/api:latest": await push_image(client, f"tool-{tool_name}/web/api", "latest"),
            "other": await push_image(client, f"tool-{tool_name}x/app", "latest"),
            "untagged": await push_image(client, f"tool-{tool_name}/bare", None),
        }


def test_settings_without_a_pull_address_have_no_reader() -> None:
    assert BuiltImageRegistry.from_settings(JobsSettings()) is None


async def test_resolve_checks_the_tag_and_the_digest(
    reader: BuiltImageRegistry, pushed: dict[str, Pushed], tool_name: str
) -> None:
    app = parse_built_image(f"tool-{tool_name}/app:latest", tool_name)
    assert await reader.resolve(app) == f"{PULL}/tool-{tool_name}/app:latest"
    digest = pushed["app:latest"].digest
    pinned = parse_built_image(f"tool-{tool_name}/app:latest@{digest}", tool_name)
    assert await reader.resolve(pinned) == f"{PULL}/tool-{tool_name}/app:latest@{digest}"

    with pytest.raises(JobSpecError, match="no tag 'v2'"):
        await reader.resolve(parse_built_image(f"tool-{tool_name}/app:v2", tool_name))
    with pytest.raises(JobSpecError, match="no tag 'latest'"):
        await reader.resolve(parse_built_image(f"tool-{tool_name}/none:latest", tool_name))
    with pytest.raises(JobSpecError, match=f"no manifest {DIGEST}"):
        await reader.resolve(parse_built_image(f"tool-{tool_name}/app:v1@{DIGEST}", tool_name))


async def test_tool_images_are_the_tools_own_tagged_images(
    reader: BuiltImageRegistry,
    pushed: dict[str, Pushed],
    tool_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    expected = [
        BuiltImage(tool_name, "app", "latest"),
        BuiltImage(tool_name, "app", "v1"),
        BuiltImage(tool_name, "web/api", "latest"),
    ]
    assert await reader.tool_images(tool_name) == expected
    # the same through pages of one entry (the registry's Link header is followed)
    monkeypatch.setattr(registry_module, "_PAGE", 1)
    assert await reader.tool_images(tool_name) == expected
    assert await reader.tool_images(f"{tool_name}y") == []
    summaries, warnings = await reader.summaries(tool_name)
    assert warnings == []
    assert [(i.shortname, i.image) for i in summaries] == [
        (f"tool-{tool_name}/{i.name}:{i.tag}", f"{PULL}/tool-{tool_name}/{i.name}:{i.tag}")
        for i in expected
    ]


async def test_refused_credentials_are_a_502_not_a_missing_image(
    registry: LocalRegistry, pushed: dict[str, Pushed], tool_name: str
) -> None:
    built = BuiltImageRegistry.from_settings(_settings(registry, registry_password="wrong"))  # noqa: S106
    assert built is not None
    try:
        with pytest.raises(ClusterError, match="refused the jobs API's pull credentials"):
            await built.resolve(parse_built_image(f"tool-{tool_name}/app:latest", tool_name))
        with pytest.raises(ClusterError, match="refused"):
            await built.tool_images(tool_name)
    finally:
        await built.close()


async def test_an_untrusted_certificate_is_a_502(
    registry: LocalRegistry, tool_name: str, tmp_path: Path
) -> None:
    from toolforge_admin.pki import CertificateAuthority, cert_pem

    other = tmp_path / "other-ca.crt"
    other.write_bytes(cert_pem(CertificateAuthority.create("other CA").cert))
    built = BuiltImageRegistry.from_settings(_settings(registry, registry_ca_file=other))
    assert built is not None
    try:
        with pytest.raises(ClusterError, match="certificate is not trusted"):
            await built.resolve(BuiltImage(tool_name, "app", "latest"))
    finally:
        await built.close()


async def test_an_unreachable_registry_is_a_503(registry: LocalRegistry, tool_name: str) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on: bound, never listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        built = BuiltImageRegistry.from_settings(
            _settings(registry, registry_url=f"https://127.0.0.1:{port}")
        )
        assert built is not None
        try:
            with pytest.raises(UnavailableError) as caught:
                await built.tool_images(tool_name)
            # the images endpoint still answers (the image-config list), with a warning
            assert await built.summaries(tool_name) == (
                [],
                ["the tool's own images cannot be listed now: the image registry cannot be "
                 "reached now"],
            )  # fmt: skip
        finally:
            await built.close()
    assert caught.value.headers == {"Retry-After": "5"}


async def test_without_the_pull_account_the_registry_refuses_reads(
    registry: LocalRegistry, pushed: dict[str, Pushed], tool_name: str
) -> None:
    """Reads need an account: an anonymous reader gets the registry's 401 as a 502."""
    settings = _settings(registry, registry_username=None, registry_password=None)
    built = BuiltImageRegistry.from_settings(settings)
    assert built is not None
    try:
        with pytest.raises(ClusterError, match="refused"):
            await built.resolve(BuiltImage(tool_name, "app", "latest"))
    finally:
        await built.close()
