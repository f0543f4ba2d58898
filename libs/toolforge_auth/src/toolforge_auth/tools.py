"""The tool contract: what makes a Toolforge tool, in one place.

Every part of the platform agrees on these facts (REFERENCE.md, "Identity and the gateway"):
onboarding (``toolforge-admin``) writes them, the gateway and the backends rely on them. The
CLI keeps its own copy of the name rule (it must stay free of server code) and a test checks
that copy against this module.

- A tool's name is a DNS-1123 label (RFC 1123 host name label, as Kubernetes uses it: lower-case
  letters, digits and ``-``, starting and ending with a letter or digit) of at most
  :data:`TOOL_NAME_MAX_LENGTH` = 58 characters. The limit comes from the namespace: a tool's
  namespace is ``tool-<name>``, and a namespace name is itself a DNS-1123 label of at most 63
  characters (Kubernetes API conventions, "Names"), so ``63 - len("tool-") = 58``. Every other
  place a tool name goes is roomier (a certificate CN holds 64, a label value 63).
- The tool is the Kubernetes user ``<name>`` in group :data:`TOOL_GROUP`; its certificate's
  subject is ``CN=<name>,O=toolforge``.
- Its namespace carries the label :data:`TOOL_LABEL` (``toolforge.org/tool=<name>``) and the
  annotations :data:`UID_ANNOTATION` (the tool's stable Unix uid) and :data:`HOME_ANNOTATION`
  (its home directory on the nodes); tools cannot read or change them (the namespace is
  cluster-scoped, the tool's RBAC namespaced).
- Objects carry ``app.kubernetes.io/managed-by`` (:data:`MANAGED_BY_LABEL`) naming the part of
  the platform that owns them: :data:`ADMIN_MANAGER` for what onboarding writes,
  :data:`JOBS_MANAGER` for the jobs framework's objects (upstream's value),
  :data:`ENVVARS_MANAGER` for the Secret of a tool's environment variables.
"""

from __future__ import annotations

import re

__all__ = [
    "ADMIN_MANAGER",
    "ENVVARS_MANAGER",
    "HOME_ANNOTATION",
    "JOBS_MANAGER",
    "MANAGED_BY_LABEL",
    "NAMESPACE_PREFIX",
    "TOOL_GROUP",
    "TOOL_LABEL",
    "TOOL_NAME_MAX_LENGTH",
    "TOOL_NAME_PATTERN",
    "UID_ANNOTATION",
    "InvalidToolName",
    "is_tool_name",
    "namespace_for",
    "tool_of_namespace",
    "validate_tool_name",
]

#: ``tool-``: the prefix of every tool namespace.
NAMESPACE_PREFIX = "tool-"
#: Longest tool name: a namespace name holds 63 characters (DNS-1123 label), minus ``tool-``.
TOOL_NAME_MAX_LENGTH = 63 - len(NAMESPACE_PREFIX)
#: A DNS-1123 label of at most :data:`TOOL_NAME_MAX_LENGTH` characters (use with fullmatch).
TOOL_NAME_PATTERN = rf"[a-z0-9](?:[-a-z0-9]{{0,{TOOL_NAME_MAX_LENGTH - 2}}}[a-z0-9])?"
_TOOL_NAME_RE = re.compile(TOOL_NAME_PATTERN)

#: The group of every tool user (its certificate's ``O``; impersonated with the tool).
TOOL_GROUP = "toolforge"
#: Label of a tool namespace: ``toolforge.org/tool=<name>``.
TOOL_LABEL = "toolforge.org/tool"
#: Annotation of a tool namespace: the tool's stable Unix uid (decimal).
UID_ANNOTATION = "toolforge.org/uid"
#: Annotation of a tool namespace: the tool's home directory on the nodes.
HOME_ANNOTATION = "toolforge.org/home"
#: The label naming the platform component that owns an object.
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
#: Its value on what onboarding writes (namespace, quota, RBAC, policies).
ADMIN_MANAGER = "toolforge-admin"
#: Its value on the jobs framework's objects (REFERENCE.md, "Kubernetes mapping").
JOBS_MANAGER = "toolforge-jobs-framework"
#: Its value on the Secret that holds a tool's environment variables (the envvars API).
ENVVARS_MANAGER = "toolforge-envvars-api"


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


def namespace_for(tool: str) -> str:
    """``tool-<tool>``, the tool's namespace.

    Raises:
        InvalidToolName: ``tool`` is not a tool name (so no other namespace can be named).
    """
    return NAMESPACE_PREFIX + validate_tool_name(tool)


def tool_of_namespace(namespace: str) -> str | None:
    """The tool whose namespace ``namespace`` is, ``None`` for any other namespace."""
    if not namespace.startswith(NAMESPACE_PREFIX):
        return None
    tool = namespace[len(NAMESPACE_PREFIX) :]
    return tool if is_tool_name(tool) else None
