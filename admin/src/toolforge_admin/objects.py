"""Pure builders of the objects onboarding writes (JSON dicts as the apiserver takes them), and
the comparison that tells whether a stored object already has what was asked. No I/O: tested
against golden files (``tests/admin/golden``).

Names and labels of the tool contract come from :mod:`toolforge_auth.tools`.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from toolforge_admin import web_policies
from toolforge_auth.tools import (
    ADMIN_MANAGER,
    HOME_ANNOTATION,
    MANAGED_BY_LABEL,
    TOOL_LABEL,
    UID_ANNOTATION,
    namespace_for,
)

__all__ = [
    "CLUSTER_ROLE",
    "CSR_SIGNER",
    "MANAGED_BY",
    "POD_POLICY",
    "Obj",
    "contains",
    "csr_approval",
    "csr_name",
    "csr_object",
    "kubeconfig_document",
    "limit_range",
    "namespace_object",
    "registry_pull_secret",
    "resource_quota",
    "role_binding",
    "tool_cluster_role",
    "tool_pod_policy",
    "tool_pod_policy_binding",
]

Obj = dict[str, Any]
POD_POLICY = "toolforge-tool-pods"
CLUSTER_ROLE = "toolforge-tool"
CSR_SIGNER = "kubernetes.io/kube-apiserver-client"
#: The managed-by label of everything onboarding writes.
MANAGED_BY = {MANAGED_BY_LABEL: ADMIN_MANAGER}


def namespace_object(tool: str, *, uid: int, home: str) -> Obj:
    """Namespace ``tool-<tool>`` with the tool label and its uid and home annotations."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": namespace_for(tool),
            "labels": {TOOL_LABEL: tool, **MANAGED_BY},
            "annotations": {UID_ANNOTATION: str(uid), HOME_ANNOTATION: home},
        },
    }


def role_binding(tool: str) -> Obj:
    """RoleBinding ``toolforge-tool`` in the tool's namespace: user ``<tool>`` to the shared
    ClusterRole."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {
            "name": CLUSTER_ROLE,
            "namespace": namespace_for(tool),
            "labels": dict(MANAGED_BY),
        },
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": CLUSTER_ROLE,
        },
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": tool}],
    }


def resource_quota(tool: str, hard: dict[str, str]) -> Obj:
    """ResourceQuota ``tool-<tool>`` with ``hard`` (REFERENCE.md, "Kubernetes mapping")."""
    ns = namespace_for(tool)
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": ns, "namespace": ns, "labels": dict(MANAGED_BY)},
        "spec": {"hard": dict(hard)},
    }


def registry_pull_secret(tool: str, name: str, address: str, username: str, password: str) -> Obj:
    """The image pull Secret ``name`` of ``tool``'s namespace: a ``kubernetes.io/dockerconfigjson``
    Secret (``{"auths": {address: {username, password, auth}}}``, ``auth`` being base64 of
    ``username:password``) that the kubelet presents when pulling ``address/...`` images."""
    ns = namespace_for(tool)
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    config = {"auths": {address: {"username": username, "password": password, "auth": token}}}
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": ns, "labels": dict(MANAGED_BY)},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(text.encode()).decode()},
    }


def limit_range(tool: str, container: dict[str, dict[str, str]]) -> Obj:
    """LimitRange ``tool-<tool>`` with one ``Container`` limit (``default``, ``max``...)."""
    ns = namespace_for(tool)
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": ns, "namespace": ns, "labels": dict(MANAGED_BY)},
        "spec": {"limits": [{"type": "Container", **container}]},
    }


def csr_name(tool: str) -> str:
    """The name of the tool's CertificateSigningRequest: ``toolforge-tool-<tool>``."""
    return f"toolforge-tool-{tool}"


def csr_object(tool: str, request_pem: bytes, *, expiration_seconds: int) -> Obj:
    """A CertificateSigningRequest for the kube-apiserver client signer (Kubernetes
    "Certificates and Certificate Signing Requests"): ``request_pem`` is the PEM CSR."""
    return {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": csr_name(tool), "labels": {TOOL_LABEL: tool, **MANAGED_BY}},
        "spec": {
            "request": base64.b64encode(request_pem).decode(),
            "signerName": CSR_SIGNER,
            "usages": ["digital signature", "client auth"],
            "expirationSeconds": expiration_seconds,
        },
    }


def csr_approval(current: Obj, tool: str) -> Obj:
    """``current`` (a CertificateSigningRequest as read) with the ``Approved`` condition, the
    body of a PUT to its ``/approval`` subresource."""
    condition = {
        "type": "Approved",
        "status": "True",
        "reason": "ToolforgeOnboarding",
        "message": f"toolforge-admin onboarding of tool {tool}",
    }
    return {**current, "status": {**(current.get("status") or {}), "conditions": [condition]}}


def kubeconfig_document(tool: str, *, server: str, ca_pem: bytes) -> Obj:
    """The tool's ``~/.kube/config``: cluster CA inline, client certificate by relative path.

    client-go (and kubernetes_asyncio) resolve relative paths against the kubeconfig's own
    directory, so the file works wherever the home is mounted (on the host or at
    ``/data/project/<tool>`` in a pod).
    """
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "toolforge",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
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


def tool_cluster_role() -> Obj:
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
            # HTTPRoutes, confined by web_policies.route_policy().
            web_policies.TOOL_ROUTE_RULE,
        ],
    }


def contains(current: Any, desired: Any) -> bool:
    """True when ``current`` (as the API returns it, with defaults filled in) has every value
    of ``desired``: dict keys recursively, lists element by element."""
    if isinstance(desired, dict):
        return isinstance(current, dict) and all(
            k in current and contains(current[k], v) for k, v in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(current, list)
            and len(current) == len(desired)
            and all(contains(c, d) for c, d in zip(current, desired, strict=True))
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


def tool_pod_policy() -> Obj:
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


def tool_pod_policy_binding() -> Obj:
    """Binds :func:`tool_pod_policy` cluster-wide (its match constraints pick the namespaces)."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": POD_POLICY, "labels": dict(MANAGED_BY)},
        "spec": {"policyName": POD_POLICY, "validationActions": ["Deny"]},
    }
