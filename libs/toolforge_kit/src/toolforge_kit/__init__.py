"""The backend kit of the Toolforge platform APIs: what every backend behind the gateway shares.

A new backend starts here (see ``libs/README.md``):

- :class:`BackendSettings`: the common settings (serving, cluster identity, kube client);
- :class:`KubeClient`: the one door to kube-apiserver, as the service or as a tool by
  impersonation, mapping its answers to the errors below; :class:`Resource` names a resource;
- :class:`APIError` and its subclasses: errors that carry their HTTP status;
- :func:`create_backend_app`: the app factory (auth, one error handler rendering the
  backend's envelope, metrics middleware and route); :data:`ToolName`, the verified tool of a
  route; :func:`json_reply`, :func:`error_responses`, :func:`document_ndjson`;
- :class:`ServiceMetrics`: the common Prometheus metrics;
- :class:`Messages`, :class:`MessagesResponse`, :class:`ErrorBody`, :func:`render_error`: the
  wire envelope as production serves it;
- :class:`NDJSONStreamingResponse`, :class:`LineSplitter`, :func:`iter_lines`: streaming;
- :func:`main`, :func:`build_server`: the command line and uvicorn over mTLS.
"""

from toolforge_kit.app import (
    ToolName,
    create_backend_app,
    document_ndjson,
    error_responses,
    json_reply,
)
from toolforge_kit.errors import (
    APIError,
    BadRequestError,
    ClusterError,
    ConflictError,
    ForbiddenError,
    GoneError,
    InvalidObjectError,
    NotFoundError,
    ResourceQuotaExceededError,
    UnavailableError,
)
from toolforge_kit.kube import KubeClient, Obj, Resource, gather_all
from toolforge_kit.metrics import ServiceMetrics
from toolforge_kit.server import build_server, main
from toolforge_kit.settings import BackendSettings, load_settings
from toolforge_kit.streaming import NDJSON, LineSplitter, NDJSONStreamingResponse, iter_lines
from toolforge_kit.wire import ErrorBody, Messages, MessagesResponse, render_error

__all__ = [
    "NDJSON",
    "APIError",
    "BackendSettings",
    "BadRequestError",
    "ClusterError",
    "ConflictError",
    "ErrorBody",
    "ForbiddenError",
    "GoneError",
    "InvalidObjectError",
    "KubeClient",
    "LineSplitter",
    "Messages",
    "MessagesResponse",
    "NDJSONStreamingResponse",
    "NotFoundError",
    "Obj",
    "Resource",
    "ResourceQuotaExceededError",
    "ServiceMetrics",
    "ToolName",
    "UnavailableError",
    "build_server",
    "create_backend_app",
    "document_ndjson",
    "error_responses",
    "gather_all",
    "iter_lines",
    "json_reply",
    "load_settings",
    "main",
    "render_error",
]
