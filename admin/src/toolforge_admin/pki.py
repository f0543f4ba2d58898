"""X.509 building blocks for the platform, on top of ``cryptography``.

Toolforge has two certificate authorities (REFERENCE.md, "Identity and the gateway"):

- the **cluster CA**: kube-apiserver trusts it for client certificates, the controller-manager
  signs CertificateSigningRequests with it (signer ``kubernetes.io/kube-apiserver-client``), so
  a tool's ``CN=<tool>,O=toolforge`` certificate authenticates both to kube-apiserver and to the
  gateway;
- the **backend CA** (``api-gateway-backend-ca``, ECDSA P-256): only for gateway <-> backend
  mTLS. Backends trust the forwarded identity header because the peer holds a certificate from
  this CA, so it must never issue tool certificates.

All keys are ECDSA P-256. Private keys are written with mode 0600, atomically.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = ec.EllipticCurvePrivateKey
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Validity of a CA certificate, in days.
CA_DAYS = 3650
#: Default validity of a leaf certificate, in days.
LEAF_DAYS = 365
#: Backdating of ``not_valid_before``, to tolerate small clock skew.
_BACKDATE = dt.timedelta(minutes=5)


class PKIError(Exception):
    """A certificate or key is missing, unreadable or does not match."""


def generate_key() -> PrivateKey:
    """A new ECDSA P-256 private key."""
    return ec.generate_private_key(ec.SECP256R1())


def subject(cn: str, organizations: Sequence[str] = ()) -> x509.Name:
    """A subject DN with the given CN and O values (RFC 4514 order: ``CN=..,O=..``)."""
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _atomic_write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def key_pem(key: PrivateKey) -> bytes:
    """PKCS#8 PEM of ``key``, unencrypted."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    """PEM of ``cert``."""
    return cert.public_bytes(serialization.Encoding.PEM)


def write_key(path: Path, key: PrivateKey) -> None:
    """Write ``key`` as PEM with mode 0600 (atomically: never a readable partial file)."""
    _atomic_write(path, key_pem(key), 0o600)


def write_cert(path: Path, cert: x509.Certificate) -> None:
    """Write ``cert`` as PEM with mode 0644."""
    _atomic_write(path, cert_pem(cert), 0o644)


