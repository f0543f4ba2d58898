"""Admission policies and NetworkPolicies that confine tools, next to the pod policy of
:mod:`toolforge_admin.onboarding` (:func:`~toolforge_admin.onboarding.tool_pod_policy`).

Cluster-wide objects, bound to every namespace labelled ``toolforge.org/tool``:

- ValidatingAdmissionPolicy ``toolforge-tool-images`` (:func:`tool_image_policy`): the
  registry admission. A tool's pods may run only the platform's images (the image-config
  list, :attr:`AdminSettings.image_prefixes`) and the tool's own built images,
  ``<registry>/tool-<tool>/...`` for each of :attr:`AdminSettings.tool_image_registries`.
- ValidatingAdmissionPolicy ``toolforge-tool-reach`` (:func:`tool_reach_policy`): fields that
  reach outside the namespace. Services must be ``ClusterIP``; pods may use only volume types
  that stay on the node (no inline ``nfs``, ``iscsi``, ``rbd``, ``cephfs``, ``csi``, ``image``
  ... volumes, which make the node connect to an address of the tool's choosing). Service
  ``externalIPs`` are refused for every namespace by kube-apiserver's own
  ``DenyServiceExternalIPs`` admission plugin (CVE-2020-8554, ``charts/README.md``).

Per tool namespace (:func:`tool_network_policies`), created at onboarding before the tool gets
its credentials; the tool's RBAC cannot change them:

- NetworkPolicy ``toolforge-tool-isolation`` (ingress): connections to a tool's pods are
  accepted from the tool's own pods and from pods of namespaces that are not tool namespaces
  (the platform: an ingress controller, monitoring), not from other tools' pods. The node
  itself (kubelet probes) is not subject to NetworkPolicies.
- NetworkPolicy ``toolforge-tool-egress`` (egress): a tool's pods may connect to any pod (whose
  own ingress policy decides: another tool's isolation policy, the platform backends'
  gateway-only policy), to DNS, and to every address outside
  :attr:`AdminSettings.tool_egress_denied_cidrs` (the platform's own hosts: node addresses
  with the kubelet and the registry's push endpoint, the cloud metadata service), plus the
  endpoints of :attr:`AdminSettings.tool_egress_allowed` inside them (kube-apiserver).

**Default tenant isolation, and why.** Tools are mutually untrusting tenants: any volunteer can
create one. A tool's pods therefore refuse connections from other tools by default, so that a
bot's unauthenticated internal port (a debugging endpoint, a database without a password) is
not open to every other tool on the cluster. Tools that want to be reached by others publish
through the platform (a web service behind the front proxy), which is a non-tool namespace
and is allowed. Egress stays open to the world (bots talk to wikis and other APIs) except to
the platform's own infrastructure.

These are pure builders (golden files in ``tests/admin/golden``);
:class:`~toolforge_admin.onboarding.ToolOnboarder` converges them like its other objects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from toolforge_admin.objects import MANAGED_BY, Obj
from toolforge_admin.settings import AdminSettings
from toolforge_auth.tools import TOOL_LABEL, namespace_for

__all__ = [
    "ALLOWED_VOLUME_TYPES",
    "EGRESS_POLICY",
    "IMAGE_POLICY",
    "ISOLATION_POLICY",
    "REACH_POLICY",
    "admission_policies",
    "allowed_image_prefixes_cel",
    "policy_binding",
    "spec_equals",
    "tool_image_policy",
    "tool_network_policies",
    "tool_reach_policy",
]

IMAGE_POLICY = "toolforge-tool-images"
REACH_POLICY = "toolforge-tool-reach"
ISOLATION_POLICY = "toolforge-tool-isolation"
EGRESS_POLICY = "toolforge-tool-egress"
#: Volume sources a tool pod may use: the Pod Security Standard "restricted" list without
#: inline ``csi`` (a CSI driver may mount a network share named by the pod), plus ``hostPath``,
#: which the pod policy restricts to the tool's home.
ALLOWED_VOLUME_TYPES = (
    "configMap",
    "secret",
    "emptyDir",
    "projected",
    "downwardAPI",
    "persistentVolumeClaim",
    "ephemeral",
    "hostPath",
)


def _cel_string(value: str) -> str:
    """A CEL string literal for a value the settings validated (no quote, no backslash)."""
    if "'" in value or "\\" in value:
        raise ValueError(f"{value!r} cannot be a CEL literal here")
    return f"'{value}'"


def _pod_spec_of(obj: str) -> str:
    """CEL: the pod spec of ``obj``, a Pod or a workload with a pod template (Deployment,
    ReplicaSet, StatefulSet, DaemonSet, Job: ``spec.template``; CronJob:
    ``spec.jobTemplate.spec.template``)."""
    return (
        f"has({obj}.spec.containers) ? {obj}.spec"
        f" : has({obj}.spec.jobTemplate) ? {obj}.spec.jobTemplate.spec.template.spec"
        f" : {obj}.spec.template.spec"
    )


def _images_of(spec: str) -> str:
    """CEL: the images of every init, regular and ephemeral container of pod spec ``spec``."""
    return (
        f"((has({spec}.initContainers) ? {spec}.initContainers : []) + {spec}.containers"
        f" + (has({spec}.ephemeralContainers) ? {spec}.ephemeralContainers : []))"
        ".map(c, c.image)"
    )


def allowed_image_prefixes_cel(settings: AdminSettings) -> str:
    """CEL: the list of image prefixes allowed in the namespace of tool ``variables.tool``."""
    fixed = ", ".join(_cel_string(p) for p in settings.image_prefixes)
    own = ", ".join(
        f"{_cel_string(registry + '/tool-')} + variables.tool + '/'"
        for registry in settings.tool_image_registries
    )
    return f"[{fixed}] + [{own}]"


def _admission_policy(name: str, rules: list[dict[str, Any]], spec: dict[str, Any]) -> Obj:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name, "labels": dict(MANAGED_BY)},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "namespaceSelector": {
                    "matchExpressions": [{"key": TOOL_LABEL, "operator": "Exists"}]
                },
                "resourceRules": rules,
            },
            **spec,
        },
    }


def _rule(group: str, resources: list[str], operations: list[str]) -> dict[str, Any]:
    return {
        "apiGroups": [group],
        "apiVersions": ["v1"],
        "operations": operations,
        "resources": resources,
    }


def tool_image_policy(settings: AdminSettings) -> Obj:
    """ValidatingAdmissionPolicy ``toolforge-tool-images``: the registry admission.

    Every image of a pod in a tool namespace (containers, initContainers and
    ephemeralContainers, including those added through the ``pods/ephemeralcontainers``
    subresource) must start with one of the prefixes of :func:`allowed_image_prefixes_cel`:
    the platform's images or ``<registry>/tool-<tool>/``, where ``<tool>`` comes from the
    namespace's ``toolforge.org/tool`` label, which a tool cannot change.

    The pod templates of Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs and CronJobs
    are checked too. The pod check alone would be enough for security (every controller makes
    its pods through admission), but a workload with a refused image would be accepted and
    then fail silently, its controller logging ``FailedCreate`` events nobody reads; checking
    the template refuses the ``kubectl apply`` itself, with the reason. An UPDATE that leaves
    the images as they were is admitted, so objects created before the policy (or before a
    prefix was removed from the settings) can still be scaled, labelled or deleted by their
    controllers.
    """
    rules = [
        _rule("", ["pods", "pods/ephemeralcontainers"], ["CREATE", "UPDATE"]),
        _rule(
            "apps",
            ["deployments", "replicasets", "statefulsets", "daemonsets"],
            ["CREATE", "UPDATE"],
        ),
        _rule("batch", ["jobs", "cronjobs"], ["CREATE", "UPDATE"]),
    ]
    variables = [
        {"name": "tool", "expression": f"namespaceObject.metadata.labels['{TOOL_LABEL}']"},
        {"name": "spec", "expression": _pod_spec_of("object")},
        {
            "name": "oldSpec",
            "expression": f"oldObject == null ? null : {_pod_spec_of('oldObject')}",
        },
        {"name": "images", "expression": _images_of("variables.spec")},
        {
            "name": "oldImages",
            "expression": f"variables.oldSpec == null ? [] : {_images_of('variables.oldSpec')}",
        },
        {"name": "allowed", "expression": allowed_image_prefixes_cel(settings)},
        {
            "name": "denied",
            "expression": "variables.images.filter(i,"
            " !variables.allowed.exists(p, i.startsWith(p)))",
        },
    ]
    validations = [
        {
            "expression": "variables.denied.size() == 0 || (request.operation == 'UPDATE'"
            " && variables.images == variables.oldImages)",
            "messageExpression": "'image ' + variables.denied[0] + ' is not allowed: tool pods"
            " may run only images under ' + variables.allowed.join(', ')",
            "reason": "Forbidden",
        }
    ]
    return _admission_policy(
        IMAGE_POLICY, rules, {"variables": variables, "validations": validations}
    )


def _volume_allowed(v: str) -> str:
    return "(" + " || ".join(f"has({v}.{t})" for t in ALLOWED_VOLUME_TYPES) + ")"


def tool_reach_policy() -> Obj:
    """ValidatingAdmissionPolicy ``toolforge-tool-reach``: no object of a tool may reach
    outside its namespace.

    - Services (CREATE, UPDATE): ``spec.type`` unset or ``ClusterIP``. A NodePort or
      LoadBalancer Service opens a port on every node or an outside address; an ExternalName
      Service makes cluster DNS (and any proxy that follows it) point at a host of the tool's
      choosing.
    - Pods (CREATE; volumes are immutable): every volume is one of
      :data:`ALLOWED_VOLUME_TYPES`.

    Endpoints and EndpointSlices need no rule: the tool ClusterRole grants them read only, so
    a tool cannot point a Service at the apiserver, a node or another tool's pod.
    """
    rules = [
        _rule("", ["services"], ["CREATE", "UPDATE"]),
        _rule("", ["pods"], ["CREATE"]),
    ]
    volumes = "object.spec.volumes"
    validations = [
        {
            "expression": "request.resource.resource != 'services' ||"
            " !has(object.spec.type) || object.spec.type == 'ClusterIP'",
            "messageExpression": "'Service type ' + object.spec.type + ' is not allowed for"
            " tools: use ClusterIP (the platform publishes web services)'",
            "reason": "Forbidden",
        },
        {
            "expression": f"request.resource.resource != 'pods' || !has({volumes}) ||"
            f" {volumes}.all(v, {_volume_allowed('v')})",
            "messageExpression": f"'volume ' + {volumes}.filter(v, !{_volume_allowed('v')})"
            "[0].name + ' has a type tool pods may not use; allowed: "
            + ", ".join(ALLOWED_VOLUME_TYPES)
            + "'",
            "reason": "Forbidden",
        },
    ]
    return _admission_policy(REACH_POLICY, rules, {"validations": validations})


def policy_binding(name: str) -> Obj:
    """Binds ValidatingAdmissionPolicy ``name`` cluster-wide (its match constraints pick the
    namespaces), denying what it refuses."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name, "labels": dict(MANAGED_BY)},
        "spec": {"policyName": name, "validationActions": ["Deny"]},
    }


