"""The git server's ``prepare`` runs again whenever the platform starts a stopped service
next to running ones (``PlatformServices.start``): it must keep the socket of a running
fcgiwrap (removing it left nginx answering 502 for the rest of the session) and still clear a
stale one. Real unix sockets, no cluster."""

from __future__ import annotations

import socket
from pathlib import Path

from toolforge_admin.pki import CertificateAuthority
from toolforge_dev.gitserver import GitServer


def test_prepare_keeps_a_live_socket_and_clears_a_stale_one(tmp_path: Path) -> None:
    git = GitServer(tmp_path / "git", host="127.0.0.1")
    ca = CertificateAuthority.create("test CA")
    git.prepare(ca)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(git.socket))
        listener.listen(1)
        git.prepare(ca)  # a running backend listens: its socket stays
        assert git.socket.exists()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(str(git.socket))
    # the backend is gone; its socket file is left behind (a stale one): cleared
    assert git.socket.exists()
    git.prepare(ca)
    assert not git.socket.exists()
