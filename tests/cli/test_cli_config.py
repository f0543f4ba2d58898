"""Connection settings: API URL, client certificate (tool from its CN), CA from the kubeconfig.

Certificates are real (``toolforge_admin.pki``), kubeconfigs are written like onboarding writes
them, and the CLI runs with ``HOME`` pointing at a temporary tool home.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import shutil
from pathlib import Path

import pytest
from cli.harness import CliPKI, Home, clean_env, closed_port_url, run_cli, write_kubeconfig

from toolforge_admin.pki import load_cert
from toolforge_cli.config import (
    DEFAULT_API_URL,
    ConfigError,
    Settings,
    ca_from_kubeconfig,
    load_settings,
    resolve_connection,
    tool_from_certificate,
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, home: Home) -> None:
    """No TOOLFORGE_* or KUBECONFIG from the developer's shell; HOME is the tool home."""
    for name, value in clean_env(home).items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)


def test_defaults_use_the_tool_home_and_the_local_gateway(home: Home, cli_pki: CliPKI) -> None:
    conn = resolve_connection(load_settings())
    assert conn.api_url == DEFAULT_API_URL == "https://127.0.0.1:8443"
    assert conn.tool == "alice"
    assert conn.cert == home.cert
    assert conn.key == home.key
    assert conn.ca_pem == cli_pki.cluster_ca_file.read_text()
    assert conn.ca_source == f"kubeconfig {home.kubeconfig}"
    conn.ssl_context()  # certificate, key and CA load


def test_environment_and_options_override_defaults(
    monkeypatch: pytest.MonkeyPatch, cli_pki: CliPKI, home: Home
) -> None:
    monkeypatch.setenv("TOOLFORGE_API_URL", "https://env.example:30003/")
    monkeypatch.setenv("TOOLFORGE_CERT", str(cli_pki.bob.cert))
    monkeypatch.setenv("TOOLFORGE_KEY", str(cli_pki.bob.key))
    monkeypatch.setenv("TOOLFORGE_TIMEOUT", "5")
    settings = load_settings()
    assert settings.api_url == "https://env.example:30003"  # trailing slash dropped
    conn = resolve_connection(settings)
    assert (conn.tool, conn.timeout) == ("bob", 5.0)
    conn = resolve_connection(
        load_settings(api_url="https://opt.example", cert=home.cert, key=home.key, ca=None)
    )
    assert (conn.api_url, conn.tool) == ("https://opt.example", "alice")


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        (
            {"TOOLFORGE_API_URL": "http://127.0.0.1:8443"},
            "api_url (TOOLFORGE_API_URL): must start with https:// (got 'http://127.0.0.1:8443')",
        ),
        (
            {"TOOLFORGE_TIMEOUT": "-1"},
            "timeout (TOOLFORGE_TIMEOUT): Input should be greater than 0",
        ),
    ],
)
def test_invalid_settings_name_the_setting(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], problem: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.details == [problem]


def test_relative_ca_path_is_relative_to_the_kubeconfig(
    home: Home, cli_pki: CliPKI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(cli_pki.cluster_ca_file, home.path / "cluster-ca.pem")
    write_kubeconfig(
        home.kubeconfig, {"server": "https://x", "certificate-authority": "../cluster-ca.pem"}
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert ca_from_kubeconfig(home.kubeconfig) == cli_pki.cluster_ca_file.read_text()


def test_absolute_ca_path_is_used_as_is(home: Home, cli_pki: CliPKI) -> None:
    write_kubeconfig(
        home.kubeconfig,
        {"server": "https://x", "certificate-authority": str(cli_pki.cluster_ca_file)},
    )
    assert ca_from_kubeconfig(home.kubeconfig) == cli_pki.cluster_ca_file.read_text()


def test_kubeconfig_env_names_the_kubeconfig(
    home: Home, cli_pki: CliPKI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other.kubeconfig"
    pem = cli_pki.auth.path("backend-ca.crt").read_bytes()
    write_kubeconfig(
        other, {"server": "https://x", "certificate-authority-data": base64.b64encode(pem).decode()}
    )
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(other), str(home.kubeconfig)]))
    assert resolve_connection(load_settings()).ca_pem == pem.decode()
    monkeypatch.setenv("TOOLFORGE_KUBECONFIG", str(home.kubeconfig))  # ours wins
    assert resolve_connection(load_settings()).ca_pem == cli_pki.cluster_ca_file.read_text()


def test_ca_option_needs_no_kubeconfig(home: Home, cli_pki: CliPKI) -> None:
    home.kubeconfig.unlink()
    conn = resolve_connection(load_settings(ca=cli_pki.cluster_ca_file))
    assert conn.ca_source == str(cli_pki.cluster_ca_file)
    assert conn.ca_pem == cli_pki.cluster_ca_file.read_text()


@pytest.mark.parametrize(
    ("cluster", "current", "problem"),
    [
        ({"server": "https://x"}, "toolforge", "has no certificate-authority(-data)"),
        ({"certificate-authority-data": "not base64!"}, "toolforge", "is not base64 PEM"),
        ({"certificate-authority": "missing.crt"}, "toolforge", "cannot read CA file"),
        ({"certificate-authority-data": "eA=="}, "other", "current-context 'other' is not among"),
    ],
)
def test_kubeconfig_problems_are_config_errors(
    home: Home, cluster: dict[str, str], current: str, problem: str
) -> None:
    write_kubeconfig(home.kubeconfig, cluster, current=current)
    with pytest.raises(ConfigError) as info:
        ca_from_kubeconfig(home.kubeconfig)
    assert problem in info.value.message
    assert str(home.kubeconfig) in info.value.message
    assert "--ca" in info.value.hint


