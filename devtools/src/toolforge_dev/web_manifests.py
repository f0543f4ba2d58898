"""The web-traffic path of the platform as Kubernetes objects (pure builders, no I/O).

A request for ``http://<tool>.<domain>/`` reaches a tool's pods like this::

    client -> NodePort 30000 (127.0.0.1 or the node address; Service ``traefik``)
           -> Traefik pod, entry point ``web`` (:8000), Kubernetes Gateway provider
           -> the tool's HTTPRoute (hostname ``<tool>.<domain>``, parent Gateway ``web``)
           -> the tool's Service's ready endpoints (Traefik balances over the EndpointSlices)

and a request no tool route matches goes to the catch-all HTTPRoute ``fourohfour`` (no
hostnames, ``PathPrefix /``), which every tool route outranks (Gateway API precedence: a
matching hostname wins; Traefik gives a route with a host a higher router priority), so it
answers with the friendly 404 of :mod:`toolforge_fourohfour`.

:func:`web_objects` returns, in apply order, in namespace :data:`NAMESPACE`:

- Namespace ``toolforge-web``;
- ServiceAccount, ClusterRole and ClusterRoleBinding ``toolforge-traefik``: what Traefik's
  Gateway provider reads and the status it writes (Traefik's ``kubernetes-gateway-rbac.yml``
  for v3.6, without ``pods`` (OpenTelemetry only) and without the experimental TCPRoute and
  TLSRoute). Traefik watches Secrets and ConfigMaps in every namespace (for TLS certificate and
  CA references), so it can read every tool's Secrets: a property of Traefik's provider;
- Deployment ``traefik`` (one replica; the binary built by :func:`toolforge_dev.binaries.traefik`)
  and Service ``traefik``, type NodePort, port 8000 on node port :data:`NODE_PORT` (30000 for
  web traffic, as upstream Toolforge);
- GatewayClass ``traefik`` (controller ``traefik.io/gateway-controller``) and the ONE Gateway
  :data:`GATEWAY_NAME` with listener ``web`` (HTTP, port 8000, any hostname, routes from all
  namespaces: what a tool's route may say is the admission policy's business, see
  :mod:`toolforge_admin.web_policies`);
- Deployment and Service ``fourohfour`` and the catch-all HTTPRoute ``fourohfour``;
- the routing parameter ConfigMap of the admission policy
  (:func:`toolforge_admin.web_policies.routing_params`).

Every container runs as non-root with a read-only root filesystem, no capabilities and
``RuntimeDefault`` seccomp. Traefik is told not to phone home (``checkNewVersion``,
``sendAnonymousUsage``); it serves ``/ping`` on port 8080 (entry point ``traefik``) for its
probes, and no dashboard or API.
"""

from __future__ import annotations

from typing import Any

from toolforge_admin import web_policies

#: Namespace of Traefik, fourohfour, the Gateway and the routing parameters.
NAMESPACE = web_policies.PARAMS_NAMESPACE
#: Public domain of the local platform: tools answer at ``<tool>.toolforge.local``.
PUBLIC_DOMAIN = "toolforge.local"
GATEWAY_CLASS = "traefik"
GATEWAY_CONTROLLER = "traefik.io/gateway-controller"
#: The platform's one Gateway (in :data:`NAMESPACE`).
GATEWAY_NAME = "web"
#: Traefik's entry point port for web traffic; the Gateway listener has the same port.
WEB_PORT = 8000
#: Traefik's ``/ping`` port (not exposed by the Service).
PING_PORT = 8080
#: Node port of web traffic (upstream Toolforge: 30000 behind the front proxy).
NODE_PORT = 30000
FOUROHFOUR_PORT = 8000
TRAEFIK_UID = 65532
_PART_OF = {"app.kubernetes.io/part-of": "toolforge"}


def _meta(name: str, component: str, namespaced: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "labels": {**_PART_OF, "app.kubernetes.io/name": component},
    }
    if namespaced:
        meta["namespace"] = NAMESPACE
    return meta


def _restricted_container() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _pod_security(uid: int) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def traefik_args() -> list[str]:
    """Traefik's static configuration, as command-line flags."""
    return [
        "--global.checkNewVersion=false",
        "--global.sendAnonymousUsage=false",
        f"--entryPoints.web.address=:{WEB_PORT}",
        f"--entryPoints.traefik.address=:{PING_PORT}",
        "--ping=true",
        "--ping.entryPoint=traefik",
        "--providers.kubernetesgateway=true",
        "--log.level=INFO",
        "--log.noColor=true",
    ]


def traefik_rbac() -> list[Any]:
    """ServiceAccount, ClusterRole and ClusterRoleBinding of Traefik's Gateway provider."""
    read = ["get", "list", "watch"]
    gateway_kinds = [
        "gatewayclasses",
        "gateways",
        "httproutes",
        "grpcroutes",
        "referencegrants",
        "backendtlspolicies",
    ]
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": _meta("toolforge-traefik", "traefik", namespaced=False),
        "rules": [
            {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
            {"apiGroups": [""], "resources": ["services", "secrets", "configmaps"], "verbs": read},
            {
                "apiGroups": ["discovery.k8s.io"],
                "resources": ["endpointslices"],
                "verbs": ["list", "watch"],
            },
            {"apiGroups": ["gateway.networking.k8s.io"], "resources": gateway_kinds, "verbs": read},
            {
                "apiGroups": ["gateway.networking.k8s.io"],
                "resources": [f"{k}/status" for k in gateway_kinds],
                "verbs": ["update"],
            },
        ],
    }
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta("traefik", "traefik")},
        role,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": _meta("toolforge-traefik", "traefik", namespaced=False),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "toolforge-traefik",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "traefik", "namespace": NAMESPACE}],
        },
    ]