def tool_network_policies(tool: str, settings: AdminSettings) -> list[Obj]:
    """The NetworkPolicies of namespace ``tool-<tool>``: ``toolforge-tool-isolation`` and
    ``toolforge-tool-egress`` (see the module docstring for what they allow and why).

    IPv4 only, like the cluster. ``ipBlock`` rules match addresses after kube-proxy's DNAT, so
    the allowed kube-apiserver endpoint is its real address and port, not the Service's.
    """
    namespace = namespace_for(tool)

    def policy(name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(MANAGED_BY)},
            "spec": {"podSelector": {}, **spec},
        }

    platform = {"matchExpressions": [{"key": TOOL_LABEL, "operator": "DoesNotExist"}]}
    world: dict[str, Any] = {"cidr": "0.0.0.0/0"}
    if settings.tool_egress_denied_cidrs:
        world["except"] = list(settings.tool_egress_denied_cidrs)
    egress: list[dict[str, Any]] = [
        {"to": [{"namespaceSelector": {}}]},
        {"to": [{"ipBlock": world}]},
        {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
    ]
    egress += [
        {"to": [{"ipBlock": {"cidr": e.cidr}}], "ports": [{"protocol": "TCP", "port": e.port}]}
        for e in settings.tool_egress_allowed
    ]
    return [
        policy(
            ISOLATION_POLICY,
            {
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [{"podSelector": {}}, {"namespaceSelector": platform}]}],
            },
        ),
        policy(EGRESS_POLICY, {"policyTypes": ["Egress"], "egress": egress}),
    ]


def admission_policies(settings: AdminSettings) -> list[tuple[str, Obj, Obj]]:
    """``(step name, policy, binding)`` of this module's ValidatingAdmissionPolicies, in the
    order onboarding converges them."""
    image, reach = tool_image_policy(settings), tool_reach_policy()
    return [
        ("image policy", image, policy_binding(IMAGE_POLICY)),
        ("reach policy", reach, policy_binding(REACH_POLICY)),
    ]


def spec_equals(desired: Obj) -> Callable[[Obj], bool]:
    """``same`` test that needs the stored ``spec`` to equal ``desired``'s: for NetworkPolicies,
    which get no server-side defaults beyond what is given (protocols are explicit), so that
    a removed ``except`` or rule is noticed."""
    return lambda current: current.get("spec") == desired["spec"]
