"""Tool onboarding: what Toolforge's maintain-kubeusers does, as one idempotent service.

``tool create NAME`` converges the cluster and the tool's home on this state:

1. the shared ClusterRole ``toolforge-tool`` (what every tool may do in its own namespace)
   and the ValidatingAdmissionPolicy ``toolforge-tool-pods`` with its binding (what a pod in
   a tool namespace may be: see :func:`tool_pod_policy`);
2. namespace ``tool-NAME``, labelled ``toolforge.org/tool=NAME``, with the tool's stable
   numeric uid in annotation ``toolforge.org/uid`` (used by the jobs API as ``runAsUser``)
   and its home's host path in ``toolforge.org/home`` (the one hostPath its pods may mount);
3. RoleBinding ``toolforge-tool`` binding user ``NAME`` to that ClusterRole;
4. ResourceQuota and LimitRange ``tool-NAME`` (REFERENCE.md, "Kubernetes mapping");
5. the home directory ``<homes_dir>/NAME`` owned by the uid;
6. a client certificate ``CN=NAME,O=toolforge`` obtained through the
   CertificateSigningRequest API (signer ``kubernetes.io/kube-apiserver-client``), kept as
   ``~/.toolskube/client.crt`` and ``client.key``;
7. ``~/.kube/config`` pointing at them (REFERENCE.md: the ``~/.toolskube/`` layout).

Each step reads first and writes only when something differs, so a second run reports every
step ``unchanged`` and changes no object, and a run that failed half-way is completed by the
next one. The certificate is re-issued when it is missing, does not match its key, was not
issued by the cluster CA, or expires within ``renew_before_days``.

Tool names are validated before anything is touched: an invalid name creates nothing.
Concurrent ``create`` calls for *different* new tools may race on uid allocation; the admin
command is meant to be run by one operator (or one controller) at a time.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
import os
import re
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from toolforge_admin import pki
from toolforge_admin.settings import AdminSettings

#: Kubernetes label/DNS-1123 label rules for the tool name.
TOOL_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
#: ``tool-`` + name must fit a namespace name (63 characters).
TOOL_NAME_MAX = 63 - len("tool-")
TOOL_LABEL = "toolforge.org/tool"
UID_ANNOTATION = "toolforge.org/uid"
HOME_ANNOTATION = "toolforge.org/home"
POD_POLICY = "toolforge-tool-pods"
MANAGED_BY = {"app.kubernetes.io/managed-by": "toolforge-admin"}
CLUSTER_ROLE = "toolforge-tool"
CSR_SIGNER = "kubernetes.io/kube-apiserver-client"

Action = Literal["created", "updated", "unchanged", "deleted", "absent"]


class OnboardingError(Exception):
    """Onboarding failed; the message says which step and why."""


class InvalidToolName(OnboardingError, ValueError):  # noqa: N818 - reads as the rule it names
    """The tool name breaks the naming rules; nothing was created."""


def validate_tool_name(name: str) -> str:
    """Return ``name`` if it is a valid tool name, else raise :class:`InvalidToolName`.

    Rules: a DNS-1123 label (lower-case letters, digits, ``-``; starting and ending with a
    letter or digit), at most :data:`TOOL_NAME_MAX` characters so that ``tool-NAME`` is a
    valid namespace name.
    """
    if not name:
        raise InvalidToolName("tool name must not be empty")
    if len(name) > TOOL_NAME_MAX:
        raise InvalidToolName(
            f"tool name {name!r} is {len(name)} characters long; at most {TOOL_NAME_MAX} "
            "are allowed (the namespace tool-NAME must fit in 63)"
        )
    if not TOOL_NAME_RE.match(name):
        raise InvalidToolName(
            f"tool name {name!r} is not a DNS-1123 label: use lower-case letters, digits and "
            "'-', starting and ending with a letter or digit"
        )
    return name


def namespace_for(tool: str) -> str:
    """``tool-<tool>``."""
    return f"tool-{tool}"


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


def tool_cluster_role() -> Any:
    """The shared ClusterRole bound in every tool namespace (namespaced use only)."""
    all_verbs = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]
    read = ["get", "list", "watch"]
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": CLUSTER_ROLE, "labels": dict(MANAGED_BY)},
        "rules": [
            {
                "apiGroups": [""],
                "verbs": all_verbs,
                "resources": [
                    "pods",
                    "pods/exec",
                    "pods/attach",
                    "pods/portforward",
                    "services",
                    "configmaps",
                    "secrets",
                    "persistentvolumeclaims",
                ],
            },
            {
                "apiGroups": [""],
                "verbs": read,
                "resources": [
                    "pods/log",
                    "pods/status",
                    "events",
                    "endpoints",
                    "resourcequotas",
                    "limitranges",
                    "serviceaccounts",
                ],
            },
            {
                "apiGroups": ["apps"],
                "verbs": all_verbs,
                "resources": ["deployments", "deployments/scale", "replicasets"],
            },
            {"apiGroups": ["batch"], "verbs": all_verbs, "resources": ["jobs", "cronjobs"]},
            {"apiGroups": ["events.k8s.io"], "verbs": read, "resources": ["events"]},
            {"apiGroups": ["discovery.k8s.io"], "verbs": read, "resources": ["endpointslices"]},
        ],
    }


def _contains(current: Any, desired: Any) -> bool:
    """True when ``current`` (as the API returns it, with defaults filled in) has every value
    of ``desired``: dict keys recursively, lists element by element."""
    if isinstance(desired, dict):
        return isinstance(current, dict) and all(
            k in current and _contains(current[k], v) for k, v in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(current, list)
            and len(current) == len(desired)
            and all(_contains(c, d) for c, d in zip(current, desired, strict=True))
        )
    return bool(current == desired)


def _effective(field: str) -> str:
    """CEL: every container's effective ``securityContext.<field>`` (the container's own value,
    else the pod's) equals the tool's uid."""
    return (
        f"variables.containers.all(c, has(c.securityContext) && has(c.securityContext.{field})"
        f" ? c.securityContext.{field} == variables.uid"
        f" : has(object.spec.securityContext) && has(object.spec.securityContext.{field})"
        f" && object.spec.securityContext.{field} == variables.uid)"
    )


def tool_pod_policy() -> Any:
    """ValidatingAdmissionPolicy for every pod in a tool namespace (label ``toolforge.org/tool``).

    RBAC lets a tool create any pod in its own namespace; this policy decides what such a pod
    may be, whoever creates it (the tool with its certificate, the jobs API, or a controller
    creating a Job's or Deployment's pods). It plays the part of upstream Toolforge's Kyverno
    pod policies and is close to the Kubernetes "restricted" Pod Security Standard, except
    that it allows one hostPath volume, the tool's home (the namespace's
    ``toolforge.org/home`` annotation), which stands in for Toolforge's NFS:

    - no host namespaces (hostNetwork, hostPID, hostIPC) and no hostPort;
    - hostPath only for exactly the tool's home;
    - every container runs as the tool's uid and gid (``toolforge.org/uid``), with fsGroup and
      supplementalGroups, if set, equal to it;
    - no privileged containers, no added capabilities, ``allowPrivilegeEscalation: false``.

    The uid and home come from the namespace object (``namespaceObject``), which a tool cannot
    change: the namespace is cluster-scoped and the tool's RBAC is namespaced.
    """
    has_true = "(has(object.spec.{0}) && object.spec.{0})"
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": POD_POLICY, "labels": dict(MANAGED_BY)},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "namespaceSelector": {
                    "matchExpressions": [{"key": TOOL_LABEL, "operator": "Exists"}]
                },
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["pods"],
                    }
                ],
            },
            "variables": [
                {
                    "name": "uid",
                    "expression": f"int(namespaceObject.metadata.annotations['{UID_ANNOTATION}'])",
                },
                {
                    "name": "home",
                    "expression": f"namespaceObject.metadata.annotations['{HOME_ANNOTATION}']",
                },
                {
                    "name": "containers",
                    "expression": "object.spec.containers + (has(object.spec.initContainers)"
                    " ? object.spec.initContainers : [])",
                },
            ],
            "validations": [
                {
                    "expression": "!"
                    + " && !".join(
                        has_true.format(f) for f in ("hostNetwork", "hostPID", "hostIPC")
                    ),
                    "message": "host namespaces (hostNetwork, hostPID, hostIPC) are not allowed",
                    "reason": "Forbidden",
                },
                {
                    "expression": "variables.containers.all(c, !has(c.ports) ||"
                    " c.ports.all(p, !has(p.hostPort) || p.hostPort == 0))",
                    "message": "hostPort is not allowed",
                    "reason": "Forbidden",
                },
                {
                    "expression": "!has(object.spec.volumes) || object.spec.volumes.all(v,"
                    " !has(v.hostPath) || v.hostPath.path == variables.home)",
                    "messageExpression": "'the only hostPath volume allowed is the tool home '"
                    " + variables.home",
                    "reason": "Forbidden",
                },
                {
                    "expression": _effective("runAsUser"),
                    "messageExpression": "'containers must run as the tool uid ' +"
                    " string(variables.uid) + ' (securityContext.runAsUser)'",
                    "reason": "Forbidden",
                },
                {
                    "expression": _effective("runAsGroup"),
                    "messageExpression": "'containers must run with the tool gid ' +"
                    " string(variables.uid) + ' (securityContext.runAsGroup)'",
                    "reason": "Forbidden",
                },
                {
                    "expression": "!has(object.spec.securityContext) ||"
                    " ((!has(object.spec.securityContext.fsGroup) ||"
                    " object.spec.securityContext.fsGroup == variables.uid) &&"
                    " (!has(object.spec.securityContext.supplementalGroups) ||"
                    " object.spec.securityContext.supplementalGroups.all(g, g == variables.uid)))",
                    "message": "fsGroup and supplementalGroups may only be the tool gid",
                    "reason": "Forbidden",
                },
                {
                    "expression": "variables.containers.all(c, !has(c.securityContext) ||"
                    " ((!has(c.securityContext.privileged) || !c.securityContext.privileged) &&"
                    " (!has(c.securityContext.capabilities) ||"
                    " !has(c.securityContext.capabilities.add) ||"
                    " c.securityContext.capabilities.add.size() == 0)))",
                    "message": "privileged containers and added capabilities are not allowed",
                    "reason": "Forbidden",
                },
                {
                    "expression": "variables.containers.all(c, has(c.securityContext) &&"
                    " has(c.securityContext.allowPrivilegeEscalation) &&"
                    " !c.securityContext.allowPrivilegeEscalation)",
                    "message": "containers must set securityContext.allowPrivilegeEscalation:"
                    " false",
                    "reason": "Forbidden",
                },
            ],
        },
    }


def tool_pod_policy_binding() -> Any:
    """Binds :func:`tool_pod_policy` cluster-wide (its match constraints pick the namespaces)."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": POD_POLICY, "labels": dict(MANAGED_BY)},
        "spec": {"policyName": POD_POLICY, "validationActions": ["Deny"]},
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


