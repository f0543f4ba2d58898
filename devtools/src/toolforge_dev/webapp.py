"""A tiny web service of a tool, for the web-traffic tests and the benchmark (builders only).

:func:`webapp_objects` gives what a tool would run to serve ``http://<tool>.<domain>/``: a
Deployment of a small HTTP/1.1 keep-alive server (Python's ``http.server`` from the local
``python3.11`` image, answering ``200`` with the pod's name on every ``GET``, and exiting at
once on ``SIGTERM``), its ClusterIP
Service, and the ``HTTPRoute`` that the jobs API will create for ``publish: "/"``
(:func:`tool_route`). The pods satisfy the tool pod policy (the tool's uid and gid, no
privilege escalation, no capabilities) and carry the two settings a rolling restart needs to
drop no request behind the Gateway: a readiness probe (a new pod gets traffic only once it
answers) and a ``preStop`` sleep (an old pod keeps serving while Traefik, which watches the
EndpointSlices, stops sending it requests; Traefik applies provider changes at most every
``providersThrottleDuration``, 2 s by default).
"""

from __future__ import annotations

from typing import Any

from toolforge_dev.web_manifests import GATEWAY_NAME, NAMESPACE, PUBLIC_DOMAIN

PYTHON_IMAGE = "registry.local/toolforge/python3.11:stable"
#: Seconds an old pod keeps serving after it is told to stop (``preStop`` sleep).
PRESTOP_SLEEP_SECONDS = 5

SERVER = """
import http.server, os, signal
# Stop at once on SIGTERM, as a server does that is not PID 1 (PID 1 ignores it otherwise).
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
body = (os.environ["HOSTNAME"] + "\\n").encode()
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer.daemon_threads = True
http.server.ThreadingHTTPServer(("", int(os.environ["PORT"])), Handler).serve_forever()
"""


def tool_host(tool: str, domain: str = PUBLIC_DOMAIN) -> str:
    """``<tool>.<domain>``: the one host a tool's routes may name."""
    return f"{tool}.{domain}"


def tool_route(
    tool: str, name: str, port: int, *, domain: str = PUBLIC_DOMAIN, labels: dict[str, str]
) -> Any:
    """The HTTPRoute serving ``http(s)://<tool>.<domain>/`` from Service ``name`` on ``port``:
    attached to the platform Gateway (namespace written out, as the admission policy wants),
    hostname ``<tool>.<domain>``, one rule ``PathPrefix /`` -> the Service."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {
            "parentRefs": [
                {
                    "group": "gateway.networking.k8s.io",
                    "kind": "Gateway",
                    "namespace": NAMESPACE,
                    "name": GATEWAY_NAME,
                }
            ],
            "hostnames": [tool_host(tool, domain)],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [{"name": name, "port": port}],
                }
            ],
        },
    }


def webapp_objects(
    tool: str,
    uid: int,
    *,
    name: str = "web",
    port: int = 8000,
    replicas: int = 1,
    prestop: bool = True,
    cpu: str = "250m",
) -> tuple[Any, Any, Any]:
    """``(Deployment, Service, HTTPRoute)`` named ``name`` for ``tool`` (module docstring).

    ``prestop=False`` leaves the ``preStop`` sleep out (to show what it is for).
    """
    labels = {"app.kubernetes.io/name": name}
    container: dict[str, Any] = {
        "name": "web",
        "image": PYTHON_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python3", "-c", SERVER],
        "env": [{"name": "PORT", "value": str(port)}],
        "ports": [{"name": "http", "containerPort": port}],
        "readinessProbe": {
            "httpGet": {"path": "/", "port": port},
            "periodSeconds": 1,
            "failureThreshold": 1,
        },
        "resources": {"requests": {"cpu": "50m", "memory": "100Mi"}, "limits": {"cpu": cpu}},
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    if prestop:
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": PRESTOP_SLEEP_SECONDS}}}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "securityContext": {"runAsUser": uid, "runAsGroup": uid, "runAsNonRoot": True},
                    "terminationGracePeriodSeconds": PRESTOP_SLEEP_SECONDS + 10,
                    "containers": [container],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {
            "selector": labels,
            "ports": [{"name": "http", "protocol": "TCP", "port": port, "targetPort": "http"}],
        },
    }
    return deployment, service, tool_route(tool, name, port, labels=labels)
