"""The start request's schema in the served OpenAPI spec accepts exactly what the API accepts.

A client (or a fuzzer) that keeps to the spec must not get a 400 for the syntax of a field,
and the API must not accept what the spec forbids. For each field, thousands of values built
from the field's significant pieces (valid fragments, each rule's breakers, noise) are
checked both ways: ``jsonschema`` against the ``BuildRequest`` schema of the served spec, and
the API's own model (``BuildRequest.model_validate_json``, as a request body is read). The
values come from a seeded ``random.Random``, so every run checks the same ones.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no types-jsonschema in the dev group
import pytest
from pydantic import ValidationError

from openapi_snapshot import service_spec
from toolforge_builds.app import create_app
from toolforge_builds.models import BuildRequest
from toolforge_builds.settings import BuildsSettings

GOOD_URL = "https://gitlab.wikimedia.org/toolforge-repos/sample-python-buildpack-app"
SAMPLES = 4000


@pytest.fixture(scope="module")
def schema_validator(tmp_path_factory: pytest.TempPathFactory) -> Any:
    spec = service_spec(create_app, BuildsSettings, Path(tmp_path_factory.mktemp("spec")))
    schema = spec["components"]["schemas"]["BuildRequest"]
    return jsonschema.Draft202012Validator(schema)


def _api_accepts(body: dict[str, Any]) -> bool:
    try:
        BuildRequest.model_validate_json(json.dumps(body))
    except ValidationError:
        return False
    return True


def _check(validator: Any, bodies: list[dict[str, Any]]) -> None:
    disagree = [
        (body, spec_ok)
        for body in bodies
        if (spec_ok := validator.is_valid(body)) != _api_accepts(body)
    ]
    shown = [f"{'spec' if ok else 'API'} accepts only: {body!r}" for body, ok in disagree[:5]]
    assert not disagree, f"{len(disagree)} of {len(bodies)} disagree:\n" + "\n".join(shown)
    # the samples are worth something only if both answers occur often
    accepted = sum(validator.is_valid(body) for body in bodies)
    assert len(bodies) // 20 < accepted < len(bodies) - len(bodies) // 20, accepted


def _pick(rng: random.Random, pieces: list[str], low: int, high: int) -> str:
    return "".join(rng.choice(pieces) for _ in range(rng.randint(low, high)))


def _maybe(rng: random.Random, good: list[str], bad: list[str], p_bad: float = 0.1) -> str:
    return rng.choice(bad if rng.random() < p_bad else good)


def _label(rng: random.Random) -> str:
    return _maybe(
        rng,
        [_pick(rng, ["a", "b", "z", "0", "9", "-", "A"], 1, 6), "example", "org", "xn--p1ai",
         "corp", "home", "arpa"],
        ["localhost", "local", "svc", "lan", "internal", "127", "0x7f", "8", "a_b", "-a", "a-",
         "é", "", "x" * rng.choice([62, 63, 64])],
        0.2,
    )  # fmt: skip


def _url(rng: random.Random) -> str:
    scheme = _maybe(rng, ["https://", "HTTPS://", "Https://"], ["http://", "ftp://", ""], 0.05)
    user = _maybe(rng, [""], ["user:pw@", "token@"], 0.03)
    if rng.random() < 0.05:
        host = rng.choice(["[::1]", "[2606:4700::1111]", "8.8.8.8", "127.1", "[x"])
    elif rng.random() < 0.05:
        host = ".".join(["a" * 63] * 3 + ["b" * rng.choice([59, 60, 61])])  # 251-253 + dots
    else:
        host = ".".join(_label(rng) for _ in range(rng.choice([1, 2, 2, 2, 3, 4])))
        host += _maybe(rng, [""], ["."], 0.1)
    port = _maybe(rng, ["", ":1", ":443", ":65535"], [":", ":0", ":0443", ":65536", ":x"], 0.05)
    good = ["/", "owner", "/repo", ".git", "-", "_", "~", "%20", "%zz", ":", "@", "!$&'()*+,;="]
    bad = ["//", " ", "?", "#", "?x=1", "\\", "é", "<", "[", "\n", "\t", "\x7f"]
    path = "/" + "".join(_maybe(rng, good, bad, 0.04) for _ in range(rng.randint(0, 4)))
    return scheme + user + host + port + path


def _ref(rng: random.Random) -> str:
    if rng.random() < 0.03:
        return rng.choice(["a" * 255, "a" * 256, "ab" * 20, "0123456789abcdef" * 4])
    return _pick(
        rng,
        ["main", "v1", "a", "1", "-", ".", "/", "@", "{", "}", "~", "^", ":", "?", "*", "[",
         "\\", " ", "\x7f", "\x00", "\t", "\n", "é", "lock", ".lock", "..", "@{", "//", "_"],
        0, 5,
    )  # fmt: skip


def _image_name(rng: random.Random) -> str:
    if rng.random() < 0.03:
        return rng.choice(["a" * 128, "a" * 129])
    return _pick(
        rng, ["a", "b", "0", "web", ".", "_", "__", "___", "-", "--", "A", "/", ":", "\n", "é"],
        0, 5,
    )  # fmt: skip


def _envvar_name(rng: random.Random) -> str:
    return _pick(rng, ["A", "B", "z", "_", "1", "-", ".", " ", "\n", "é", "API_TOKEN"], 0, 5)


def _envvar_value(rng: random.Random) -> str:
    if rng.random() < 0.05:
        return "v" * rng.choice([8192, 8193])
    return _pick(rng, ["x", " ", "\n", "=", "\x00", "é", "${X}", "\t"], 0, 4)


def _bodies(make: Callable[[random.Random], dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)  # noqa: S311 - reproducible test values, not secrets
    return [make(rng) for _ in range(SAMPLES)]


def test_source_url(schema_validator: Any) -> None:
    _check(schema_validator, _bodies(lambda rng: {"source_url": _url(rng)}, 1))


def test_ref(schema_validator: Any) -> None:
    _check(schema_validator, _bodies(lambda rng: {"source_url": GOOD_URL, "ref": _ref(rng)}, 2))


def test_image_name(schema_validator: Any) -> None:
    bodies = _bodies(lambda rng: {"source_url": GOOD_URL, "image_name": _image_name(rng)}, 3)
    _check(schema_validator, bodies)


def test_envvars(schema_validator: Any) -> None:
    def body(rng: random.Random) -> dict[str, Any]:
        if rng.random() < 0.02:
            count = rng.choice([100, 101])
            envvars = {f"VAR_{i}": "x" for i in range(count)}
        else:
            envvars = {_envvar_name(rng): _envvar_value(rng) for _ in range(rng.randint(0, 2))}
        return {"source_url": GOOD_URL, "envvars": envvars}

    _check(schema_validator, _bodies(body, 4))


def test_version_flags_and_types(schema_validator: Any) -> None:
    values: list[Any] = [True, False, None, 1, 0, "true", "yes"]

    def body(rng: random.Random) -> dict[str, Any]:
        out: dict[str, Any] = {"source_url": GOOD_URL}
        for flag in ("use_latest_versions", "use_deprecated_versions"):
            if rng.random() < 0.8:
                out[flag] = rng.choice(values)
        return out

    bodies = _bodies(body, 5)
    _check(schema_validator, bodies)
    both = {"source_url": GOOD_URL, "use_latest_versions": True, "use_deprecated_versions": True}
    assert not schema_validator.is_valid(both)


def test_the_spec_states_each_rule(schema_validator: Any) -> None:
    properties = schema_validator.schema["properties"]
    for field in ("source_url", "ref", "image_name"):
        assert {"pattern", "minLength", "maxLength"} <= set(properties[field]), field
    assert properties["envvars"]["propertyNames"]["pattern"]
    assert properties["envvars"]["maxProperties"] == 100
    assert schema_validator.schema["additionalProperties"] is False
