"""The builders of ``toolforge_admin.policies`` (no cluster): golden renderings with the local
platform's settings (``tests/admin/golden``; ``UPDATE_GOLDEN=1`` rewrites them), and the
settings' validation. The cluster tests that show the objects at work are
``test_registry_admission.py``, ``test_tool_reach.py`` and ``deploy/test_network_policies.py``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from golden import assert_golden
from toolforge_admin.policies import (
    allowed_image_prefixes_cel,
    tool_image_policy,
    tool_network_policies,
    tool_reach_policy,
)
from toolforge_admin.settings import AdminSettings, EgressEndpoint

GOLDEN = Path(__file__).parent / "golden"

LOCAL = AdminSettings(
    homes_dir=Path("/homes"),
    tool_image_registries=["registry.local", "10.244.0.1:8446"],
    tool_egress_denied_cidrs=["169.254.169.254/32", "10.244.0.1/32"],
    tool_egress_allowed=[EgressEndpoint(cidr="10.244.0.1/32", port=6443)],
)


def _golden(name: str, objects: list[Any]) -> None:
    text = yaml.safe_dump_all(objects, sort_keys=False, width=100)
    assert_golden(GOLDEN / f"{name}.yaml", text)


def test_golden_image_policy() -> None:
    _golden("image-policy", [tool_image_policy(LOCAL)])


def test_golden_reach_policy() -> None:
    _golden("reach-policy", [tool_reach_policy()])


def test_golden_network_policies() -> None:
    _golden("network-policies", tool_network_policies("demo", LOCAL))


def test_allowed_prefixes_name_each_registry_for_the_tool() -> None:
    assert allowed_image_prefixes_cel(LOCAL) == (
        "['registry.local/toolforge/'] + ['registry.local/tool-' + variables.tool + '/',"
        " '10.244.0.1:8446/tool-' + variables.tool + '/']"
    )
    nothing = AdminSettings(image_prefixes=[], tool_image_registries=[])
    assert allowed_image_prefixes_cel(nothing) == "[] + []"


def test_without_denied_cidrs_egress_has_no_except() -> None:
    _, egress = tool_network_policies("demo", AdminSettings(tool_egress_denied_cidrs=[]))
    world = [r for r in egress["spec"]["egress"] if "ipBlock" in (r.get("to") or [{}])[0]]
    assert world == [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("image_prefixes", ["registry.local/toolforge"]),  # no '/': would match toolforge-x
        ("image_prefixes", ["Registry.local/toolforge/"]),
        ("image_prefixes", ["registry.local/tool'forge/"]),
        ("image_prefixes", ["/toolforge/"]),
        ("tool_image_registries", ["registry.local/"]),
        ("tool_image_registries", ["registry.local/x"]),
        ("tool_image_registries", ["host:port"]),
        ("tool_egress_denied_cidrs", ["10.244.0.1/24"]),  # host bits set
        ("tool_egress_denied_cidrs", ["::1/128"]),
        ("tool_egress_allowed", [{"cidr": "10.0.0.0/8", "port": 0}]),
    ],
)
def test_bad_settings_are_refused(field: str, value: Any) -> None:
    with pytest.raises(ValidationError):
        AdminSettings.model_validate({field: value})


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLFORGE_ADMIN_TOOL_IMAGE_REGISTRIES", '["harbor.example.org"]')
    monkeypatch.setenv(
        "TOOLFORGE_ADMIN_TOOL_EGRESS_ALLOWED", '[{"cidr": "192.0.2.1/32", "port": 6443}]'
    )
    settings = AdminSettings()
    assert settings.tool_image_registries == ["harbor.example.org"]
    assert settings.tool_egress_allowed == [EgressEndpoint(cidr="192.0.2.1/32", port=6443)]
