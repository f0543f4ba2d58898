"""Toolforge identities and strict parsing of subject DNs.

A Toolforge identity is carried by an X.509 subject DN with exactly one ``CN`` and exactly one
``O``, where ``O`` is ``toolforge`` (REFERENCE.md, "Identity and the gateway"):

- a tool: ``CN=<tool>,O=toolforge``, where ``<tool>`` is a tool name
  (:mod:`toolforge_auth.tools`: the tool's Kubernetes user; its namespace is ``tool-<tool>``);
- a service: ``CN=service:<name>,O=toolforge``.

The gateway forwards the verified subject DN to the backends in the ``ssl-client-subject-dn``
header as an RFC 4514 string (``CN=foo,O=toolforge``; nginx's ``$ssl_client_s_dn`` has the
same RFC 2253 form). Parsing is deliberately narrower than RFC 4514: a valid identity never
needs escaping, quoting, hex values or multi-valued RDNs, so any of those is rejected before the
string is handed to :meth:`cryptography.x509.Name.from_rfc4514_string`. That closes the
escaped-comma trick (``CN=evil\\,O=toolforge``) and its relatives at the door.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

from toolforge_auth.tools import is_tool_name

__all__ = [
    "MAX_DN_LENGTH",
    "SUBJECT_DN_HEADER",
    "TOOLFORGE_ORGANIZATION",
    "Identity",
    "InvalidSubjectDN",
    "ServiceIdentity",
    "ToolIdentity",
    "identity_from_certificate",
    "identity_from_name",
    "parse_subject_dn",
    "subject_dn",
]

#: The header in which the gateway forwards the verified subject DN (REFERENCE.md).
SUBJECT_DN_HEADER = "ssl-client-subject-dn"
#: The only organisation a Toolforge identity may carry.
TOOLFORGE_ORGANIZATION = "toolforge"
#: Longest subject DN string accepted, in characters. ``CN`` is at most 64 characters
#: (RFC 5280 ``ub-common-name``), so anything much longer is not one of ours.
MAX_DN_LENGTH = 256
#: Prefix of the CN of a service identity.
SERVICE_PREFIX = "service:"

# A DNS-1123 label, at most 63 characters: the rule for service names. Tool names follow the
# tool contract (toolforge_auth.tools: a DNS-1123 label of at most 58 characters).
_SERVICE_NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
# Characters a valid identity DN can contain. No '\\', '"', '#', '+', ';', '<', '>', spaces,
# control characters or non-ASCII: none is needed by a valid identity, and each is the start of
# an escaping or multi-value trick.
_DN_CHARS_RE = re.compile(r"[A-Za-z0-9=,:.-]+")
# The attribute types of an identity DN, by their RFC 4514 short names only (no dotted OIDs).
_ATTRIBUTE_TYPES = frozenset({"CN", "O"})


class InvalidSubjectDN(ValueError):  # noqa: N818 - the name reads as what was wrong
    """The subject DN is not a valid Toolforge identity; the message says which rule failed."""


@dataclass(frozen=True, slots=True)
class ToolIdentity:
    """A tool: Kubernetes user ``name``, namespace ``tool-<name>``."""

    name: str

    @property
    def cn(self) -> str:
        """The certificate CN: the tool name."""
        return self.name

    @property
    def dn(self) -> str:
        """Canonical RFC 4514 subject DN, ``CN=<name>,O=toolforge``."""
        return f"CN={self.cn},O={TOOLFORGE_ORGANIZATION}"


@dataclass(frozen=True, slots=True)
class ServiceIdentity:
    """A platform service calling through the gateway; CN ``service:<name>``."""

    name: str

    @property
    def cn(self) -> str:
        """The certificate CN: ``service:<name>``."""
        return f"{SERVICE_PREFIX}{self.name}"

    @property
    def dn(self) -> str:
        """Canonical RFC 4514 subject DN, ``CN=service:<name>,O=toolforge``."""
        return f"CN={self.cn},O={TOOLFORGE_ORGANIZATION}"


Identity = ToolIdentity | ServiceIdentity


def parse_subject_dn(value: str) -> Identity:
    """Parse the ``ssl-client-subject-dn`` header value strictly into an :data:`Identity`.

    ``value`` is an RFC 4514 string such as ``CN=foo,O=toolforge`` (RDN order does not
    matter). Raises :class:`InvalidSubjectDN` when the string is empty, longer than
    :data:`MAX_DN_LENGTH`, uses escapes, quotes, hex values or multi-valued RDNs, names an
    attribute other than ``CN`` and ``O``, lacks or repeats either, has ``O`` other than
    ``toolforge``, or has a CN that is neither a tool name nor ``service:<name>``.
    """
    if not value:
        raise InvalidSubjectDN("the subject DN is empty")
    if len(value) > MAX_DN_LENGTH:
        raise InvalidSubjectDN(
            f"the subject DN is {len(value)} characters long; at most {MAX_DN_LENGTH} are allowed"
        )
    if not _DN_CHARS_RE.fullmatch(value):
        raise InvalidSubjectDN(
            "the subject DN contains characters no Toolforge identity needs "
            "(escapes, quotes, '+', '#', spaces, control characters or non-ASCII)"
        )
    # Without escapes, ',' only separates RDNs, so each part is one "type=value".
    for part in value.split(","):
        attribute_type = part.partition("=")[0]
        if attribute_type not in _ATTRIBUTE_TYPES:
            raise InvalidSubjectDN(
                f"attribute type {attribute_type!r} is not allowed; only CN and O are"
            )
    try:
        name = x509.Name.from_rfc4514_string(value)
    except ValueError as exc:
        raise InvalidSubjectDN(f"the subject DN is not a valid RFC 4514 string: {exc}") from exc
    return identity_from_name(name)


def identity_from_name(name: x509.Name) -> Identity:
    """Apply the identity rules to a parsed X.509 :class:`~cryptography.x509.Name`.

    Raises :class:`InvalidSubjectDN` (see :func:`parse_subject_dn` for the rules).
    """
    cns: list[str] = []
    orgs: list[str] = []
    for rdn in name.rdns:
        if len(rdn) != 1:
            raise InvalidSubjectDN("multi-valued RDNs are not allowed in a Toolforge identity")
        (attribute,) = rdn
        value = attribute.value
        if not isinstance(value, str):
            raise InvalidSubjectDN("attribute values must be strings")
        if attribute.oid == NameOID.COMMON_NAME:
            cns.append(value)
        elif attribute.oid == NameOID.ORGANIZATION_NAME:
            orgs.append(value)
        else:
            raise InvalidSubjectDN(
                f"attribute {attribute.oid.dotted_string} is not allowed; only CN and O are"
            )
    if len(cns) != 1:
        raise InvalidSubjectDN(f"a Toolforge identity has exactly one CN, not {len(cns)}")
    if orgs != [TOOLFORGE_ORGANIZATION]:
        raise InvalidSubjectDN(f"a Toolforge identity has exactly one O, {TOOLFORGE_ORGANIZATION}")
    (cn,) = cns
    if cn.startswith(SERVICE_PREFIX):
        service = cn.removeprefix(SERVICE_PREFIX)
        if not _SERVICE_NAME_RE.fullmatch(service):
            raise InvalidSubjectDN(f"CN {cn!r}: the service name must be a DNS-1123 label")
        return ServiceIdentity(service)
    if not is_tool_name(cn):
        raise InvalidSubjectDN(f"CN {cn!r} is neither a tool name nor service:<name>")
    return ToolIdentity(cn)


def identity_from_certificate(cert: x509.Certificate) -> Identity:
    """The identity in ``cert``'s subject; raises :class:`InvalidSubjectDN` (same rules)."""
    return identity_from_name(cert.subject)


def subject_dn(cert: x509.Certificate) -> str:
    """``cert``'s subject as the RFC 4514 string forwarded in :data:`SUBJECT_DN_HEADER`.

    The order is RFC 4514's (last RDN of the ASN.1 sequence first), as nginx's
    ``$ssl_client_s_dn`` gives it.
    """
    return cert.subject.rfc4514_string()
