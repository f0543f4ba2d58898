"""Certificates for TLS tests: the platform PKI in a temporary directory plus client certs."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from toolforge_admin.pki import (
    CertificateAuthority,
    PlatformPKI,
    generate_key,
    subject,
    write_cert,
    write_key,
)


@dataclass(frozen=True)
class Pair:
    """A client certificate and its key on disk."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class AuthPKI:
    """The platform PKI in a temporary directory, and client certificates for the tests."""

    dir: Path
    platform: PlatformPKI

    def path(self, name: str) -> Path:
        return self.dir / name

    def client(self, ca: CertificateAuthority, name: str, cn: str, orgs: list[str]) -> Pair:
        cert, key = ca.issue_pair(self.dir, name, subject(cn, orgs), client=True)
        return Pair(cert, key)

    def expired_client(self, ca: CertificateAuthority, name: str, cn: str) -> Pair:
        """A client certificate whose validity ended yesterday (otherwise correct)."""
        key = generate_key()
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject(cn, ["toolforge"]))
            .issuer_name(ca.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=30))
            .not_valid_after(now - dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca.key, hashes.SHA256())
        )
        pair = Pair(self.dir / f"{name}.crt", self.dir / f"{name}.key")
        write_key(pair.key, key)
        write_cert(pair.cert, cert)
        return pair
