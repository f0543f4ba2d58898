"""PKI building blocks: CAs, leaf certificates, key files, the platform layout."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from toolforge_admin import pki


def test_ca_is_a_self_signed_ca() -> None:
    ca = pki.CertificateAuthority.create("test-ca")
    constraints = ca.cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca is True
    assert pki.issued_by(ca.cert, ca.cert)
    assert ca.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "test-ca"


def test_server_certificate_has_names_and_server_usage() -> None:
    ca = pki.CertificateAuthority.create("test-ca")
    key = pki.generate_key()
    cert = ca.issue(
        pki.subject("svc"),
        key.public_key(),
        server=True,
        dns_names=["svc.example"],
        ip_addresses=["127.0.0.1"],
    )
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["svc.example"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert pki.issued_by(cert, ca.cert)
    assert pki.key_matches(cert, key)
    assert cert.not_valid_after_utc <= ca.cert.not_valid_after_utc


def test_client_subject_is_cn_then_o_as_rfc4514() -> None:
    ca = pki.CertificateAuthority.create("test-ca")
    key = pki.generate_key()
    cert = ca.issue(pki.subject("mytool", ["toolforge"]), key.public_key(), client=True)
    assert cert.subject.rfc4514_string() == "CN=mytool,O=toolforge"
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_leaf_needs_a_usage() -> None:
    ca = pki.CertificateAuthority.create("test-ca")
    with pytest.raises(ValueError, match="usage"):
        ca.issue(pki.subject("x"), pki.generate_key().public_key())


def test_other_ca_does_not_verify() -> None:
    ca, other = pki.CertificateAuthority.create("a"), pki.CertificateAuthority.create("b")
    cert = ca.issue(pki.subject("x"), pki.generate_key().public_key(), client=True)
    assert not pki.issued_by(cert, other.cert)


def test_key_files_are_0600(tmp_path: Path) -> None:
    ca = pki.CertificateAuthority.create("test-ca")
    cert_path, key_path = ca.issue_pair(tmp_path, "leaf", pki.subject("leaf"), client=True)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert pki.key_matches(pki.load_cert(cert_path), pki.load_key(key_path))


def test_load_missing_key_is_a_pki_error(tmp_path: Path) -> None:
    with pytest.raises(pki.PKIError, match="cannot read private key"):
        pki.load_key(tmp_path / "nope.key")


def test_platform_pki_layout_and_separation(tmp_path: Path) -> None:
    d = tmp_path / "pki"
    platform = pki.PlatformPKI.ensure(d)
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    for key in d.glob("*.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    cluster_ca, backend_ca = platform.cluster_ca.cert, platform.backend_ca.cert
    assert cluster_ca.subject != backend_ca.subject
    # The gateway's client certificate towards backends comes from the backend CA only.
    gw_client = pki.load_cert(d / "gateway-backend-client.crt")
    assert pki.issued_by(gw_client, backend_ca)
    assert not pki.issued_by(gw_client, cluster_ca)
    # Tools hold the cluster CA: the gateway's server certificate must verify with it.
    assert pki.issued_by(pki.load_cert(d / "gateway-server.crt"), cluster_ca)
    for backend in ("jobs-api", "builds-api"):
        cert = pki.load_cert(d / f"{backend}-server.crt")
        assert pki.issued_by(cert, backend_ca)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert backend in san.get_values_for_type(x509.DNSName)


def test_platform_pki_second_run_changes_nothing(tmp_path: Path) -> None:
    pki.PlatformPKI.ensure(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    pki.PlatformPKI.ensure(tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_mismatched_ca_files_are_refused(tmp_path: Path) -> None:
    a, b = pki.CertificateAuthority.create("a"), pki.CertificateAuthority.create("b")
    pki.write_cert(tmp_path / "ca.crt", a.cert)
    pki.write_key(tmp_path / "ca.key", b.key)
    with pytest.raises(pki.PKIError, match="do not match"):
        pki.CertificateAuthority.load(tmp_path, "ca")
