"""Confinement of tools' web routes: what an ``HTTPRoute`` in a tool namespace may say.

Toolforge lets each tool publish web services at its own host, ``<tool>.<public domain>``,
through the platform's one Gateway (Gateway API, ``gateway.networking.k8s.io/v1``). The jobs
API creates the ``HTTPRoute`` acting as the tool (impersonation), so the tool's own RBAC allows
HTTPRoutes in its namespace (:data:`TOOL_ROUTE_RULE`); this ValidatingAdmissionPolicy decides
which ones, whoever sends them. It plays the part of upstream Toolforge's ingress admission
controller (which checked a tool's Ingress hosts), with the built-in CEL admission instead of a
webhook. A route in a tool namespace (label ``toolforge.org/tool``) must:

- name hostnames, and only the tool's own host ``<tool>.<domain>`` (no wildcard, no other
  tool's host, no empty list, which would match every host on the listener);
- attach only to the platform's Gateway (``parentRefs`` all of group
  ``gateway.networking.k8s.io``, kind ``Gateway``, with the Gateway's namespace and name,
  written out: a parentRef without a namespace means the route's own namespace);
- send traffic (``backendRefs``, and ``requestMirror`` filters on rules and on backends) only
  to core ``Service`` objects in its own namespace. (Gateway API would already refuse a
  cross-namespace reference without a ``ReferenceGrant``, which tools cannot create; this
  rule makes the refusal happen at admission, with a message.)

The tool is read from the namespace's ``toolforge.org/tool`` label (``namespaceObject``), which
a tool cannot change. The domain and the Gateway come from the parameter ConfigMap
:data:`PARAMS_NAME` in :data:`PARAMS_NAMESPACE` (:func:`routing_params`, keys ``domain``,
``gatewayNamespace``, ``gatewayName``), written by whoever installs the Gateway, so the policy
holds no setting of its own. Without that ConfigMap every route in a tool namespace is refused
(``parameterNotFoundAction: Deny``): the policy fails closed.

Tools get no RBAC for Ingress, Gateway, GatewayClass, ReferenceGrant or the other route kinds,
so HTTPRoute is the only routing object a tool can write.
"""

from __future__ import annotations

from typing import Any

from toolforge_auth.tools import ADMIN_MANAGER, MANAGED_BY_LABEL, TOOL_LABEL

#: Name of the policy and of its binding.
ROUTE_POLICY = "toolforge-tool-httproutes"
#: Namespace of the platform's web components and of the parameter ConfigMap.
PARAMS_NAMESPACE = "toolforge-web"
#: The parameter ConfigMap (see :func:`routing_params`).
PARAMS_NAME = "toolforge-web-routing"
GATEWAY_GROUP = "gateway.networking.k8s.io"
_MANAGED_BY = {MANAGED_BY_LABEL: ADMIN_MANAGER}

#: RBAC rule of the shared tool ClusterRole: HTTPRoutes in the tool's own namespace (the jobs
#: API writes them as the tool). Status is the controller's, so no ``httproutes/status``.
TOOL_ROUTE_RULE: dict[str, Any] = {
    "apiGroups": [GATEWAY_GROUP],
    "verbs": ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"],
    "resources": ["httproutes"],
}


def routing_params(domain: str, gateway_namespace: str, gateway_name: str) -> Any:
    """The parameter ConfigMap of :func:`route_policy`: the public domain (tools are served
    at ``<tool>.<domain>``) and the Gateway every tool route must attach to."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": PARAMS_NAME,
            "namespace": PARAMS_NAMESPACE,
            "labels": {"app.kubernetes.io/part-of": "toolforge"},
        },
        "data": {
            "domain": domain,
            "gatewayNamespace": gateway_namespace,
            "gatewayName": gateway_name,
        },
    }


def _local_service(ref: str) -> str:
    """CEL: the backend reference ``ref`` is a core Service in the route's namespace."""
    return (
        f"(!has({ref}.group) || {ref}.group == '') && (!has({ref}.kind) || {ref}.kind =="
        f" 'Service') && (!has({ref}.namespace) || {ref}.namespace == object.metadata.namespace)"
    )


