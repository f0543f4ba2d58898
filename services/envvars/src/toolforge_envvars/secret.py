"""The Secret that holds a tool's variables: pure builders and readers (no I/O).

One Secret per tool, ``toolforge-envvars`` in ``tool-<tool>``, one key per variable (the
Kubernetes Secret ``data``, base64), labelled ``app.kubernetes.io/managed-by:
toolforge-envvars-api``. Its annotation :data:`NAMES_ANNOTATION` lists the variable names, so
that the admission webhook can read metadata only (never a value) to know which
``secretKeyRef`` entries to add to a pod. Why one Secret per tool (services/envvars/README.md):
every write is one atomic compare-and-swap of one object (the quota of variables is then exact
and race-free), and the namespace's ResourceQuota of Secrets is not spent on variables.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any

from toolforge_auth.tools import ENVVARS_MANAGER, MANAGED_BY_LABEL, namespace_for

__all__ = ["NAMES_ANNOTATION", "names_of", "secret_for", "values_of"]

Obj = dict[str, Any]
#: Annotation of the Secret: the variable names, sorted, comma-separated.
NAMES_ANNOTATION = "envvars.toolforge.org/names"
# What a name in the annotation may be (an environment variable name, upper case); anything
# else (a hand edit by the tool) is ignored by the webhook.
_ANNOTATED_NAME = re.compile(r"[A-Z][A-Z_0-9]{2,}[A-Z0-9]")


def secret_for(tool: str, name: str, values: Mapping[str, str]) -> Obj:
    """The Secret ``name`` in the tool's namespace holding ``values`` (name -> value)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": name,
            "namespace": namespace_for(tool),
            "labels": {MANAGED_BY_LABEL: ENVVARS_MANAGER},
            "annotations": {NAMES_ANNOTATION: ",".join(sorted(values))},
        },
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in sorted(values.items())},
    }


def values_of(secret: Obj | None) -> dict[str, str]:
    """The variables of a Secret as read (``{}`` for ``None``); keys whose data is not base64
    of UTF-8 text (a hand edit) are left out."""
    out: dict[str, str] = {}
    for key, data in ((secret or {}).get("data") or {}).items():
        try:
            out[key] = base64.b64decode(data, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError, TypeError):
            continue
    return out


def names_of(metadata: Obj) -> list[str]:
    """The variable names of a Secret's metadata (:data:`NAMES_ANNOTATION`), sorted, only
    those shaped as variable names."""
    text = (metadata.get("annotations") or {}).get(NAMES_ANNOTATION) or ""
    return sorted({n for n in text.split(",") if _ANNOTATED_NAME.fullmatch(n)})