def load_key(path: Path) -> PrivateKey:
    """Read an ECDSA private key. Raises :class:`PKIError` when missing or not ECDSA."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise PKIError(f"cannot read private key {path}: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PKIError(f"{path}: expected an ECDSA key")
    return key


def load_cert(path: Path) -> x509.Certificate:
    """Read a PEM certificate. Raises :class:`PKIError` when missing or malformed."""
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise PKIError(f"cannot read certificate {path}: {exc}") from exc


def key_matches(cert: x509.Certificate, key: PrivateKey) -> bool:
    """True when ``cert`` holds the public half of ``key``."""
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    return cert.public_key().public_bytes(enc, fmt) == key.public_key().public_bytes(enc, fmt)


def issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """True when ``cert`` names ``ca`` as issuer and carries a valid signature by its key."""
    try:
        cert.verify_directly_issued_by(ca)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def expires_within(cert: x509.Certificate, window: dt.timedelta) -> bool:
    """True when ``cert`` is already expired or expires within ``window`` from now."""
    return cert.not_valid_after_utc - dt.datetime.now(dt.UTC) <= window


def _key_usage(ca: bool) -> x509.KeyUsage:
    """digitalSignature for every certificate (ECDSA), plus keyCertSign/cRLSign for a CA."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA certificate and its private key."""

    cert: x509.Certificate
    key: PrivateKey

    @classmethod
    def create(cls, common_name: str, days: int = CA_DAYS) -> CertificateAuthority:
        """A new self-signed CA (ECDSA P-256, path length 0)."""
        key = generate_key()
        name = subject(common_name)
        now = _now()
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                _key_usage(ca=True),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert=cert, key=key)

    @classmethod
    def load(cls, directory: Path, name: str) -> CertificateAuthority:
        """Read ``<directory>/<name>.crt`` and ``.key``. Raises :class:`PKIError`."""
        ca = cls(load_cert(directory / f"{name}.crt"), load_key(directory / f"{name}.key"))
        if not key_matches(ca.cert, ca.key):
            raise PKIError(f"{directory / name}: certificate and key do not match")
        return ca

    @classmethod
    def load_or_create(cls, directory: Path, name: str, common_name: str) -> CertificateAuthority:
        """Load the CA saved as ``name`` in ``directory``, creating and saving it if absent."""
        if (directory / f"{name}.crt").exists():
            return cls.load(directory, name)
        ca = cls.create(common_name)
        ca.save(directory, name)
        return ca

    def save(self, directory: Path, name: str) -> None:
        """Write ``<name>.key`` (0600) then ``<name>.crt`` into ``directory``."""
        write_key(directory / f"{name}.key", self.key)
        write_cert(directory / f"{name}.crt", self.cert)

    def issue(
        self,
        subject_name: x509.Name,
        public_key: ec.EllipticCurvePublicKey,
        *,
        client: bool = False,
        server: bool = False,
        dns_names: Iterable[str] = (),
        ip_addresses: Iterable[IPAddress | str] = (),
        days: int = LEAF_DAYS,
    ) -> x509.Certificate:
        """Sign a leaf certificate for ``public_key``.

        ``client``/``server`` select the extended key usages (clientAuth/serverAuth); a server
        certificate gets a SubjectAltName from ``dns_names`` and ``ip_addresses``. Raises
        ``ValueError`` when neither usage is requested.
        """
        if not (client or server):
            raise ValueError("a leaf certificate needs client and/or server usage")
        now = _now()
        usages = []
        if server:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        if client:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject_name)
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(min(now + dt.timedelta(days=days), self.cert.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                _key_usage(ca=False),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        )
        alt_names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
        alt_names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
        if alt_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def issue_pair(
        self,
        directory: Path,
        name: str,
        subject_name: x509.Name,
        *,
        client: bool = False,
        server: bool = False,
        dns_names: Iterable[str] = (),
        ip_addresses: Iterable[IPAddress | str] = (),
        days: int = LEAF_DAYS,
    ) -> tuple[Path, Path]:
        """Create a key and a certificate for it, saved as ``<name>.key`` and ``<name>.crt``.

        The keyword arguments are those of :meth:`issue`. Returns ``(cert_path, key_path)``.
        """
        key = generate_key()
        cert = self.issue(
            subject_name,
            key.public_key(),
            client=client,
            server=server,
            dns_names=dns_names,
            ip_addresses=ip_addresses,
            days=days,
        )
        key_path, cert_path = directory / f"{name}.key", directory / f"{name}.crt"
        write_key(key_path, key)
        write_cert(cert_path, cert)
        return cert_path, key_path


@dataclass(frozen=True)
class PlatformPKI:
    """The platform's CAs and the service certificates, kept in one directory.

    Layout of ``directory``::

        cluster-ca.{crt,key}       cluster CA (kube-apiserver client CA, CSR signer)
        backend-ca.{crt,key}       backend CA (gateway <-> services mTLS only)
        gateway-server.{crt,key}   gateway's TLS server certificate (cluster CA)
        gateway-backend-client.{crt,key}   gateway's client certificate for backends
        jobs-api-server.{crt,key}, builds-api-server.{crt,key},
        envvars-api-server.{crt,key}, logs-api-server.{crt,key}   backend server certs
        service-jobs-api-client.{crt,key}   the jobs API's service identity towards the
                                   gateway (CN=service:jobs-api,O=toolforge, cluster CA)

    The gateway's server certificate comes from the cluster CA because that is the CA a tool
    already holds in its kubeconfig.
    """

    directory: Path
    cluster_ca: CertificateAuthority
    backend_ca: CertificateAuthority

    #: Subject of the gateway's client certificate towards the backends.
    GATEWAY_CLIENT_CN = "toolforge-api-gateway"
    BACKENDS = ("jobs-api", "builds-api", "envvars-api", "logs-api")
    #: Service identities (``CN=service:<name>``) that call the gateway; the gateway's
    #: ``service_identities`` says which paths each may call.
    SERVICES = ("jobs-api",)

    @classmethod
    def ensure(
        cls,
        directory: Path,
        *,
        gateway_names: Sequence[str] = ("localhost",),
        gateway_ips: Sequence[str] = ("127.0.0.1",),
        backend_names: Sequence[str] = ("localhost",),
        backend_ips: Sequence[str] = ("127.0.0.1",),
    ) -> PlatformPKI:
        """Load the platform PKI from ``directory``, creating whatever is missing.

        Existing files are kept, so running this twice changes nothing. Backend server
        certificates get ``<name>``, ``<name>.<ns>.svc``-style names from ``backend_names``
        plus the service name itself.
        """
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        pki = cls(
            directory=directory,
            cluster_ca=CertificateAuthority.load_or_create(
                directory, "cluster-ca", "toolforge-cluster-ca"
            ),
            backend_ca=CertificateAuthority.load_or_create(
                directory, "backend-ca", "api-gateway-backend-ca"
            ),
        )
        if not (directory / "gateway-server.crt").exists():
            pki.cluster_ca.issue_pair(
                directory,
                "gateway-server",
                subject("toolforge-api-gateway"),
                server=True,
                dns_names=gateway_names,
                ip_addresses=gateway_ips,
            )
        if not (directory / "gateway-backend-client.crt").exists():
            pki.backend_ca.issue_pair(
                directory,
                "gateway-backend-client",
                subject(cls.GATEWAY_CLIENT_CN, ["toolforge"]),
                client=True,
            )
        for service in cls.SERVICES:
            if not (directory / f"service-{service}-client.crt").exists():
                pki.cluster_ca.issue_pair(
                    directory,
                    f"service-{service}-client",
                    subject(f"service:{service}", ["toolforge"]),
                    client=True,
                )
        for backend in cls.BACKENDS:
            if not (directory / f"{backend}-server.crt").exists():
                pki.backend_ca.issue_pair(
                    directory,
                    f"{backend}-server",
                    subject(backend),
                    server=True,
                    dns_names=[backend, *backend_names],
                    ip_addresses=backend_ips,
                )
        return pki