def _mirrors_local(filters: str) -> str:
    """CEL: every ``requestMirror`` filter in the list expression ``filters`` (when present)
    mirrors to a local Service."""
    return (
        f"!has({filters}) || {filters}.all(f, !has(f.requestMirror) ||"
        f" ({_local_service('f.requestMirror.backendRef')}))"
    )


def route_policy() -> Any:
    """The ValidatingAdmissionPolicy on HTTPRoutes in tool namespaces (module docstring)."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": ROUTE_POLICY, "labels": dict(_MANAGED_BY)},
        "spec": {
            "failurePolicy": "Fail",
            "paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
            "matchConstraints": {
                "matchPolicy": "Equivalent",
                "namespaceSelector": {
                    "matchExpressions": [{"key": TOOL_LABEL, "operator": "Exists"}]
                },
                "resourceRules": [
                    {
                        "apiGroups": [GATEWAY_GROUP],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["httproutes"],
                    }
                ],
            },
            "variables": [
                {
                    "name": "host",
                    "expression": f"namespaceObject.metadata.labels['{TOOL_LABEL}'] + '.' +"
                    " params.data['domain']",
                },
                {
                    "name": "rules",
                    "expression": "has(object.spec.rules) ? object.spec.rules : []",
                },
            ],
            "validations": [
                {
                    "expression": "has(object.spec.hostnames) && object.spec.hostnames.size() > 0"
                    " && object.spec.hostnames.all(h, h == variables.host)",
                    "messageExpression": "'spec.hostnames must be exactly [\"' + variables.host +"
                    " '\"]: a tool may only route its own host'",
                    "reason": "Forbidden",
                },
                {
                    "expression": "has(object.spec.parentRefs) && object.spec.parentRefs.size() > 0"
                    " && object.spec.parentRefs.all(p,"
                    f" (!has(p.group) || p.group == '{GATEWAY_GROUP}') &&"
                    " (!has(p.kind) || p.kind == 'Gateway') &&"
                    " has(p.namespace) && p.namespace == params.data['gatewayNamespace'] &&"
                    " p.name == params.data['gatewayName'])",
                    "messageExpression": "'spec.parentRefs may only name the platform Gateway ' +"
                    " params.data['gatewayNamespace'] + '/' + params.data['gatewayName'] +"
                    " ' (kind Gateway, namespace written out)'",
                    "reason": "Forbidden",
                },
                {
                    "expression": "variables.rules.all(r, !has(r.backendRefs) ||"
                    f" r.backendRefs.all(b, {_local_service('b')}))",
                    "message": "backendRefs may only name Services in the route's own namespace",
                    "reason": "Forbidden",
                },
                {
                    "expression": f"variables.rules.all(r, ({_mirrors_local('r.filters')}) &&"
                    " (!has(r.backendRefs) || r.backendRefs.all(b,"
                    f" {_mirrors_local('b.filters')})))",
                    "message": "requestMirror filters may only name Services in the route's own"
                    " namespace",
                    "reason": "Forbidden",
                },
            ],
        },
    }


def route_policy_binding() -> Any:
    """Binds :func:`route_policy` with the parameter ConfigMap; denies when it is missing."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": ROUTE_POLICY, "labels": dict(_MANAGED_BY)},
        "spec": {
            "policyName": ROUTE_POLICY,
            "validationActions": ["Deny"],
            "paramRef": {
                "name": PARAMS_NAME,
                "namespace": PARAMS_NAMESPACE,
                "parameterNotFoundAction": "Deny",
            },
        },
    }


def admission_policies() -> list[tuple[str, Any, Any]]:
    """``(step label, policy, binding)`` for onboarding to converge (see
    :meth:`toolforge_admin.onboarding.ToolOnboarder.create`)."""
    return [("httproute policy", route_policy(), route_policy_binding())]
