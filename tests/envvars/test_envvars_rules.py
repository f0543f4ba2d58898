"""The envvars API's pure rules: names, reserved names, values; the Secret it keeps them in;
the admission patch (golden files in ``tests/envvars/golden``; ``UPDATE_GOLDEN=1`` rewrites)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from golden import assert_golden
from toolforge_envvars.models import InvalidEnvvar, check_name, check_value
from toolforge_envvars.secret import NAMES_ANNOTATION, names_of, secret_for, values_of
from toolforge_envvars.webhook.admission import env_patch, review_response
from toolforge_envvars.webhook.registration import webhook_configuration

GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("name", ["TOKEN", "API_KEY", "A123", "DB_PASSWORD_2", "ABCD"])
def test_valid_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("token", "not valid"),
        ("ABC", "not valid"),  # at least 4 characters
        ("TOKEN_", "not valid"),  # no trailing _
        ("1TOKEN", "not valid"),
        ("TO-KEN", "not valid"),
        ("TOKÉN", "not valid"),
        ("TOKEN\n", "not valid"),
        ("HOME", "reserved"),
        ("PATH", "reserved"),
        ("PORT", "reserved"),
        ("NO_HOME", "reserved"),
        ("TOOL_DATA_DIR", "reserved"),
        ("TOOL_ANYTHING", "reserved"),
        ("KUBERNETES_SERVICE_HOST", "reserved"),
        ("CNB_PLATFORM_API", "reserved"),
    ],
)
def test_invalid_names_name_the_rule(name: str, rule: str) -> None:
    with pytest.raises(InvalidEnvvar, match=rule):
        check_name(name)


def test_values_are_checked_without_being_echoed() -> None:
    secret = "s3cr3t-value"  # noqa: S105 - test data
    assert check_value(secret, max_bytes=64) == secret
    for bad, rule in (("", "empty"), ("a\x00b", "NUL"), ("é" * 40, "80 bytes long")):
        with pytest.raises(InvalidEnvvar, match=rule) as caught:
            check_value(bad, max_bytes=64)
        assert bad not in str(caught.value) or bad == ""
    with pytest.raises(InvalidEnvvar) as caught:
        check_value(secret * 10, max_bytes=64)
    assert secret not in str(caught.value)


def test_secret_round_trip_and_golden() -> None:
    values = {"TOKEN": "t0k=n\nline2", "API_KEY": "ü-ñ"}
    secret = secret_for("mytool", "toolforge-envvars", values)
    assert values_of(secret) == values
    assert names_of(secret["metadata"]) == ["API_KEY", "TOKEN"]
    assert_golden(GOLDEN / "secret.yaml", yaml.safe_dump(secret, sort_keys=False))


def test_hand_edited_secrets_are_read_defensively() -> None:
    secret: dict[str, Any] = {
        "metadata": {"annotations": {NAMES_ANNOTATION: "GOOD,bad,,../X,ALSO_GOOD"}},
        "data": {"GOOD": base64.b64encode(b"ok").decode(), "BAD": "%%%not base64"},
    }
    assert values_of(secret) == {"GOOD": "ok"}
    assert names_of(secret["metadata"]) == ["ALSO_GOOD", "GOOD"]
    assert values_of(None) == {}


POD: dict[str, Any] = {
    "spec": {
        "initContainers": [{"name": "init", "image": "x"}],
        "containers": [
            {"name": "job", "image": "x", "env": [{"name": "TOKEN", "value": "pod's own"}]},
            {"name": "side", "image": "x", "env": []},
        ],
        "ephemeralContainers": [{"name": "debug", "image": "x"}],
    }
}


def test_patch_adds_every_variable_but_never_overrides_the_pod_and_golden() -> None:
    patch = env_patch(POD, ["API_KEY", "TOKEN"], "toolforge-envvars")
    assert_golden(GOLDEN / "admission-patch.json", json.dumps(patch, indent=2) + "\n")
    paths = [op["path"] for op in patch]
    assert "/spec/initContainers/0/env" in paths  # no env yet: the list is added
    assert paths.count("/spec/containers/0/env/-") == 1  # TOKEN is the pod's own
    assert not any("ephemeral" in p for p in paths)
    for op in patch:
        entries = op["value"] if isinstance(op["value"], list) else [op["value"]]
        for entry in entries:
            ref = entry["valueFrom"]["secretKeyRef"]
            assert (ref["name"], ref["key"], ref["optional"]) == (
                "toolforge-envvars",
                entry["name"],
                True,
            )


def test_no_variables_no_patch() -> None:
    assert env_patch(POD, [], "toolforge-envvars") == []
    answer = review_response("u-1", [])
    assert answer["response"] == {"uid": "u-1", "allowed": True}


def test_review_response_encodes_a_json_patch() -> None:
    answer = review_response("u-2", [{"op": "add", "path": "/x", "value": 1}])
    assert answer["apiVersion"] == "admission.k8s.io/v1"
    assert answer["response"]["patchType"] == "JSONPatch"
    decoded = json.loads(base64.b64decode(answer["response"]["patch"]))
    assert decoded == [{"op": "add", "path": "/x", "value": 1}]
    refused = review_response("u-3", allowed=False, message="cannot read")
    assert refused["response"]["allowed"] is False
    assert refused["response"]["status"]["message"] == "cannot read"


def test_webhook_configuration_golden() -> None:
    config = webhook_configuration(
        ca_bundle=b"-----BEGIN CERTIFICATE-----\n", url="https://10.244.0.1:8448/mutate"
    )
    assert_golden(GOLDEN / "webhook-configuration.yaml", yaml.safe_dump(config, sort_keys=False))
    with pytest.raises(ValueError, match="exactly one"):
        webhook_configuration(ca_bundle=b"", url="https://x", service={"name": "x"})
