"""Pure core of the admission webhook: AdmissionReview in, JSONPatch out (no I/O).

For a pod created in a tool namespace, every container and init container gets one ``env``
entry per variable of the tool::

    {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "toolforge-envvars",
                                                       "key": "TOKEN", "optional": true}}}

- a variable the container sets itself in ``env`` is left alone (the pod spec wins);
- ``optional: true``: a variable deleted between admission and the container's start does not
  keep the pod from starting (it is then just absent);
- ephemeral containers (debugging) are not touched.

The answer is an ``AdmissionReview`` with ``response.patch`` a base64 JSONPatch (RFC 6902) and
``patchType: JSONPatch`` (Kubernetes "Dynamic Admission Control", "Response").
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["AdmissionRequest", "AdmissionReview", "env_patch", "review_response"]

Obj = dict[str, Any]


class AdmissionRequest(BaseModel):
    """What the webhook reads of ``request`` (other fields are ignored)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    uid: str
    namespace: str = ""
    operation: str = ""
    object: Obj | None = None


class AdmissionReview(BaseModel):
    """An ``admission.k8s.io/v1`` AdmissionReview request."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    api_version: str = Field(alias="apiVersion")
    kind: str
    request: AdmissionRequest


def _env_entry(name: str, secret: str) -> Obj:
    return {
        "name": name,
        "valueFrom": {"secretKeyRef": {"name": secret, "key": name, "optional": True}},
    }


def env_patch(pod: Obj, names: Sequence[str], secret: str) -> list[Obj]:
    """The JSONPatch operations that add ``names`` (from Secret ``secret``) to every container
    and init container of ``pod`` that does not set them itself; ``[]`` when nothing to add."""
    ops: list[Obj] = []
    spec = pod.get("spec") or {}
    for field in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(field) or []):
            env = container.get("env")
            own = {e.get("name") for e in env or [] if isinstance(e, dict)}
            entries = [_env_entry(n, secret) for n in names if n not in own]
            if not entries:
                continue
            path = f"/spec/{field}/{index}/env"
            if env is None:
                ops.append({"op": "add", "path": path, "value": entries})
            else:
                ops.extend({"op": "add", "path": f"{path}/-", "value": e} for e in entries)
    return ops


def review_response(
    uid: str, patch: list[Obj] | None = None, *, allowed: bool = True, message: str = ""
) -> Obj:
    """The AdmissionReview answer for request ``uid``: allowed with ``patch`` (when any), or
    refused with ``message``."""
    response: Obj = {"uid": uid, "allowed": allowed}
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
    if message:
        response["status"] = {"message": message, "code": 200 if allowed else 503}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
