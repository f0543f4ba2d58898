"""The admission webhook's FastAPI app: ``POST /mutate`` (AdmissionReview v1), ``GET /healthz``,
``GET /metrics``.

kube-apiserver calls ``/mutate`` for every pod created in a namespace labelled
``toolforge.org/tool`` (the MutatingWebhookConfiguration's namespaceSelector); the webhook
checks again that the namespace is a tool's (:func:`toolforge_auth.tools.tool_of_namespace`)
and answers a JSONPatch that adds the tool's variables (:mod:`.admission`). When the names
cannot be read, the pod is refused with a message (the same outcome as the configuration's
``failurePolicy: Fail``; Job and Deployment controllers retry their pods).

With ``client_ca_file`` set, only a caller with a client certificate from that CA and a CN in
``client_cns`` (kube-apiserver's webhook client identity) gets an answer (403 otherwise);
values never reach the webhook: it reads Secret metadata only (:mod:`.secrets`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from cryptography.x509.oid import NameOID
from fastapi import FastAPI, HTTPException, Request, status

from toolforge_auth.tls import peer_certificate
from toolforge_auth.tools import tool_of_namespace
from toolforge_envvars.settings import WebhookSettings
from toolforge_envvars.webhook.admission import AdmissionReview, env_patch, review_response
from toolforge_envvars.webhook.secrets import SecretNamesReader
from toolforge_kit.app import MetricsMiddleware, metrics_router
from toolforge_kit.errors import APIError
from toolforge_kit.metrics import ServiceMetrics

__all__ = ["create_webhook_app"]

_log = logging.getLogger(__name__)


def _check_caller(request: Request, settings: WebhookSettings) -> None:
    if settings.client_ca_file is None:
        return
    cert = peer_certificate(request.scope)
    cns = [] if cert is None else cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not cns or cns[0].value not in settings.client_cns:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "not kube-apiserver")


def create_webhook_app(settings: WebhookSettings) -> FastAPI:
    """The webhook app; its Kubernetes client is opened by the lifespan."""
    metrics = ServiceMetrics("toolforge_envvars_webhook")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.reader = await SecretNamesReader.connect(settings, metrics)
        try:
            yield
        finally:
            await app.state.reader.close()

    app = FastAPI(
        title="Toolforge envvars admission webhook",
        version="1.0.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.include_router(metrics_router(metrics))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "OK"}

    @app.post("/mutate")
    async def mutate(review: AdmissionReview, request: Request) -> dict[str, Any]:
        _check_caller(request, settings)
        if review.api_version != "admission.k8s.io/v1" or review.kind != "AdmissionReview":
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "expected admission.k8s.io/v1")
        req = review.request
        if tool_of_namespace(req.namespace) is None or req.object is None:
            return review_response(req.uid)
        reader: SecretNamesReader = request.app.state.reader
        try:
            names = await reader.names(req.namespace)
        except APIError as exc:
            _log.warning("namespace %s: cannot read the envvars names: %s", req.namespace, exc)
            return review_response(
                req.uid,
                allowed=False,
                message="the tool's environment variables cannot be read now; try again",
            )
        return review_response(req.uid, env_patch(req.object, names, reader.secret_name))

    return app
