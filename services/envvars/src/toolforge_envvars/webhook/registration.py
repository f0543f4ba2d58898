"""The MutatingWebhookConfiguration that makes kube-apiserver call the webhook (pure builder).

Choices (services/envvars/README.md, "Injection"):

- ``namespaceSelector``: namespaces with the tool label (``toolforge.org/tool``), so no
  platform or system pod ever waits for the webhook;
- ``rules``: ``CREATE`` of ``pods`` only (env of a running container cannot change);
- ``failurePolicy: Fail``: a pod of a tool is never started without its variables (a bot
  would run without its credentials, or worse with stale defaults). While the webhook is down,
  tool pods are refused with a message naming the webhook; Job, CronJob and Deployment
  controllers retry, so the pods come once it is back. The webhook runs with 2 replicas and a
  PodDisruptionBudget in the charts;
- ``sideEffects: None``, ``timeoutSeconds: 5`` (it answers in milliseconds; a slow read
  fails the admission rather than holding pod creation for 10 s, the maximum 30 s),
  ``reinvocationPolicy: IfNeeded`` (runs again if a later webhook adds a container),
  ``matchPolicy: Equivalent``, ``admissionReviewVersions: [v1]``.
"""

from __future__ import annotations

import base64
from typing import Any

from toolforge_auth.tools import TOOL_LABEL

__all__ = ["WEBHOOK_NAME", "webhook_configuration"]

Obj = dict[str, Any]
#: Name of the configuration and of its one webhook (a DNS name, as Kubernetes requires).
WEBHOOK_NAME = "envvars.toolforge.org"


def webhook_configuration(
    *, ca_bundle: bytes, url: str | None = None, service: Obj | None = None
) -> Obj:
    """The configuration calling the webhook at ``url`` (a host process) or ``service``
    (``{namespace, name, port, path}``, in a cluster), trusting ``ca_bundle`` (PEM) for its
    server certificate.

    Raises:
        ValueError: not exactly one of ``url`` and ``service`` given.
    """
    if (url is None) == (service is None):
        raise ValueError("give exactly one of url and service")
    client: Obj = {"caBundle": base64.b64encode(ca_bundle).decode()}
    if url is not None:
        client["url"] = url
    else:
        client["service"] = service
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {
            "name": WEBHOOK_NAME,
            "labels": {"app.kubernetes.io/part-of": "toolforge"},
        },
        "webhooks": [
            {
                "name": WEBHOOK_NAME,
                "clientConfig": client,
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                        "scope": "Namespaced",
                    }
                ],
                "namespaceSelector": {
                    "matchExpressions": [{"key": TOOL_LABEL, "operator": "Exists"}]
                },
                "failurePolicy": "Fail",
                "matchPolicy": "Equivalent",
                "sideEffects": "None",
                "timeoutSeconds": 5,
                "reinvocationPolicy": "IfNeeded",
                "admissionReviewVersions": ["v1"],
            }
        ],
    }
