"""What onboarding reports (one :class:`Step` per object it converged, a :class:`ToolResult` per
tool, :class:`ToolInfo` per listed tool), and where the cluster is (:class:`ClusterAccess`)."""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

__all__ = ["Action", "ClusterAccess", "OnboardingError", "Step", "ToolInfo", "ToolResult"]

Action = Literal["created", "updated", "unchanged", "deleted", "absent"]


class OnboardingError(Exception):
    """Onboarding failed; the message says which step and why."""


@dataclass
class Step:
    """One step of an onboarding run and what it did."""

    name: str
    action: Action
    detail: str = ""


@dataclass
class ToolResult:
    """The outcome of ``create``/``delete``/``renew`` for one tool."""

    tool: str
    namespace: str
    uid: int | None
    home: Path
    steps: list[Step] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """True when any step created, updated or deleted something."""
        return any(s.action not in ("unchanged", "absent") for s in self.steps)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (``--output json``)."""
        return {
            "tool": self.tool,
            "namespace": self.namespace,
            "uid": self.uid,
            "home": str(self.home),
            "changed": self.changed,
            "steps": [{"name": s.name, "action": s.action, "detail": s.detail} for s in self.steps],
        }


@dataclass
class ToolInfo:
    """One onboarded tool, as listed."""

    tool: str
    namespace: str
    uid: int | None
    phase: str
    cert_expires: dt.datetime | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "tool": self.tool,
            "namespace": self.namespace,
            "uid": self.uid,
            "phase": self.phase,
            "cert_expires": self.cert_expires.isoformat() if self.cert_expires else None,
        }


@dataclass(frozen=True)
class ClusterAccess:
    """Where the cluster is, as read from the admin kubeconfig."""

    server: str
    ca_pem: bytes

    @classmethod
    def from_kubeconfig(cls, path: Path) -> ClusterAccess:
        """Read the current context's server URL and CA. Raises :class:`OnboardingError`."""
        try:
            doc = yaml.safe_load(path.read_text())
            ctx_name = doc["current-context"]
            ctx = next(c["context"] for c in doc["contexts"] if c["name"] == ctx_name)
            cluster = next(c["cluster"] for c in doc["clusters"] if c["name"] == ctx["cluster"])
            if "certificate-authority-data" in cluster:
                ca = base64.b64decode(cluster["certificate-authority-data"])
            else:
                ca = (path.parent / cluster["certificate-authority"]).read_bytes()
            return cls(server=cluster["server"], ca_pem=ca)
        except (OSError, KeyError, StopIteration, TypeError, yaml.YAMLError) as exc:
            raise OnboardingError(f"cannot read cluster details from {path}: {exc}") from exc
