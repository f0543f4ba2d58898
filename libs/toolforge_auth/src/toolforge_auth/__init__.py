"""Shared auth for Toolforge platform APIs.

- :mod:`toolforge_auth.identity`: Toolforge identities and strict subject-DN parsing.
- :mod:`toolforge_auth.tls`: TLS contexts and the ASGI TLS extension.
- :mod:`toolforge_auth.uvicorn`: uvicorn protocols that fill the ASGI TLS extension.
- :mod:`toolforge_auth.dependencies`: FastAPI dependencies for backends behind the gateway.
"""

from toolforge_auth.identity import (
    SUBJECT_DN_HEADER,
    Identity,
    InvalidSubjectDN,
    ServiceIdentity,
    ToolIdentity,
    identity_from_certificate,
    parse_subject_dn,
    subject_dn,
)
from toolforge_auth.settings import AuthSettings

__all__ = [
    "SUBJECT_DN_HEADER",
    "AuthSettings",
    "Identity",
    "InvalidSubjectDN",
    "ServiceIdentity",
    "ToolIdentity",
    "identity_from_certificate",
    "parse_subject_dn",
    "subject_dn",
]
