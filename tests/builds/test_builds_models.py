"""Start-request validation: every rule rejects with a message naming the field and the rule."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
from pydantic import ValidationError

from toolforge_builds.models import (
    Build,
    BuildParameters,
    BuildRequest,
    BuildStatus,
    Messages,
    error_response,
    validate_ref,
    validation_messages,
)

GOOD_URL = "https://gitlab.wikimedia.org/toolforge-repos/sample-python-buildpack-app"


def _errors(body: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as info:
        BuildRequest.model_validate(body)
    return validation_messages(info.value)


def _one_error(body: dict[str, Any]) -> str:
    errors = _errors(body)
    assert len(errors) == 1, errors
    return errors[0]


def test_minimal_request_gets_defaults() -> None:
    request = BuildRequest.model_validate({"source_url": GOOD_URL})
    assert request.ref is None
    assert request.envvars == {}
    assert request.image_name is None
    assert request.use_latest_versions is False


def test_full_request_is_kept_as_given() -> None:
    body = {
        "source_url": "https://github.com/example/app.git",
        "ref": "feature/new-ui",
        "envvars": {"API_TOKEN": "s3cr3t-value", "_X1": ""},
        "image_name": "my-app.v2",
        "use_latest_versions": True,
        "use_deprecated_versions": False,
    }
    assert BuildRequest.model_validate(body).model_dump() == body


@pytest.mark.parametrize(
    "url",
    [
        GOOD_URL,
        "https://github.com/example/app.git",
        "https://GitHub.com/Example/App",
        "https://git.example.org:8443/group/sub/repo.git",
        "https://github.com./example/app",
        "HTTPS://github.com/example/app",  # RFC 3986: schemes are case-insensitive
    ],
)
def test_valid_source_urls(url: str) -> None:
    assert BuildRequest(source_url=url).source_url == url


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("http://github.com/example/app", "https://"),
        ("git://github.com/example/app", "https://"),
        ("ssh://git@github.com/example/app", "https://"),
        ("git@github.com:example/app.git", "https://"),
        ("file:///srv/git/app", "https://"),
        ("/srv/git/app", "no scheme"),
        ("ext::sh -c touch% /tmp/pwned", "whitespace"),
        ("https://user:pass@github.com/example/app", "credentials"),
        ("https://token@github.com/example/app", "credentials"),
        ("https://:pass@github.com/example/app", "credentials"),
        ("https:///example/app", "host"),
        ("https://", "host"),
        ("https://localhost/repo", "internal name"),
        ("https://LOCALHOST./repo", "internal name"),
        ("https://git.localhost/repo", "internal name"),
        ("https://gitea/repo", "fully qualified"),
        ("https://kubernetes.default.svc/repo", "internal name"),
        ("https://gitlab.corp.internal/repo", "internal name"),
        ("https://printer.local/repo", "internal name"),
        ("https://127.0.0.1/repo", "not a public address"),
        ("https://127.1/repo", "not a public address"),
        ("https://2130706433/repo", "not a public address"),
        ("https://0x7f.0.0.1/repo", "not a public address"),
        ("https://0.0.0.0/repo", "not a public address"),
        ("https://10.0.0.5/repo", "not a public address"),
        ("https://172.16.3.4/repo", "not a public address"),
        ("https://192.168.1.1/repo", "not a public address"),
        ("https://169.254.169.254/latest/meta-data", "not a public address"),
        ("https://100.64.0.1/repo", "not a public address"),
        ("https://224.0.0.1/repo", "not a public address"),
        ("https://[::1]/repo", "not a public address"),
        ("https://[fe80::1]/repo", "not a public address"),
        ("https://[fd00::1]/repo", "not a public address"),
        ("https://[::ffff:127.0.0.1]/repo", "not a public address"),
        ("https://[::ffff:10.0.0.1]/repo", "not a public address"),
        ("https://8.8.8.8/repo.git", "IP address"),
        ("https://[2606:4700:4700::1111]/repo.git", "IP address"),
        ("https://git.example.123/repo", "last label must start with a letter"),
        ("https://github.com:0/example/app", "port"),
        ("https://github.com:/example/app", "port"),
        ("https://github.com:0443/example/app", "https://HOST[:PORT]/PATH"),
        ("https://github.com/example/app<script>", "https://HOST[:PORT]/PATH"),
        ("https://github.com/exa\\mple", "https://HOST[:PORT]/PATH"),
        ("https://github.com/é/app", "https://HOST[:PORT]/PATH"),
        ("https://github.com:99999/example/app", "port"),
        ("https://github.com:abc/example/app", "port"),
        ("https://git_hub.com/example/app", "valid DNS name"),
        ("https://-github.com/example/app", "valid DNS name"),
        ("https://gïthub.com/example/app", "ASCII"),
        ("https://github.com/example/app?x=1", "query"),
        ("https://github.com/example/app#main", "fragment"),
        ("https://github.com/example/app?", "query"),
        ("https://github.com", "repository path"),
        ("https://github.com/", "repository path"),
        ("https://github.com/example/app\n", "control characters"),
        ("https://github.com/exa mple/app", "whitespace"),
        ("https://github.com/" + "a" * 2100, "at most 2048"),
        ("https://[github.com/repo", "not a valid URL"),
    ],
)
def test_invalid_source_urls_name_field_and_rule(url: str, rule: str) -> None:
    message = _one_error({"source_url": url})
    assert message.startswith("source_url: "), message
    assert rule in message


def test_source_url_is_required_and_typed() -> None:
    assert _one_error({}) == "source_url: field required"
    assert _one_error({"source_url": 42}).startswith("source_url: ")


# Names that git itself accepts or rejects; the validator must agree with
# `git check-ref-format --allow-onelevel`, except for the extra rules (leading '-').
REF_CASES = [
    "main",
    "HEAD",
    "v1.2.3",
    "feature/new-ui",
    "refs/heads/main",
    "refs/tags/v1.0",
    "release-2024_05",
    "ü-branch",
    "a..b",
    "a/../b",
    "a b",
    "a~1",
    "a^",
    "a:b",
    "a?",
    "a*",
    "a[0]",
    "a\\b",
    "a\tb",
    "a\x7fb",
    "a\x01b",
    "/main",
    "main/",
    "a//b",
    "main.",
    ".hidden",
    "a/.hidden",
    "main.lock",
    "a/b.lock/c",
    "a@{1}",
    "@",
    "x@y",
]


@pytest.mark.parametrize("ref", REF_CASES)
def test_ref_rules_agree_with_git(ref: str) -> None:
    git = subprocess.run(
        ["git", "check-ref-format", "--allow-onelevel", ref], capture_output=True, check=False
    )
    try:
        validate_ref(ref)
        ours = True
    except ValueError:
        ours = False
    assert ours == (git.returncode == 0), ref


@pytest.mark.parametrize(
    ("ref", "rule"),
    [
        ("-main", "must not start with '-'"),
        ("--upload-pack=touch /tmp/x", "must not start with '-'"),
        ("a..b", "'..'"),
        ("a b", "space"),
        ("a\x00b", "control characters"),
        ("a@{1}", "'@{'"),
        ("main.lock", ".lock"),
        ("main/", "'/'"),
        ("", "must not be empty"),
        ("x" * 256, "at most 255"),
    ],
)
def test_invalid_refs_name_field_and_rule(ref: str, rule: str) -> None:
    message = _one_error({"source_url": GOOD_URL, "ref": ref})
    assert message.startswith("ref: "), message
    assert rule in message


@pytest.mark.parametrize("commit", ["a" * 40, "0123456789abcdef" * 4])
def test_full_commit_ids_are_valid_refs(commit: str) -> None:
    assert BuildRequest(source_url=GOOD_URL, ref=commit).ref == commit


@pytest.mark.parametrize(
    ("envvars", "rule"),
    [
        ({"AB": "x"}, "must match"),
        ({"1ABC": "x"}, "must match"),
        ({"MY-VAR": "x"}, "must match"),
        ({"MY VAR": "x"}, "must match"),
        ({"ÄBC": "x"}, "must match"),
        ({"GOOD": "a\x00b"}, "NUL"),
        ({"GOOD": "x" * 8193}, "at most 8192"),
        ({f"VAR_{i}": "x" for i in range(101)}, "at most 100"),
    ],
)
def test_invalid_envvars_name_field_and_rule(envvars: dict[str, str], rule: str) -> None:
    message = _one_error({"source_url": GOOD_URL, "envvars": envvars})
    assert message.startswith("envvars: "), message
    assert rule in message


def test_envvars_values_must_be_strings() -> None:
    message = _one_error({"source_url": GOOD_URL, "envvars": {"COUNT": 3}})
    assert message.startswith("envvars.COUNT: "), message


def test_envvar_values_may_hold_newlines_and_be_empty() -> None:
    envvars = {"PEM_KEY": "-----BEGIN-----\nabc\n-----END-----", "EMPTY": ""}
    assert BuildRequest(source_url=GOOD_URL, envvars=envvars).envvars == envvars


@pytest.mark.parametrize("name", ["app", "my-app", "my_app", "my__app", "a.b", "a---b", "x" * 128])
def test_valid_image_names(name: str) -> None:
    assert BuildRequest(source_url=GOOD_URL, image_name=name).image_name == name


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("MyApp", "lower-case"),
        ("my/app", "one OCI repository path component"),
        ("-app", "one OCI repository path component"),
        ("app-", "one OCI repository path component"),
        ("a___b", "one OCI repository path component"),
        ("a..b", "one OCI repository path component"),
        ("app:latest", "one OCI repository path component"),
        ("", "must not be empty"),
        ("x" * 129, "at most 128"),
    ],
)
def test_invalid_image_names_name_field_and_rule(name: str, rule: str) -> None:
    message = _one_error({"source_url": GOOD_URL, "image_name": name})
    assert message.startswith("image_name: "), message
    assert rule in message


def test_unknown_fields_are_rejected_with_the_allowed_list() -> None:
    message = _one_error({"source_url": GOOD_URL, "branch": "main"})
    assert message.startswith("branch: unknown field"), message
    assert (
        "source_url, ref, envvars, image_name, use_latest_versions, use_deprecated_versions"
        in message
    )


@pytest.mark.parametrize("flag", ["use_latest_versions", "use_deprecated_versions"])
def test_version_flags_are_strictly_boolean(flag: str) -> None:
    message = _one_error({"source_url": GOOD_URL, flag: "yes"})
    assert message.startswith(f"{flag}: "), message


def test_use_deprecated_versions_is_accepted_alone_but_not_with_latest() -> None:
    request = BuildRequest.model_validate({"source_url": GOOD_URL, "use_deprecated_versions": True})
    assert (request.use_deprecated_versions, request.use_latest_versions) == (True, False)
    message = _one_error(
        {"source_url": GOOD_URL, "use_latest_versions": True, "use_deprecated_versions": True}
    )
    assert message == (
        "use_deprecated_versions: cannot be combined with use_latest_versions; choose one"
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [("image_name", "web\n"), ("envvars", {"API_TOKEN\n": "x"})],
)
def test_a_trailing_newline_does_not_slip_past_a_pattern(field: str, value: object) -> None:
    assert _one_error({"source_url": GOOD_URL, field: value}).startswith(field)


def test_every_broken_field_is_reported() -> None:
    errors = _errors({"source_url": "http://x", "ref": "-x", "image_name": "UP"})
    assert [line.split(":", 1)[0] for line in errors] == ["source_url", "ref", "image_name"]


def test_error_envelope_shape() -> None:
    # upstream's top-level list (what toolforge-build prints) and our envelope
    body = error_response("source_url: field required").model_dump(mode="json")
    assert body == {
        "error": ["source_url: field required"],
        "messages": {"info": [], "warning": [], "error": ["source_url: field required"]},
    }


def test_build_serialises_with_upstream_field_names() -> None:
    build = Build(
        build_id="foo-buildpacks-pipelinerun-abcde",
        status=BuildStatus.RUNNING,
        parameters=BuildParameters(source_url=GOOD_URL, ref="HEAD", image_name="tool-foo"),
        resolved_ref="a" * 40,
        destination_image="registry.local/tool-foo/tool-foo:latest",
    )
    body = json.loads(build.model_dump_json())
    assert body["build_id"] == "foo-buildpacks-pipelinerun-abcde"
    assert body["status"] == "BUILD_RUNNING"
    assert body["status"].split("_")[1].lower() == "running"  # what toolforge-build does
    assert (body["start_time"], body["end_time"]) == ("", "")
    assert body["parameters"]["envvars"] == {}
    assert body["parameters"]["use_deprecated_versions"] is False
    assert Messages().model_dump() == {"info": [], "warning": [], "error": []}


def test_messages_from_an_errors_list_with_a_body_location() -> None:
    # FastAPI's RequestValidationError.errors() puts the body fields under "body"
    try:
        BuildRequest.model_validate({"source_url": "ssh://x/y", "ref": "a..b"})
    except ValidationError as exc:
        errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
    assert [line.split(":", 1)[0] for line in validation_messages(errors)] == [
        "source_url",
        "ref",
    ]
    body_error = {
        "type": "model_attributes_type",
        "loc": ("body",),
        "msg": "Input should be an object",
    }
    assert validation_messages([body_error]) == ["body: Input should be an object"]
