"""Strict subject-DN parsing (RFC 4514 subset) and identities from certificates."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from toolforge_admin.pki import CertificateAuthority, generate_key, subject
from toolforge_auth.identity import (
    MAX_DN_LENGTH,
    InvalidSubjectDN,
    ServiceIdentity,
    ToolIdentity,
    identity_from_certificate,
    parse_subject_dn,
    subject_dn,
)
from toolforge_auth.tools import TOOL_NAME_MAX_LENGTH


@pytest.mark.parametrize(
    ("dn", "expected"),
    [
        ("CN=foo,O=toolforge", ToolIdentity("foo")),
        ("O=toolforge,CN=foo", ToolIdentity("foo")),
        ("CN=a-1,O=toolforge", ToolIdentity("a-1")),
        ("CN=service:jobs-emailer,O=toolforge", ServiceIdentity("jobs-emailer")),
    ],
)
def test_valid_identities(dn: str, expected: ToolIdentity | ServiceIdentity) -> None:
    identity = parse_subject_dn(dn)
    assert identity == expected
    assert parse_subject_dn(identity.dn) == identity


@pytest.mark.parametrize(
    ("dn", "rule"),
    [
        ("", "empty"),
        ("CN=foo", "exactly one O"),
        ("O=toolforge", "exactly one CN"),
        ("CN=foo,O=other", "exactly one O, toolforge"),
        ("CN=foo,O=toolforge,O=toolforge", "exactly one O"),
        ("CN=foo,CN=bar,O=toolforge", "exactly one CN, not 2"),
        ("CN=foo+O=toolforge", "characters"),  # multi-valued RDN
        ("CN=foo,O=toolforge+O=toolforge", "characters"),
        ("CN=evil\\,O=toolforge,O=toolforge", "characters"),  # escaped-comma trick
        ('CN="foo,O=toolforge",O=toolforge', "characters"),  # quoted value
        ("CN=#0c03666f6f,O=toolforge", "characters"),  # hex-encoded value
        ("CN=\\66oo,O=toolforge", "characters"),  # hex escape
        ("CN=foo,O=toolforge,OU=x", "'OU' is not allowed"),  # unknown attribute type
        ("UID=foo,O=toolforge", "'UID' is not allowed"),
        ("2.5.4.3=foo,O=toolforge", "'2.5.4.3' is not allowed"),  # dotted OID form of CN
        ("cn=foo,O=toolforge", "'cn' is not allowed"),
        ("FOO=bar,CN=foo,O=toolforge", "'FOO' is not allowed"),
        ("CN=,O=toolforge", "not a valid RFC 4514"),  # empty value
        ("CN=foo=bar,O=toolforge", "neither a tool name"),
        ("CN=foo,,O=toolforge", "'' is not allowed"),
        ("CN=Foo,O=toolforge", "neither a tool name"),
        ("CN=foo.bar,O=toolforge", "neither a tool name"),
        ("CN=-foo,O=toolforge", "neither a tool name"),
        ("CN=service:,O=toolforge", "service name"),
        ("CN=service:Bad,O=toolforge", "service name"),
        ("CN=system:masters,O=toolforge", "neither a tool name"),
        ("CN=foo,O=toolforge ", "characters"),
        ("CN=fóo,O=toolforge", "characters"),
        ("CN=foo,O=toolforge\n", "characters"),
        (f"CN={'a' * 63},O=toolforge,{'O=x,' * 60}", "characters long"),
    ],
)
def test_invalid_identities(dn: str, rule: str) -> None:
    with pytest.raises(InvalidSubjectDN, match=rule):
        parse_subject_dn(dn)


def test_length_limit_is_the_boundary() -> None:
    # The longest valid tool identity (the tool contract's 58 characters) is well inside the
    # limit; one character more is not a tool name, while a service CN may be longer.
    longest = f"CN={'a' * TOOL_NAME_MAX_LENGTH},O=toolforge"
    assert len(longest) < MAX_DN_LENGTH
    assert parse_subject_dn(longest) == ToolIdentity("a" * TOOL_NAME_MAX_LENGTH)
    with pytest.raises(InvalidSubjectDN, match="neither a tool name"):
        parse_subject_dn(f"CN={'a' * (TOOL_NAME_MAX_LENGTH + 1)},O=toolforge")
    assert parse_subject_dn(f"CN=service:{'a' * 56},O=toolforge") == ServiceIdentity("a" * 56)


def _cert(name: x509.Name) -> x509.Certificate:
    ca = CertificateAuthority.create("test-ca")
    return ca.issue(name, generate_key().public_key(), client=True)


def test_identity_from_certificate() -> None:
    cert = _cert(subject("foo", ["toolforge"]))
    assert identity_from_certificate(cert) == ToolIdentity("foo")
    assert subject_dn(cert) == "CN=foo,O=toolforge"
    assert parse_subject_dn(subject_dn(cert)) == ToolIdentity("foo")


@pytest.mark.parametrize(
    "name",
    [
        subject("admin", ["system:masters"]),  # the cluster CA's admin certificate
        subject("foo"),  # no O
        subject("foo", ["toolforge", "system:masters"]),
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "foo,O=toolforge")]),
        x509.Name(
            [
                x509.RelativeDistinguishedName(
                    [
                        x509.NameAttribute(NameOID.COMMON_NAME, "foo"),
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "toolforge"),
                    ]
                )
            ]
        ),
    ],
)
def test_certificates_that_are_not_identities(name: x509.Name) -> None:
    with pytest.raises(InvalidSubjectDN):
        identity_from_certificate(_cert(name))