def traefik_deployment(image: str) -> Any:
    """Deployment ``traefik``: one replica of ``image`` with :func:`traefik_args`."""
    labels = {"app.kubernetes.io/name": "traefik"}
    ping = {"httpGet": {"path": "/ping", "port": PING_PORT}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta("traefik", "traefik"),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": {**_PART_OF, **labels}},
                "spec": {
                    "serviceAccountName": "traefik",
                    "securityContext": _pod_security(TRAEFIK_UID),
                    "terminationGracePeriodSeconds": 30,
                    "containers": [
                        {
                            "name": "traefik",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "args": traefik_args(),
                            "ports": [
                                {"name": "web", "containerPort": WEB_PORT},
                                {"name": "ping", "containerPort": PING_PORT},
                            ],
                            "readinessProbe": {**ping, "periodSeconds": 2, "failureThreshold": 1},
                            "livenessProbe": {**ping, "periodSeconds": 10, "failureThreshold": 3},
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "64Mi"},
                                "limits": {"memory": "512Mi"},
                            },
                            "securityContext": _restricted_container(),
                        }
                    ],
                },
            },
        },
    }


def traefik_service() -> Any:
    """Service ``traefik``: NodePort :data:`NODE_PORT` -> the ``web`` entry point."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta("traefik", "traefik"),
        "spec": {
            "type": "NodePort",
            "selector": {"app.kubernetes.io/name": "traefik"},
            "ports": [
                {
                    "name": "web",
                    "protocol": "TCP",
                    "port": WEB_PORT,
                    "targetPort": "web",
                    "nodePort": NODE_PORT,
                }
            ],
        },
    }


def gateway_objects() -> list[Any]:
    """GatewayClass :data:`GATEWAY_CLASS` and the platform's Gateway :data:`GATEWAY_NAME`."""
    return [
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": _meta(GATEWAY_CLASS, "traefik", namespaced=False),
            "spec": {"controllerName": GATEWAY_CONTROLLER},
        },
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": _meta(GATEWAY_NAME, "gateway"),
            "spec": {
                "gatewayClassName": GATEWAY_CLASS,
                "listeners": [
                    {
                        "name": "web",
                        "protocol": "HTTP",
                        "port": WEB_PORT,
                        "allowedRoutes": {
                            "namespaces": {"from": "All"},
                            "kinds": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}],
                        },
                    }
                ],
            },
        },
    ]


def fourohfour_objects(image: str, domain: str) -> list[Any]:
    """Deployment, Service and catch-all HTTPRoute ``fourohfour``."""
    labels = {"app.kubernetes.io/name": "fourohfour"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta("fourohfour", "fourohfour"),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": {**_PART_OF, **labels}},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": _pod_security(10001),
                    "terminationGracePeriodSeconds": 10,
                    "containers": [
                        {
                            "name": "fourohfour",
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "env": [
                                {"name": "TOOLFORGE_FOUROHFOUR_DOMAIN", "value": domain},
                                {
                                    "name": "TOOLFORGE_FOUROHFOUR_PORT",
                                    "value": str(FOUROHFOUR_PORT),
                                },
                            ],
                            "ports": [{"name": "http", "containerPort": FOUROHFOUR_PORT}],
                            # Every path answers 404, so the probes check the socket only.
                            "readinessProbe": {
                                "tcpSocket": {"port": "http"},
                                "periodSeconds": 2,
                            },
                            "livenessProbe": {
                                "tcpSocket": {"port": "http"},
                                "periodSeconds": 10,
                            },
                            "resources": {
                                "requests": {"cpu": "20m", "memory": "48Mi"},
                                "limits": {"memory": "128Mi"},
                            },
                            "securityContext": _restricted_container(),
                        }
                    ],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta("fourohfour", "fourohfour"),
        "spec": {
            "selector": labels,
            "ports": [
                {"name": "http", "protocol": "TCP", "port": FOUROHFOUR_PORT, "targetPort": "http"}
            ],
        },
    }
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": _meta("fourohfour", "fourohfour"),
        "spec": {
            "parentRefs": [{"name": GATEWAY_NAME}],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [{"name": "fourohfour", "port": FOUROHFOUR_PORT}],
                }
            ],
        },
    }
    return [deployment, service, route]


def web_objects(
    traefik_image: str, fourohfour_image: str, domain: str = PUBLIC_DOMAIN
) -> list[Any]:
    """Every object of the web-traffic path, in apply order (module docstring)."""
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": NAMESPACE, "labels": dict(_PART_OF)},
    }
    return [
        namespace,
        web_policies.routing_params(domain, NAMESPACE, GATEWAY_NAME),
        *traefik_rbac(),
        traefik_deployment(traefik_image),
        traefik_service(),
        *gateway_objects(),
        *fourohfour_objects(fourohfour_image, domain),
    ]


def jobs_api_web_settings() -> dict[str, str]:
    """The jobs API's settings for published jobs on this platform
    (``toolforge_jobs.settings.JobsSettings`` keys): the public domain and Gateway above, and
    public URLs on the NodePort (``http://<tool>.toolforge.local:30000/``, which answers with
    that ``Host``; nothing resolves ``*.toolforge.local``)."""
    return {
        "public_domain": PUBLIC_DOMAIN,
        "gateway_namespace": NAMESPACE,
        "gateway_name": GATEWAY_NAME,
        "public_url_template": f"http://{{tool}}.{{domain}}:{NODE_PORT}",
    }
