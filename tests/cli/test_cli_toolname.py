"""The CLI's copy of the tool-name rule (``toolforge_cli.toolname``) says the same as its
owner on the server side, ``toolforge_auth.tools`` (issue 12: one owner of the tool contract;
the CLI keeps a copy because it must not import server or lib code; a test may import both).
"""

from __future__ import annotations

import pytest

from toolforge_auth import tools
from toolforge_cli import toolname

VALID = [
    "a",
    "0",
    "demo",
    "my-tool",
    "tool-1",
    "a1-b2-c3",
    "9lives",
    "x" * 58,
    "a" + "-" * 56 + "b",
]
INVALID = [
    "",
    "-tool",
    "tool-",
    "My-Tool",
    "my_tool",
    "my.tool",
    "my tool",
    "tool/x",
    "x" * 59,
    "a" + "-" * 57 + "b",
    "é",
    "tool\n",
    "\ntool",
]


def test_the_copy_has_the_owners_pattern_and_limit() -> None:
    assert toolname.TOOL_NAME_PATTERN == tools.TOOL_NAME_PATTERN
    assert toolname.TOOL_NAME_MAX_LENGTH == tools.TOOL_NAME_MAX_LENGTH == 58


@pytest.mark.parametrize("name", VALID + INVALID)
def test_the_copy_and_the_owner_agree(name: str) -> None:
    assert toolname.is_tool_name(name) == tools.is_tool_name(name)
    expected = name in VALID
    assert toolname.is_tool_name(name) is expected
    for validate, error in (
        (toolname.validate_tool_name, toolname.InvalidToolName),
        (tools.validate_tool_name, tools.InvalidToolName),
    ):
        if expected:
            assert validate(name) == name
        else:
            with pytest.raises(error):
                validate(name)


@pytest.mark.parametrize("length", [57, 58, 59, 63])
def test_the_limit_is_the_namespace_limit_minus_the_prefix(length: int) -> None:
    name = "t" * length
    assert toolname.is_tool_name(name) is (length <= 58)
    assert len(f"tool-{'t' * 58}") == 63
