"""Tool name rules (no cluster needed)."""

from __future__ import annotations

import pytest

from toolforge_admin.onboarding import TOOL_NAME_MAX, InvalidToolName, validate_tool_name


@pytest.mark.parametrize("name", ["a", "mytool", "my-tool-2", "0x", "a" * TOOL_NAME_MAX])
def test_valid_names(name: str) -> None:
    assert validate_tool_name(name) == name


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("", "empty"),
        ("MyTool", "DNS-1123"),
        ("my_tool", "DNS-1123"),
        ("-tool", "DNS-1123"),
        ("tool-", "DNS-1123"),
        ("tool.name", "DNS-1123"),
        ("tööl", "DNS-1123"),
        ("a" * (TOOL_NAME_MAX + 1), "at most 58"),
    ],
)
def test_invalid_names_say_which_rule(name: str, rule: str) -> None:
    with pytest.raises(InvalidToolName, match=rule):
        validate_tool_name(name)
