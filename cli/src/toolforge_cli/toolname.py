"""The tool-name rule, the CLI's own copy (the CLI imports no server or lib code).

The owner of the rule is ``toolforge_auth.tools`` on the server side;
``tests/cli/test_cli_toolname.py`` checks that this copy says the same: the same pattern and
limit, and the same verdict on a list of valid and invalid names.

A tool's name is a DNS-1123 label (lower-case letters, digits and ``-``, starting and ending
with a letter or digit) of at most :data:`TOOL_NAME_MAX_LENGTH` = 58 characters: its namespace
is ``tool-<name>``, and a namespace name is a DNS-1123 label of at most 63 characters
(Kubernetes API conventions, "Names"), so ``63 - len("tool-") = 58``.
"""

from __future__ import annotations

import re

__all__ = [
    "TOOL_NAME_MAX_LENGTH",
    "TOOL_NAME_PATTERN",
    "InvalidToolName",
    "is_tool_name",
    "validate_tool_name",
]

#: Longest tool name: a namespace name holds 63 characters, minus ``tool-``.
TOOL_NAME_MAX_LENGTH = 63 - len("tool-")
#: A DNS-1123 label of at most :data:`TOOL_NAME_MAX_LENGTH` characters (use with fullmatch).
TOOL_NAME_PATTERN = rf"[a-z0-9](?:[-a-z0-9]{{0,{TOOL_NAME_MAX_LENGTH - 2}}}[a-z0-9])?"
_TOOL_NAME_RE = re.compile(TOOL_NAME_PATTERN)


class InvalidToolName(ValueError):  # noqa: N818 - reads as the rule it names
    """A string is not a valid tool name; the message says which rule it breaks."""


def is_tool_name(name: str) -> bool:
    """Whether ``name`` is a valid tool name (see the module documentation)."""
    return _TOOL_NAME_RE.fullmatch(name) is not None


def validate_tool_name(name: str) -> str:
    """``name`` if it is a valid tool name.

    Raises:
        InvalidToolName: empty, longer than :data:`TOOL_NAME_MAX_LENGTH`, or not a DNS-1123
            label; the message names the rule.
    """
    if not name:
        raise InvalidToolName("tool name must not be empty")
    if len(name) > TOOL_NAME_MAX_LENGTH:
        raise InvalidToolName(
            f"tool name {name!r} is {len(name)} characters long; at most "
            f"{TOOL_NAME_MAX_LENGTH} are allowed (the namespace tool-NAME must fit in 63)"
        )
    if not is_tool_name(name):
        raise InvalidToolName(
            f"tool name {name!r} is not a DNS-1123 label: use lower-case letters, digits and "
            "'-', starting and ending with a letter or digit"
        )
    return name