class ToolOnboarder:
    """Creates, lists, renews and deletes tools.

    ``api`` is a kubernetes_asyncio ``ApiClient`` with cluster-admin rights (it creates
    namespaces and approves CSRs); ``cluster`` tells which server and CA go into the tools'
    kubeconfigs.
    """

    def __init__(self, api: k8s.ApiClient, cluster: ClusterAccess, settings: AdminSettings):
        self.api = api
        self.cluster = cluster
        self.settings = settings
        self.core = k8s.CoreV1Api(api)
        self.rbac = k8s.RbacAuthorizationV1Api(api)
        self.certs = k8s.CertificatesV1Api(api)
        self.admission = k8s.AdmissionregistrationV1Api(api)
        self._cluster_ca = x509.load_pem_x509_certificate(cluster.ca_pem)

    # ----- paths ------------------------------------------------------------------------------

    def home(self, tool: str) -> Path:
        """The tool's home directory."""
        return self.settings.homes_dir / tool

    def cert_path(self, tool: str) -> Path:
        """``~/.toolskube/client.crt``."""
        return self.home(tool) / ".toolskube" / "client.crt"

    def key_path(self, tool: str) -> Path:
        """``~/.toolskube/client.key``."""
        return self.home(tool) / ".toolskube" / "client.key"

    def kubeconfig_path(self, tool: str) -> Path:
        """``~/.kube/config``."""
        return self.home(tool) / ".kube" / "config"

    # ----- create -----------------------------------------------------------------------------

    async def create(self, tool: str) -> ToolResult:
        """Onboard ``tool`` (idempotent). Raises :class:`InvalidToolName` before any change,
        :class:`OnboardingError` when a step fails (a later run completes the rest)."""
        validate_tool_name(tool)
        ns = namespace_for(tool)
        result = ToolResult(tool=tool, namespace=ns, uid=None, home=self.home(tool))
        result.steps.append(await self._ensure_cluster_role())
        result.steps.extend(await self._ensure_pod_policy())
        step, uid = await self._ensure_namespace(tool)
        result.uid = uid
        result.steps.append(step)
        result.steps.append(await self._ensure_role_binding(tool))
        result.steps.append(await self._ensure_quota(tool))
        result.steps.append(await self._ensure_limit_range(tool))
        result.steps.append(self._ensure_home(tool, uid))
        result.steps.append(await self._ensure_certificate(tool, uid, force=False))
        result.steps.append(self._ensure_kubeconfig(tool, uid))
        if step.action == "created":
            await self._wait_default_service_account(ns)
        return result

    async def _ensure_cluster_role(self) -> Step:
        desired: Any = tool_cluster_role()
        return await self._converge(
            "clusterrole",
            desired,
            read=lambda: self.rbac.read_cluster_role(CLUSTER_ROLE),
            create=self.rbac.create_cluster_role,
            replace=lambda body: self.rbac.replace_cluster_role(CLUSTER_ROLE, body),
            same=lambda current: self._plain(current.rules) == desired["rules"],
        )

    async def _ensure_pod_policy(self) -> list[Step]:
        policy: Any = tool_pod_policy()
        binding: Any = tool_pod_policy_binding()
        a = self.admission
        return [
            await self._converge(
                "pod policy",
                policy,
                read=lambda: a.read_validating_admission_policy(POD_POLICY),
                create=a.create_validating_admission_policy,
                replace=lambda body: a.replace_validating_admission_policy(POD_POLICY, body),
                same=lambda current: _contains(self._plain(current.spec), policy["spec"]),
            ),
            await self._converge(
                "pod policy binding",
                binding,
                read=lambda: a.read_validating_admission_policy_binding(POD_POLICY),
                create=a.create_validating_admission_policy_binding,
                replace=lambda body: a.replace_validating_admission_policy_binding(
                    POD_POLICY, body
                ),
                same=lambda current: _contains(self._plain(current.spec), binding["spec"]),
            ),
        ]

    async def _ensure_namespace(self, tool: str) -> tuple[Step, int]:
        name = namespace_for(tool)
        try:
            current = await self.core.read_namespace(name)
        except ApiException as exc:
            if exc.status != 404:
                raise _api_error("read namespace", exc) from exc
            current = None
        if current is not None:
            if current.status and current.status.phase == "Terminating":
                raise OnboardingError(
                    f"namespace {name} is being deleted; run the command again once it is gone"
                )
            annotations = current.metadata.annotations or {}
            labels = current.metadata.labels or {}
            recorded = _uid_of(current)
            uid = recorded if recorded is not None else await self._new_uid(tool)
            want_labels = {TOOL_LABEL: tool, **MANAGED_BY}
            want_annotations = {UID_ANNOTATION: str(uid), HOME_ANNOTATION: str(self.home(tool))}
            if all(labels.get(k) == v for k, v in want_labels.items()) and all(
                annotations.get(k) == v for k, v in want_annotations.items()
            ):
                return Step("namespace", "unchanged", name), uid
            current.metadata.labels = {**labels, **want_labels}
            current.metadata.annotations = {**annotations, **want_annotations}
            await self._call("update namespace", self.core.replace_namespace(name, current))
            return Step("namespace", "updated", name), uid
        uid = await self._new_uid(tool)
        body: Any = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "labels": {TOOL_LABEL: tool, **MANAGED_BY},
                "annotations": {UID_ANNOTATION: str(uid), HOME_ANNOTATION: str(self.home(tool))},
            },
        }
        await self._call("create namespace", self.core.create_namespace(body))
        return Step("namespace", "created", f"{name} (uid {uid})"), uid

    async def _new_uid(self, tool: str) -> int:
        """A uid for a new tool: its old home's owner if that is in range, else max + 1."""
        lo, hi = self.settings.uid_min, self.settings.uid_max
        uids = (_uid_of(ns) for ns in await self._tool_namespaces())
        used = {uid for uid in uids if uid is not None}
        home = self.home(tool)
        if home.is_dir() and lo <= home.stat().st_uid <= hi and home.stat().st_uid not in used:
            return home.stat().st_uid
        uid = max(used | {lo - 1}) + 1
        if uid > hi:
            free = sorted(set(range(lo, hi + 1)) - used)
            if not free:
                raise OnboardingError(f"no free uid left in {lo}..{hi}")
            uid = free[0]
        return uid

    async def _ensure_role_binding(self, tool: str) -> Step:
        ns = namespace_for(tool)
        desired: Any = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": CLUSTER_ROLE, "namespace": ns, "labels": dict(MANAGED_BY)},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": CLUSTER_ROLE,
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": tool}],
        }
        try:
            current = await self.rbac.read_namespaced_role_binding(CLUSTER_ROLE, ns)
        except ApiException as exc:
            if exc.status != 404:
                raise _api_error("read RoleBinding", exc) from exc
            await self._call(
                "create RoleBinding", self.rbac.create_namespaced_role_binding(ns, desired)
            )
            return Step("rolebinding", "created", f"user {tool} -> {CLUSTER_ROLE}")
        if (
            self._plain(current.subjects) == desired["subjects"]
            and self._plain(current.role_ref) == desired["roleRef"]
        ):
            return Step("rolebinding", "unchanged", CLUSTER_ROLE)
        if self._plain(current.role_ref) != desired["roleRef"]:
            # roleRef is immutable: replace the binding.
            await self._call(
                "delete RoleBinding", self.rbac.delete_namespaced_role_binding(CLUSTER_ROLE, ns)
            )
            await self._call(
                "create RoleBinding", self.rbac.create_namespaced_role_binding(ns, desired)
            )
        else:
            desired["metadata"]["resourceVersion"] = current.metadata.resource_version
            await self._call(
                "update RoleBinding",
                self.rbac.replace_namespaced_role_binding(CLUSTER_ROLE, ns, desired),
            )
        return Step("rolebinding", "updated", CLUSTER_ROLE)

    async def _ensure_quota(self, tool: str) -> Step:
        ns = namespace_for(tool)
        hard = dict(self.settings.quota)
        desired: Any = {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": ns, "namespace": ns, "labels": dict(MANAGED_BY)},
            "spec": {"hard": hard},
        }
        return await self._converge(
            "resourcequota",
            desired,
            read=lambda: self.core.read_namespaced_resource_quota(ns, ns),
            create=lambda body: self.core.create_namespaced_resource_quota(ns, body),
            replace=lambda body: self.core.replace_namespaced_resource_quota(ns, ns, body),
            same=lambda current: (current.spec.hard or {}) == hard,
        )

    async def _ensure_limit_range(self, tool: str) -> Step:
        ns = namespace_for(tool)
        limits = [{"type": "Container", **self.settings.limit_range}]
        desired: Any = {
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": {"name": ns, "namespace": ns, "labels": dict(MANAGED_BY)},
            "spec": {"limits": limits},
        }
        return await self._converge(
            "limitrange",
            desired,
            read=lambda: self.core.read_namespaced_limit_range(ns, ns),
            create=lambda body: self.core.create_namespaced_limit_range(ns, body),
            replace=lambda body: self.core.replace_namespaced_limit_range(ns, ns, body),
            same=lambda current: self._plain(current.spec.limits) == limits,
        )

    async def _converge(
        self,
        step: str,
        desired: Any,
        *,
        read: Callable[[], Awaitable[Any]],
        create: Callable[[Any], Awaitable[Any]],
        replace: Callable[[Any], Awaitable[Any]],
        same: Callable[[Any], bool],
    ) -> Step:
        """Create ``desired`` if absent; replace it if ``same(current)`` is false; else nothing.

        The replace carries the current resourceVersion, so a concurrent change gives a 409
        instead of being overwritten.
        """
        kind, name = desired["kind"], desired["metadata"]["name"]
        try:
            current = await read()
        except ApiException as exc:
            if exc.status != 404:
                raise _api_error(f"read {kind}", exc) from exc
            await self._call(f"create {kind}", create(desired))
            return Step(step, "created", name)
        if same(current):
            return Step(step, "unchanged", name)
        desired["metadata"]["resourceVersion"] = current.metadata.resource_version
        await self._call(f"update {kind}", replace(desired))
        return Step(step, "updated", name)

    def _ensure_home(self, tool: str, uid: int) -> Step:
        """The home and its credential directories, owned by the tool's uid."""
        home = self.home(tool)
        created = not home.is_dir()
        changed = False
        home.parent.mkdir(parents=True, exist_ok=True)
        for path, mode in ((home, 0o750), (home / ".toolskube", 0o700), (home / ".kube", 0o700)):
            if not path.is_dir():
                path.mkdir(mode=mode)
                changed = True
            st = path.stat()
            if (st.st_uid, st.st_gid, st.st_mode & 0o7777) != (uid, uid, mode):
                os.chown(path, uid, uid)
                os.chmod(path, mode)
                changed = True
        action: Action = "created" if created else "updated" if changed else "unchanged"
        return Step("home", action, str(home))

    def _certificate_ok(self, tool: str) -> tuple[bool, str]:
        try:
            cert = pki.load_cert(self.cert_path(tool))
            key = pki.load_key(self.key_path(tool))
        except pki.PKIError:
            return False, "no certificate yet"
        if not pki.key_matches(cert, key):
            return False, "certificate does not match its key"
        if not pki.issued_by(cert, self._cluster_ca):
            return False, "certificate not issued by the cluster CA"
        if cert.subject != pki.subject(tool, ["toolforge"]):
            return False, f"unexpected subject {cert.subject.rfc4514_string()}"
        window = dt.timedelta(days=self.settings.renew_before_days)
        if pki.expires_within(cert, window):
            return False, f"expires {cert.not_valid_after_utc:%Y-%m-%d}"
        return True, f"valid until {cert.not_valid_after_utc:%Y-%m-%d}"

    async def _ensure_certificate(self, tool: str, uid: int, force: bool) -> Step:
        ok, why = self._certificate_ok(tool)
        if ok and not force:
            return Step("certificate", "unchanged", why)
        existed = self.cert_path(tool).exists()
        key = pki.generate_key()
        cert = await self._sign_via_csr(tool, key)
        # Key first, then certificate: a crash in between leaves a mismatch, which the next
        # run detects and repairs.
        pki.write_key(self.key_path(tool), key)
        pki.write_cert(self.cert_path(tool), cert)
        for path in (self.key_path(tool), self.cert_path(tool)):
            os.chown(path, uid, uid)
        detail = f"CN={tool},O=toolforge valid until {cert.not_valid_after_utc:%Y-%m-%d}"
        return Step("certificate", "updated" if existed else "created", f"{detail} ({why})")

    async def _sign_via_csr(self, tool: str, key: pki.PrivateKey) -> x509.Certificate:
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(pki.subject(tool, ["toolforge"]))
            .sign(key, hashes.SHA256())
        )
        name = f"toolforge-tool-{tool}"
        body: Any = {
            "apiVersion": "certificates.k8s.io/v1",
            "kind": "CertificateSigningRequest",
            "metadata": {"name": name, "labels": {TOOL_LABEL: tool, **MANAGED_BY}},
            "spec": {
                "request": base64.b64encode(csr.public_bytes(Encoding.PEM)).decode(),
                "signerName": CSR_SIGNER,
                "usages": ["digital signature", "client auth"],
                "expirationSeconds": self.settings.cert_days * 86400,
            },
        }
        await self._delete_csr(tool)
        await self._call(
            "create CertificateSigningRequest", self.certs.create_certificate_signing_request(body)
        )
        try:
            created = await self.certs.read_certificate_signing_request(name)
            created.status.conditions = [
                k8s.V1CertificateSigningRequestCondition(
                    type="Approved",
                    status="True",
                    reason="ToolforgeOnboarding",
                    message=f"toolforge-admin onboarding of tool {tool}",
                )
            ]
            await self._call(
                "approve CertificateSigningRequest",
                self.certs.replace_certificate_signing_request_approval(name, created),
            )
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.settings.csr_timeout_seconds
            while True:
                current = await self.certs.read_certificate_signing_request(name)
                status = current.status
                if status and status.certificate:
                    cert = x509.load_pem_x509_certificate(base64.b64decode(status.certificate))
                    break
                for cond in (status.conditions or []) if status else []:
                    if cond.type in ("Denied", "Failed"):
                        raise OnboardingError(
                            f"CSR {name} {cond.type.lower()}: {cond.message or cond.reason}"
                        )
                if loop.time() > deadline:
                    raise OnboardingError(
                        f"CSR {name} was approved but not signed within "
                        f"{self.settings.csr_timeout_seconds:.0f} s: is the controller-manager "
                        "running with --cluster-signing-cert-file?"
                    )
                await asyncio.sleep(0.2)
        except ApiException as exc:
            raise _api_error("CertificateSigningRequest", exc) from exc
        finally:
            await self._delete_csr(tool)
        if not pki.key_matches(cert, key) or cert.subject != pki.subject(tool, ["toolforge"]):
            raise OnboardingError(f"CSR {name}: the signed certificate does not match the request")
        return cert

    async def _delete_csr(self, tool: str) -> bool:
        try:
            await self.certs.delete_certificate_signing_request(f"toolforge-tool-{tool}")
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise _api_error("delete CertificateSigningRequest", exc) from exc
        return True

    def kubeconfig_text(self, tool: str) -> str:
        """The tool's ``~/.kube/config``: cluster CA inline, client certificate by relative path.

        client-go (and kubernetes_asyncio) resolve relative paths against the kubeconfig's own
        directory, so the file works wherever the home is mounted (on the host or at
        ``/data/project/<tool>`` in a pod).
        """
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "toolforge",
                    "cluster": {
                        "server": self.cluster.server,
                        "certificate-authority-data": base64.b64encode(
                            self.cluster.ca_pem
                        ).decode(),
                    },
                }
            ],
            "users": [
                {
                    "name": f"tf-{tool}",
                    "user": {
                        "client-certificate": "../.toolskube/client.crt",
                        "client-key": "../.toolskube/client.key",
                    },
                }
            ],
            "contexts": [
                {
                    "name": "toolforge",
                    "context": {
                        "cluster": "toolforge",
                        "user": f"tf-{tool}",
                        "namespace": namespace_for(tool),
                    },
                }
            ],
            "current-context": "toolforge",
        }
        return yaml.safe_dump(doc, sort_keys=False)

    def _ensure_kubeconfig(self, tool: str, uid: int) -> Step:
        path = self.kubeconfig_path(tool)
        text = self.kubeconfig_text(tool)
        try:
            if path.read_text() == text:
                return Step("kubeconfig", "unchanged", str(path))
            action: Action = "updated"
        except OSError:
            action = "created"
        tmp = path.with_name(".config.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chown(tmp, uid, uid)
        os.replace(tmp, path)
        return Step("kubeconfig", action, str(path))

    async def _wait_default_service_account(self, ns: str, timeout: float = 30.0) -> None:
        """Pods are refused until the controller-manager made ``default``; wait for it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            try:
                await self.core.read_namespaced_service_account("default", ns)
                return
            except ApiException as exc:
                if exc.status != 404:
                    raise _api_error("read ServiceAccount", exc) from exc
            await asyncio.sleep(0.2)
        raise OnboardingError(f"ServiceAccount default did not appear in {ns} in {timeout} s")

    # ----- renew, list, delete ----------------------------------------------------------------

    async def renew(self, tool: str, force: bool = False) -> ToolResult:
        """Re-issue the tool's certificate if it expires soon (or always, with ``force``)."""
        validate_tool_name(tool)
        info = await self._info(tool)
        if info is None or info.uid is None:
            raise OnboardingError(f"tool {tool!r} is not onboarded")
        result = ToolResult(tool=tool, namespace=info.namespace, uid=info.uid, home=self.home(tool))
        result.steps.append(await self._ensure_certificate(tool, info.uid, force=force))
        return result

    async def list(self) -> list[ToolInfo]:
        """Every onboarded tool, sorted by name."""
        infos = (self._to_info(ns) for ns in await self._tool_namespaces())
        return sorted(infos, key=lambda t: t.tool)

    async def _tool_namespaces(self) -> tuple[Any, ...]:
        """Every namespace labelled as a tool's."""
        try:
            return tuple((await self.core.list_namespace(label_selector=TOOL_LABEL)).items)
        except ApiException as exc:
            raise _api_error("list namespaces", exc) from exc

    async def _info(self, tool: str) -> ToolInfo | None:
        try:
            return self._to_info(await self.core.read_namespace(namespace_for(tool)))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _api_error("read namespace", exc) from exc

    def _to_info(self, ns: Any) -> ToolInfo:
        tool = (ns.metadata.labels or {}).get(TOOL_LABEL, ns.metadata.name)
        expires = None
        with contextlib.suppress(pki.PKIError):
            expires = pki.load_cert(self.cert_path(tool)).not_valid_after_utc
        return ToolInfo(
            tool=tool,
            namespace=ns.metadata.name,
            uid=_uid_of(ns),
            phase=(ns.status.phase if ns.status else None) or "Unknown",
            cert_expires=expires,
        )

    async def delete(self, tool: str, purge_home: bool = False) -> ToolResult:
        """Remove the tool's namespace (and with it every object in it), its pending CSR and
        its credentials. The home's data stays unless ``purge_home``."""
        validate_tool_name(tool)
        ns = namespace_for(tool)
        info = await self._info(tool)
        result = ToolResult(
            tool=tool, namespace=ns, uid=info.uid if info else None, home=self.home(tool)
        )
        try:
            await self.core.delete_namespace(ns)
            result.steps.append(Step("namespace", "deleted", ns))
        except ApiException as exc:
            if exc.status != 404:
                raise _api_error("delete namespace", exc) from exc
            result.steps.append(Step("namespace", "absent", ns))
        deleted = await self._delete_csr(tool)
        result.steps.append(Step("csr", "deleted" if deleted else "absent"))
        home = self.home(tool)
        if purge_home:
            existed = home.exists()
            shutil.rmtree(home, ignore_errors=True)
            result.steps.append(Step("home", "deleted" if existed else "absent", str(home)))
        else:
            removed = False
            for path in (self.key_path(tool), self.cert_path(tool), self.kubeconfig_path(tool)):
                if path.exists():
                    path.unlink()
                    removed = True
            result.steps.append(Step("credentials", "deleted" if removed else "absent"))
        return result

    # ----- helpers ----------------------------------------------------------------------------

    def _plain(self, obj: Any) -> Any:
        """Model objects -> the plain camelCase dicts the API speaks."""
        return self.api.sanitize_for_serialization(obj)

    async def _call(self, what: str, coro: Any) -> Any:
        try:
            return await coro
        except ApiException as exc:
            raise _api_error(what, exc) from exc


def _uid_of(namespace: Any) -> int | None:
    """The uid recorded in a tool namespace's ``toolforge.org/uid`` annotation, if any."""
    text = (namespace.metadata.annotations or {}).get(UID_ANNOTATION, "")
    return int(text) if text.isdigit() else None


def _api_error(what: str, exc: ApiException) -> OnboardingError:
    message = exc.reason
    with contextlib.suppress(TypeError, ValueError, AttributeError):
        message = json.loads(exc.body or b"").get("message", message)
    return OnboardingError(f"{what} failed ({exc.status}): {message}")
