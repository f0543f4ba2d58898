"""The fourohfour ASGI app: every method on every path answers ``404 Not Found``.

It is the default backend of the platform's Gateway (a catch-all ``HTTPRoute`` without
hostnames, which every tool's own route outranks), so it sees requests for unknown hosts and for
tools with no published web service, as Toolforge's ``fourohfour`` does.

The body is negotiated from ``Accept`` (:func:`prefers_json`): a small HTML page for browsers,
or JSON ``{"error": "not_found", "message": str, "host": str, "path": str, "tool": str | null}``.
``tool`` is the first label of ``Host`` when the host is ``<tool>.<domain>`` (one DNS label
before the public domain), else ``null``. ``HEAD`` gets the headers only (uvicorn drops the
body). Responses carry
``Cache-Control: no-cache`` (the host may be served a minute later), ``Vary: Accept`` and
``X-Content-Type-Options: nosniff``; host and path are HTML-escaped and shortened.
"""

from __future__ import annotations

import html
import json
import re

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from toolforge_fourohfour.settings import FourOhFourSettings

#: Longest host or path shown back (longer ones end in "...").
MAX_SHOWN = 200
_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Not found - Toolforge</title>
<style>
body {{ font-family: sans-serif; max-width: 40em; margin: 4em auto; padding: 0 1em;
       color: #202122; line-height: 1.5; }}
h1 {{ font-size: 1.6em; }}
code {{ background: #eaecf0; padding: 0 0.2em; }}
</style>
</head>
<body>
<h1>Nothing here (404)</h1>
<p>{message}</p>
{hint}
<p><small>Toolforge ({domain})</small></p>
</body>
</html>
"""

_HINT = (
    "<p>If you maintain this tool, start its web service as a continuous job with a port, "
    "published at <code>/</code>: <code>toolforge jobs run web --image python3.11 "
    "--command &quot;...&quot; --continuous --port 8000 --publish /</code>.</p>"
)


def _shorten(text: str) -> str:
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


def tool_of(host: str, domain: str) -> str | None:
    """The tool named by ``host`` (``<tool>.<domain>``, any ``:port`` ignored, case-folded),
    or ``None`` when the host is not one DNS label directly below ``domain``."""
    name = host.strip().lower().rsplit(":", 1)[0] if not host.startswith("[") else ""
    prefix, dot, rest = name.partition(".")
    if not dot or rest != domain or not _LABEL_RE.match(prefix):
        return None
    return prefix


def _media_quality(accept: str, media_type: str) -> float:
    """Quality (RFC 9110 section 12.5.1) that ``accept`` gives ``media_type``: the most
    specific matching range wins (``type/subtype`` over ``type/*`` over ``*/*``)."""
    kind = media_type.split("/", 1)[0]
    best_specificity, quality = -1, 0.0
    for item in accept.split(","):
        parts = [p.strip() for p in item.split(";")]
        media_range = parts[0].lower()
        q = 1.0
        for param in parts[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    q = 0.0
        if media_range == media_type:
            specificity = 2
        elif media_range == f"{kind}/*":
            specificity = 1
        elif media_range == "*/*":
            specificity = 0
        else:
            continue
        if specificity > best_specificity:
            best_specificity, quality = specificity, q
    return quality


def prefers_json(accept: str | None) -> bool:
    """True when ``accept`` ranks ``application/json`` strictly above ``text/html``.

    No header, ``*/*`` or a tie gives HTML (what a browser or a plain ``curl`` sees)."""
    if not accept:
        return False
    return _media_quality(accept, "application/json") > _media_quality(accept, "text/html")


def not_found(request: Request, domain: str) -> Response:
    """The 404 response for ``request`` (see the module docstring)."""
    host = request.headers.get("host", "")
    path = request.url.path
    tool = tool_of(host, domain)
    shown = _shorten(host.lower() + path)
    if tool is not None:
        message = (
            f"No web service of tool '{tool}' answers {shown}: the tool does not exist, "
            "or it has no web service running at this path."
        )
    else:
        message = f"There is no tool at {shown}."
    headers = {"Cache-Control": "no-cache", "Vary": "Accept", "X-Content-Type-Options": "nosniff"}
    if prefers_json(request.headers.get("accept")):
        body = {
            "error": "not_found",
            "message": message,
            "host": _shorten(host),
            "path": _shorten(path),
            "tool": tool,
        }
        content = json.dumps(body, ensure_ascii=False).encode()
        media_type = "application/json"
    else:
        page = _PAGE.format(
            message=html.escape(message),
            hint=_HINT if tool is not None else "",
            domain=html.escape(domain),
        )
        content = page.encode()
        media_type = "text/html; charset=utf-8"
    # HEAD: uvicorn sends the headers (Content-Length included) and drops the body.
    return Response(content, status_code=404, headers=headers, media_type=media_type)


def create_app(settings: FourOhFourSettings) -> Starlette:
    """The ASGI app: one catch-all route for every method in :data:`_METHODS`."""

    async def endpoint(request: Request) -> Response:
        return not_found(request, settings.domain)

    return Starlette(routes=[Route("/{path:path}", endpoint, methods=_METHODS)])
