"""The gateway URL where upstream's clients find it (``toolforge-weld`` 1.6.15): env
``TOOL_TOOLFORGE_API_URL``, then ``api_gateway.url`` in ``/etc/toolforge/common.yaml``,
``~/.toolforge.yaml``, ``~/.config/toolforge.yaml``, ``$XDG_CONFIG_HOME/toolforge.yaml``
(later files win), all below our own ``--api-url`` and ``TOOLFORGE_API_URL``.

``/etc/toolforge`` is a temporary directory here (``upstreamconfig.SYSTEM_CONFIG_DIR``, set
by the autouse fixture of ``conftest.py``); a tool home configured for upstream against the
real gateway is tested in ``test_cli_envvars_e2e.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from cli.harness import Home, clean_env, closed_port_url, run_cli

from toolforge_cli import upstreamconfig
from toolforge_cli.config import DEFAULT_API_URL, ConfigError, load_settings
from toolforge_cli.upstreamconfig import UpstreamConfigError, config_files, upstream_api_url


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch, home: Home) -> None:
    for name, value in clean_env(home).items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)


@pytest.fixture
def etc(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The system configuration directory (``/etc/toolforge`` on Toolforge)."""
    directory = tmp_path / "etc-toolforge"
    directory.mkdir()
    monkeypatch.setattr(upstreamconfig, "SYSTEM_CONFIG_DIR", directory)
    return directory


def write_gateway(path: Path, url: str, **other: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"api_gateway": {"url": url}, **other}))


def test_files_in_upstreams_order_later_wins(
    home: Home, etc: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert upstream_api_url() is None
    assert (load_settings().api_url, load_settings().api_url_source) == (
        DEFAULT_API_URL,
        "the default",
    )
    steps = [
        (etc / "common.yaml", "https://system.example:30003"),
        (home.path / ".toolforge.yaml", "https://home.example:30003"),
        (home.path / ".config" / "toolforge.yaml", "https://config.example:30003/"),
    ]
    for path, url in steps:
        write_gateway(path, url)
        settings = load_settings()
        assert settings.api_url == url.rstrip("/")
        assert settings.api_url_source == f"{path} (api_gateway.url)"
    xdg = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    write_gateway(xdg / "toolforge.yaml", "https://xdg.example")
    assert load_settings().api_url == "https://xdg.example"
    assert config_files() == [path for path, _ in steps] + [xdg / "toolforge.yaml"]


def test_the_environment_variables_and_the_option_win_over_the_files(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_gateway(home.path / ".toolforge.yaml", "https://file.example")
    monkeypatch.setenv("TOOL_TOOLFORGE_API_URL", "https://tool-env.example")
    settings = load_settings()
    assert (settings.api_url, settings.api_url_source) == (
        "https://tool-env.example",
        "TOOL_TOOLFORGE_API_URL",
    )
    monkeypatch.setenv("TOOLFORGE_API_URL", "https://ours.example")
    settings = load_settings()
    assert (settings.api_url, settings.api_url_source) == (
        "https://ours.example",
        "TOOLFORGE_API_URL",
    )
    settings = load_settings(api_url="https://option.example")
    assert (settings.api_url, settings.api_url_source) == ("https://option.example", "--api-url")


def test_a_later_files_other_keys_keep_the_earlier_gateway(home: Home) -> None:
    """Upstream merges the files' top-level keys: a later file without ``api_gateway`` does
    not remove it; one with ``api_gateway`` but no ``url`` does (then: our default)."""
    write_gateway(home.path / ".toolforge.yaml", "https://home.example")
    later = home.path / ".config" / "toolforge.yaml"
    later.parent.mkdir()
    later.write_text(yaml.safe_dump({"toolforge_prefix": "toolforge-", "jobs": {"x": 1}}))
    assert load_settings().api_url == "https://home.example"
    later.write_text("")  # an empty file has no settings
    assert load_settings().api_url == "https://home.example"
    later.write_text(yaml.safe_dump({"api_gateway": {}}))
    assert load_settings().api_url == DEFAULT_API_URL


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("api_gateway: [unclosed", "is not valid YAML"),
        ("- a list\n", "is not a mapping"),
        ("api_gateway: https://x\n", "api_gateway must be a mapping with 'url'"),
        ("api_gateway: {url: 8443}\n", "api_gateway.url must be a string"),
    ],
)
def test_a_broken_file_is_a_user_error_naming_it(home: Home, content: str, message: str) -> None:
    path = home.path / ".toolforge.yaml"
    path.write_text(content)
    with pytest.raises(UpstreamConfigError) as info:
        load_settings()
    assert str(path) in info.value.message
    assert message in info.value.message
    result = run_cli(["envvars", "list"], clean_env(home))
    assert result.exit_code == 1
    assert f"error: {info.value.message}" in result.stderr


def test_files_are_not_read_when_our_url_is_given(home: Home) -> None:
    (home.path / ".toolforge.yaml").write_text("api_gateway: [unclosed")
    assert load_settings(api_url="https://option.example").api_url == "https://option.example"


def test_an_upstream_url_that_is_not_https_is_refused_naming_its_source(home: Home) -> None:
    path = home.path / ".toolforge.yaml"
    write_gateway(path, "http://plain.example")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.details == [
        f"api_url ({path} (api_gateway.url)): must start with https:// (got 'http://plain.example')"
    ]


def test_the_cli_uses_the_url_of_the_tools_home_and_says_where_it_came_from(home: Home) -> None:
    url = closed_port_url()
    path = home.path / ".toolforge.yaml"
    write_gateway(path, url)
    result = run_cli(["envvars", "list"], clean_env(home))
    assert result.exit_code == 2
    assert f"error: cannot connect to {url}:" in result.stderr
    assert f"this URL came from {path} (api_gateway.url)" in result.stderr
    via_env = run_cli(["envvars", "quota"], clean_env(home, TOOL_TOOLFORGE_API_URL=url))
    assert via_env.exit_code == 2
    assert "this URL came from TOOL_TOOLFORGE_API_URL" in via_env.stderr
