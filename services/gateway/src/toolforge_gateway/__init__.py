"""Toolforge API gateway: TLS client-certificate authentication, authorisation per tool and
service, routing to the backend APIs over mTLS, and one aggregated OpenAPI document.

Entry points: :func:`toolforge_gateway.app.create_app` (the ASGI app),
:func:`toolforge_gateway.server.build_server` (uvicorn with TLS) and the ``toolforge-gateway``
command (:func:`toolforge_gateway.__main__.main`).
"""

from importlib.metadata import version

__version__ = version("toolforge-gateway")
