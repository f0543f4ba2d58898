"""Resolving refs with ``git ls-remote``: output parsing, a local repository, real HTTPS.

The HTTPS tests serve a bare repository over git's "dumb" HTTP protocol from a loopback
TLS server with a certificate from a CA made here, so verification, the CA setting and the
error mapping are exercised over real sockets.
"""

from __future__ import annotations

import datetime as dt
import http.server
import ipaddress
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from toolforge_builds.gitref import (
    GitRefError,
    LsRemoteTimeoutError,
    RefNotFoundError,
    RemoteUnreachableError,
    RepositoryNotFoundError,
    candidate_refs,
    ls_remote,
    parse_ls_remote,
    pick_commit,
    resolve_ref,
)

A = "1" * 40
B = "2" * 40
C = "3" * 40
D = "4" * 40


def test_parse_ls_remote() -> None:
    output = (
        f"ref: refs/heads/main\tHEAD\n"
        f"{A}\tHEAD\n"
        f"{A}\trefs/heads/main\n"
        f"{B}\trefs/tags/v1\n"
        f"{C}\trefs/tags/v1^{{}}\n"
        f"{'e' * 64}\trefs/heads/sha256\n"
        "warning: redirecting to https://example.org/\n"
        f"{'z' * 40}\trefs/heads/bad\n"
    )
    assert parse_ls_remote(output) == {
        "HEAD": A,
        "refs/heads/main": A,
        "refs/tags/v1": B,
        "refs/tags/v1^{}": C,
        "refs/heads/sha256": "e" * 64,
    }


def test_candidates_follow_gitrevisions_precedence() -> None:
    assert candidate_refs("main") == ["refs/main", "refs/tags/main", "refs/heads/main"]
    assert candidate_refs("HEAD") == ["HEAD"]
    assert candidate_refs("refs/heads/main") == ["refs/heads/main"]


def test_pick_commit() -> None:
    refs = {
        "HEAD": A,
        "refs/heads/main": A,
        "refs/heads/clash": B,
        "refs/tags/clash": C,
        "refs/tags/annotated": B,
        "refs/tags/annotated^{}": D,
        "refs/heads/feature/main": D,
    }
    assert pick_commit(refs, "HEAD") == A
    assert pick_commit(refs, "main") == A  # not refs/heads/feature/main
    assert pick_commit(refs, "clash") == C  # tags before branches
    assert pick_commit(refs, "refs/heads/clash") == B
    assert pick_commit(refs, "annotated") == D  # the commit, not the tag object
    assert pick_commit(refs, "feature/main") == D
    assert pick_commit(refs, "nope") is None
    assert pick_commit({}, "HEAD") is None


# ------------------------------------------------------------------------- a real repository


def _git(*args: str, cwd: Path) -> str:
    result = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip()


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("git")
    work = root / "work"
    work.mkdir()
    _git("init", "-q", "-b", "main", cwd=work)
    commits = []
    for i in range(3):
        (work / "file").write_text(str(i))
        _git("add", "file", cwd=work)
        _git("commit", "-q", "-m", f"c{i}", cwd=work)
        commits.append(_git("rev-parse", "HEAD", cwd=work))
    _git("branch", "feature/x", commits[0], cwd=work)
    _git("branch", "clash", commits[0], cwd=work)
    _git("tag", "clash", commits[1], cwd=work)
    _git("tag", "light", commits[1], cwd=work)
    _git("tag", "-a", "-m", "release", "v1.0", commits[0], cwd=work)
    bare = root / "served" / "repo.git"
    bare.parent.mkdir()
    _git("clone", "-q", "--bare", str(work), str(bare), cwd=root)
    _git("update-server-info", cwd=bare)  # for the dumb HTTP protocol
    return {"bare": bare, "commits": commits, "url": bare.as_uri()}


@pytest.mark.parametrize(
    ("ref", "index"),
    [
        (None, 2),
        ("HEAD", 2),
        ("main", 2),
        ("refs/heads/main", 2),
        ("feature/x", 0),
        ("clash", 1),
        ("refs/heads/clash", 0),
        ("light", 1),
        ("v1.0", 0),
    ],
)
async def test_resolve_on_a_local_repository(
    repo: dict[str, Any], ref: str | None, index: int
) -> None:
    commit = await resolve_ref(repo["url"], ref, timeout=30, allow_file_urls_for_tests=True)
    assert commit == repo["commits"][index]


async def test_missing_ref_is_reported_by_name(repo: dict[str, Any]) -> None:
    with pytest.raises(RefNotFoundError, match="no branch or tag named 'nope'"):
        await resolve_ref(repo["url"], "nope", timeout=30, allow_file_urls_for_tests=True)
    # a tail match must not count: 'x' is only the end of 'feature/x'
    with pytest.raises(RefNotFoundError):
        await resolve_ref(repo["url"], "x", timeout=30, allow_file_urls_for_tests=True)