def test_missing_kubeconfig_says_so_and_suggests_ca(home: Home) -> None:
    home.kubeconfig.unlink()
    with pytest.raises(ConfigError) as info:
        resolve_connection(load_settings())
    assert info.value.message == (
        f"cannot read kubeconfig {home.kubeconfig} to find the CA: No such file or directory"
    )
    assert "--ca" in info.value.hint


def test_kubeconfig_that_is_not_yaml(home: Home) -> None:
    home.kubeconfig.write_text("clusters: [\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        ca_from_kubeconfig(home.kubeconfig)


def test_ca_that_is_not_pem_fails_when_the_context_is_built(home: Home, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.crt"
    bogus.write_text("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
    conn = resolve_connection(load_settings(ca=bogus))
    with pytest.raises(ConfigError, match="is not a PEM certificate"):
        conn.ssl_context()


def test_missing_certificate(home: Home) -> None:
    home.cert.unlink()
    with pytest.raises(ConfigError) as info:
        resolve_connection(load_settings())
    assert info.value.message == (
        f"cannot read client certificate {home.cert}: No such file or directory"
    )
    assert "--cert" in info.value.hint


def test_missing_key(home: Home) -> None:
    home.key.unlink()
    with pytest.raises(ConfigError, match=f"client key {home.key} does not exist"):
        resolve_connection(load_settings())


def test_certificate_that_is_not_pem(home: Home) -> None:
    home.cert.write_text("hello")
    with pytest.raises(ConfigError, match="is not a PEM certificate"):
        resolve_connection(load_settings())


def test_key_of_another_certificate_is_refused(home: Home, cli_pki: CliPKI) -> None:
    conn = resolve_connection(load_settings(key=cli_pki.bob.key))
    with pytest.raises(ConfigError) as info:
        conn.ssl_context()
    assert f"cannot use client certificate {home.cert} with key {cli_pki.bob.key}" in str(
        info.value.message
    )


@pytest.mark.parametrize(
    ("pair", "subject"),
    [
        ("admin", "CN=kubernetes-admin,O=system:masters"),
        ("service", "CN=service:builder,O=toolforge"),
    ],
)
def test_only_tool_certificates_are_accepted(cli_pki: CliPKI, pair: str, subject: str) -> None:
    cert = load_cert(getattr(cli_pki, pair).cert)
    with pytest.raises(ConfigError) as info:
        tool_from_certificate(cert)
    assert info.value.message == (
        f"the client certificate is not a Toolforge tool certificate: subject {subject!r}, "
        "expected 'CN=<tool>,O=toolforge' with a tool name (a DNS-1123 label) as CN"
    )


def test_tool_is_the_cn(cli_pki: CliPKI) -> None:
    assert tool_from_certificate(load_cert(cli_pki.alice.cert)) == "alice"
    assert tool_from_certificate(load_cert(cli_pki.bob.cert)) == "bob"


def test_expired_certificate_is_refused_with_a_renewal_hint(home: Home, cli_pki: CliPKI) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_connection(
            load_settings(cert=cli_pki.expired_alice.cert, key=cli_pki.expired_alice.key)
        )
    assert "of tool 'alice' expired on" in info.value.message
    assert "renew" in info.value.hint


def test_expiry_is_checked_against_the_clock(home: Home) -> None:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=400)
    with pytest.raises(ConfigError, match="expired"):
        resolve_connection(load_settings(), now=later)


def test_settings_are_not_read_at_import_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLFORGE_API_URL", "https://later.example")
    assert Settings().api_url == "https://later.example"


# -- through the command line -----------------------------------------------------------------


def test_cli_reports_a_missing_certificate_with_exit_1(home: Home) -> None:
    home.cert.unlink()
    result = run_cli(["jobs", "list"], clean_env(home))
    assert result.exit_code == 1
    assert f"error: cannot read client certificate {home.cert}" in result.stderr
    assert "hint:" in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_cli_refuses_an_admin_certificate(home: Home, cli_pki: CliPKI) -> None:
    result = run_cli(
        ["--cert", str(cli_pki.admin.cert), "--key", str(cli_pki.admin.key), "jobs", "images"],
        clean_env(home),
    )
    assert result.exit_code == 1
    assert "is not a Toolforge tool certificate" in result.stderr


def test_cli_reports_invalid_api_url(home: Home) -> None:
    result = run_cli(["--api-url", "ftp://x", "jobs", "quota"], clean_env(home))
    assert result.exit_code == 1
    assert "api_url" in result.stderr


def test_unreachable_gateway_exits_2_with_a_hint(home: Home) -> None:
    url = closed_port_url()
    result = run_cli(["jobs", "list"], clean_env(home, TOOLFORGE_API_URL=url))
    assert result.exit_code == 2
    assert f"error: cannot connect to {url}:" in result.stderr
    assert "make run" in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_help_needs_no_credentials(tmp_path: Path) -> None:
    env = clean_env(Home(tmp_path / "nobody"))
    for args in (["--help"], ["jobs", "--help"], ["jobs", "load", "--help"]):
        result = run_cli(args, env)
        assert result.exit_code == 0, result.output
        assert "Usage:" in result.stdout
