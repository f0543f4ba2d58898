"""The platform's own git servers (settings ``trusted_source_prefixes``): a ``source_url``
under one is accepted although its host is an IP address; everything else keeps the
public-host rules. Pure, plus the app's ASGI middleware that sets the prefixes per request."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from toolforge_builds.app import TrustedSources
from toolforge_builds.models import BuildRequest
from toolforge_builds.rules import TRUSTED_SOURCE_PREFIXES, validate_source_url
from toolforge_builds.settings import BuildsSettings

GIT = "https://10.244.0.1:8451/"


def test_without_trusted_prefixes_the_platform_git_server_is_refused() -> None:
    with pytest.raises(ValueError, match="not a public address"):
        validate_source_url(f"{GIT}demo.git")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (f"{GIT}demo.git", None),
        ("https://10.244.0.1:8451/a/b.git", None),
        (GIT, "not a public address"),  # the prefix alone names no repository
        ("https://10.244.0.1:8452/demo.git", "not a public address"),  # another port
        ("https://10.244.0.1/demo.git", "not a public address"),
        ("https://10.244.0.2:8451/demo.git", "not a public address"),
        (f"{GIT}demo.git?x=1", "must not have a query"),
        ("https://u:p@10.244.0.1:8451/demo.git", "must not contain credentials"),
        ("http://10.244.0.1:8451/demo.git", "must be an https:// URL"),
    ],
)
def test_trusted_prefix_accepts_only_urls_under_it(url: str, says: str | None) -> None:
    token = TRUSTED_SOURCE_PREFIXES.set((GIT,))
    try:
        if says is None:
            assert validate_source_url(url) == url
            assert BuildRequest(source_url=url).source_url == url
        else:
            with pytest.raises((ValueError, ValidationError), match=says):
                validate_source_url(url)
    finally:
        TRUSTED_SOURCE_PREFIXES.reset(token)


@pytest.mark.parametrize("prefix", ["http://10.244.0.1:8451/", "https://h:1", "https://h/x", ""])
def test_settings_refuse_prefixes_that_could_match_too_much(prefix: str) -> None:
    with pytest.raises(ValidationError, match="must be https://host"):
        BuildsSettings(trusted_source_prefixes=[prefix])


async def test_middleware_sets_the_prefixes_for_the_request_only() -> None:
    seen: list[tuple[str, ...]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(TRUSTED_SOURCE_PREFIXES.get())

    await TrustedSources(app, (GIT,))({"type": "http"}, None, None)  # type: ignore[arg-type]
    assert seen == [(GIT,)]
    assert TRUSTED_SOURCE_PREFIXES.get() == ()