async def test_empty_repository_has_no_head(tmp_path: Path) -> None:
    _git("init", "-q", "--bare", "empty.git", cwd=tmp_path)
    url = (tmp_path / "empty.git").as_uri()
    with pytest.raises(RefNotFoundError, match="no HEAD"):
        await resolve_ref(url, None, timeout=30, allow_file_urls_for_tests=True)


async def test_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(RepositoryNotFoundError):
        await resolve_ref(tmp_path.as_uri(), None, timeout=30, allow_file_urls_for_tests=True)


async def test_commit_ids_are_returned_without_network() -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    assert await resolve_ref("https://unused.invalid/repo", commit, timeout=0.001) == commit


@pytest.mark.parametrize(
    "url", ["file:///tmp/repo", "http://example.org/repo", "ext::sh -c x", "-uhttps://x/y"]
)
async def test_only_https_without_the_test_flag(url: str) -> None:
    with pytest.raises(GitRefError, match="only https://"):
        await ls_remote(url, ["HEAD"], timeout=5)


async def test_patterns_cannot_be_options() -> None:
    with pytest.raises(GitRefError, match="must not start with '-'"):
        await ls_remote("https://example.org/r", ["--upload-pack=x"], timeout=5)


async def test_missing_git_binary() -> None:
    with pytest.raises(GitRefError, match="not found"):
        await ls_remote("https://example.org/r", ["HEAD"], timeout=5, git="/nonexistent/git")


# ------------------------------------------------------------------------ real HTTPS, loopback


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[str, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer or (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


class _Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/private/"):
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path.startswith("/moved/"):
            self.send_response(301)
            self.send_header("Location", "https://127.0.0.1:1/elsewhere.git/info/refs")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture(scope="module")
def https_server(
    repo: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("tls")
    ca_key, server_key = _key(), _key()
    ca = _cert("test git CA", ca_key, None, ca=True)
    server = _cert("127.0.0.1", server_key, ("test git CA", ca_key), ca=False)
    (tmp / "ca.pem").write_bytes(_pem(ca))
    (tmp / "server.pem").write_bytes(_pem(server))
    (tmp / "server.key").write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp / "server.pem", tmp / "server.key")
    directory = str(repo["bare"].parent)

    def handler(*args: Any) -> _Handler:
        return _Handler(*args, directory=directory)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"base": f"https://127.0.0.1:{httpd.server_address[1]}", "ca": tmp / "ca.pem"}
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


async def test_resolve_over_https(repo: dict[str, Any], https_server: dict[str, Any]) -> None:
    url = f"{https_server['base']}/repo.git"
    ca = https_server["ca"]
    assert await resolve_ref(url, None, timeout=30, ca_file=ca) == repo["commits"][2]
    assert await resolve_ref(url, "v1.0", timeout=30, ca_file=ca) == repo["commits"][0]
    with pytest.raises(RefNotFoundError):
        await resolve_ref(url, "nope", timeout=30, ca_file=ca)


async def test_untrusted_certificate_is_refused(https_server: dict[str, Any]) -> None:
    url = f"{https_server['base']}/repo.git"
    with pytest.raises(RemoteUnreachableError, match="certificate"):
        await resolve_ref(url, None, timeout=30)


async def test_missing_repository_over_https(https_server: dict[str, Any]) -> None:
    url = f"{https_server['base']}/nothing-here.git"
    with pytest.raises(RepositoryNotFoundError, match="no public git repository"):
        await resolve_ref(url, None, timeout=30, ca_file=https_server["ca"])


async def test_repository_asking_for_credentials(https_server: dict[str, Any]) -> None:
    url = f"{https_server['base']}/private/repo.git"
    with pytest.raises(RepositoryNotFoundError, match="needs credentials"):
        await resolve_ref(url, None, timeout=30, ca_file=https_server["ca"])


async def test_redirects_are_not_followed(https_server: dict[str, Any]) -> None:
    url = f"{https_server['base']}/moved/repo.git"
    with pytest.raises(RemoteUnreachableError, match="redirects"):
        await resolve_ref(url, None, timeout=30, ca_file=https_server["ca"])


async def test_closed_port_is_unreachable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(RemoteUnreachableError, match="cannot reach"):
        await resolve_ref(f"https://127.0.0.1:{port}/repo.git", None, timeout=30)
    assert time.monotonic() - started < 30  # refused at once, not the timeout


async def test_silent_server_times_out() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()  # the kernel accepts the connection; nobody ever answers
        port = sock.getsockname()[1]
        with pytest.raises(LsRemoteTimeoutError, match=r"did not answer within 0\.5 seconds"):
            await resolve_ref(f"https://127.0.0.1:{port}/repo.git", None, timeout=0.5)
