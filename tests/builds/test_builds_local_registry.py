"""The local registry of the platform (:mod:`toolforge_dev.registry`): credentials from the
build pods' Secret, htpasswd auth over TLS on a real ``registry serve`` process, and how
:class:`~toolforge_dev.services.PlatformServices` wires it (no cluster, no shared ports)."""

from __future__ import annotations

import ipaddress
import ssl
import stat
from pathlib import Path

import bcrypt
import httpx
import pytest
import yaml
from cryptography import x509

from toolforge_admin.pki import PlatformPKI, issued_by, load_cert
from toolforge_builds.settings import BuildsSettings
from toolforge_dev.cluster import NODE_IP, Cluster
from toolforge_dev.registry import (
    BUILDS_MANIFEST,
    LocalRegistry,
    RegistryCredentials,
    RegistryError,
    builds_registry_credentials,
    htpasswd_entry,
)
from toolforge_dev.services import REGISTRY_PORT, PlatformServices


def test_credentials_are_those_of_the_build_pods_secret() -> None:
    docs = list(yaml.safe_load_all(BUILDS_MANIFEST.read_text()))
    (secret,) = [
        d
        for d in docs
        if d and d["kind"] == "Secret" and d["metadata"]["name"] == "buildpacks-registry-auth"
    ]
    assert secret["type"] == "kubernetes.io/basic-auth"
    credentials = builds_registry_credentials()
    assert credentials == RegistryCredentials(
        secret["stringData"]["username"], secret["stringData"]["password"]
    )
    assert credentials.password not in repr(credentials)


def test_base64_data_is_read_and_a_missing_secret_is_an_error(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: buildpacks-registry-auth, "
        "namespace: image-build}\ndata: {username: dXNlcg==, password: cGFzc3dvcmQ=}\n"
    )
    assert builds_registry_credentials(manifest) == RegistryCredentials("user", "password")
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    with pytest.raises(RegistryError, match="no Secret image-build/buildpacks-registry-auth"):
        builds_registry_credentials(manifest)


def test_htpasswd_entry_is_bcrypt() -> None:
    line = htpasswd_entry(RegistryCredentials("builder", "s3cret-pass"))
    user, digest = line.rstrip("\n").split(":", 1)
    assert user == "builder"
    assert digest.startswith("$2b$")
    assert bcrypt.checkpw(b"s3cret-pass", digest.encode())
    assert not bcrypt.checkpw(b"other", digest.encode())
    with pytest.raises(ValueError, match="may not contain"):
        htpasswd_entry(RegistryCredentials("a:b", "x"))


async def test_the_registry_needs_tls_and_the_right_credentials(
    registry: LocalRegistry,
) -> None:
    creds = registry.credentials
    async with httpx.AsyncClient(verify=registry.ssl_context(), timeout=10) as client:
        assert (await client.get(f"{registry.url}/v2/")).status_code == 401
        wrong = await client.get(f"{registry.url}/v2/", auth=(creds.username, "wrong-password"))
        assert wrong.status_code == 401
        right = await client.get(f"{registry.url}/v2/", auth=(creds.username, creds.password))
        assert right.status_code == 200
    # the certificate verifies only against the registry's CA
    async with httpx.AsyncClient(verify=ssl.create_default_context(), timeout=10) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"{registry.url}/v2/")
    # no plain http on its port
    async with httpx.AsyncClient(timeout=10) as client:
        plain = await client.get(f"http://{registry.address}/v2/")
        assert plain.status_code == 400  # Go's answer to plain HTTP on a TLS port


def test_private_files_are_0600_and_hold_no_clear_password(registry: LocalRegistry) -> None:
    for name in ("htpasswd", "config.yml", "registry-server.key"):
        mode = stat.S_IMODE((registry.directory / name).stat().st_mode)
        assert mode == 0o600, name
        assert registry.credentials.password not in (registry.directory / name).read_text()


def test_platform_wiring(tmp_path: Path) -> None:
    cluster = Cluster(directory=tmp_path / "run")
    PlatformPKI.ensure(cluster.pki_dir)
    (cluster.directory / "config").mkdir()
    services = PlatformServices(cluster, progress=lambda _m: None)

    (first, *_rest) = services.services()
    assert first.name == "registry"  # before the builds API that needs it
    assert str(cluster.directory) in " ".join(first.argv)  # Cluster.cleanup recognises it
    assert first.env == {"OTEL_TRACES_EXPORTER": "none"}
    credentials = builds_registry_credentials()
    assert first.health_auth == (credentials.username, credentials.password)
    # On the node address, so that in-cluster pods (make deploy) reach it too.
    assert first.health_url == f"https://{NODE_IP}:{REGISTRY_PORT}/v2/"

    services._write_configs()
    config = yaml.safe_load((cluster.directory / "config" / "registry.yml").read_text())
    assert config["http"]["addr"] == f"{NODE_IP}:{REGISTRY_PORT}"
    assert config["storage"]["delete"] == {"enabled": True}
    assert config["storage"]["filesystem"]["rootdirectory"].startswith(str(cluster.directory))
    builds_file = cluster.directory / "config" / "builds-api.yaml"
    assert stat.S_IMODE(builds_file.stat().st_mode) == 0o600
    settings = BuildsSettings(**yaml.safe_load(builds_file.read_text()))
    assert settings.registry_url == f"https://{NODE_IP}:{REGISTRY_PORT}"
    assert settings.registry_username == credentials.username
    assert settings.registry_password is not None
    assert settings.registry_password.get_secret_value() == credentials.password
    assert settings.registry_ca_file == cluster.pki_dir / "cluster-ca.crt"
    # the server certificate is the cluster CA's, valid for the address it listens on
    cert = load_cert(cluster.directory / "registry" / "registry-server.crt")
    assert issued_by(cert, load_cert(cluster.pki_dir / "cluster-ca.crt"))
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address(NODE_IP) in names.get_values_for_type(x509.IPAddress)
