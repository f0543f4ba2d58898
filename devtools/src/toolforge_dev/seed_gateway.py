"""The seed gateway: nginx configured as upstream Toolforge's api-gateway is.

nginx terminates TLS and requires a client certificate from the cluster CA
(``ssl_verify_client on``), forwards the verified subject DN in ``ssl-client-subject-dn``
(``proxy_set_header ssl-client-subject-dn $ssl_client_s_dn``, which replaces any header of that
name the client sent) and talks to each backend over mTLS with the gateway's backend-CA client
certificate, stripping the route prefix. It is used to check that ``toolforge_auth`` works
behind it and as the baseline in ``bench/gateway.py``.

nginx comes from Debian (``nginx-light``, see ``devtools/scripts/apt-deps.sh``) and runs in the
foreground as a child process, with every path inside a private directory. With ``port=0`` it
serves a listening socket bound here on a port the kernel chose and handed down to nginx
(nginx's own ``NGINX`` environment variable, the one its binary upgrade uses): no port is
picked, released and bound again, which another process could take in between.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SeedGateway", "free_port", "run_seed_gateway"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (anything may take it before it is
    used: prefer ``SeedGateway(port=0)``)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class SeedGateway:
    """nginx settings. ``routes`` maps a prefix (``jobs``) to a backend ``https://host:port``.

    ``pki`` is a directory laid out by :class:`toolforge_admin.pki.PlatformPKI`; ``port`` 0:
    one the kernel chooses (see the module docstring).
    """

    directory: Path
    pki: Path
    port: int
    routes: Mapping[str, str]
    workers: int | str = "auto"
    backend_name: str = "localhost"

    def config(self) -> str:
        """The nginx.conf text."""
        d, p = self.directory, self.pki
        # nginx keeps upstream keep-alive connections only for an ``upstream`` block.
        upstreams = "".join(
            f"""
    upstream {prefix}_backend {{
        server {url.removeprefix("https://").rstrip("/")};
        keepalive 64;
    }}"""
            for prefix, url in self.routes.items()
        )
        locations = "".join(
            f"""
        location /{prefix}/ {{
            proxy_pass https://{prefix}_backend/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header ssl-client-subject-dn $ssl_client_s_dn;
            proxy_buffering off;
            proxy_ssl_certificate {p}/gateway-backend-client.crt;
            proxy_ssl_certificate_key {p}/gateway-backend-client.key;
            proxy_ssl_trusted_certificate {p}/backend-ca.crt;
            proxy_ssl_verify on;
            proxy_ssl_name {self.backend_name};
            proxy_ssl_session_reuse on;
        }}"""
            for prefix in self.routes
        )
        return f"""
worker_processes {self.workers};
user root;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_requests 100000;
{upstreams}
    server {{
        listen 127.0.0.1:{self.port} ssl;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_certificate {p}/gateway-server.crt;
        ssl_certificate_key {p}/gateway-server.key;
        ssl_client_certificate {p}/cluster-ca.crt;
        ssl_verify_client on;
{locations}
    }}
}}
"""


@contextlib.contextmanager
def run_seed_gateway(gateway: SeedGateway, timeout: float = 10) -> Iterator[str]:
    """Run nginx with ``gateway``'s config until the block exits; yields its base URL.

    Raises :class:`FileNotFoundError` when nginx is not installed and :class:`RuntimeError`
    (with nginx's error log) when it does not start listening within ``timeout`` seconds.
    """
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise FileNotFoundError("nginx is not installed (make deps installs nginx-light)")
    listener: socket.socket | None = None
    env = dict(os.environ)
    if gateway.port == 0:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(511)
        gateway = dataclasses.replace(gateway, port=listener.getsockname()[1])
        # nginx takes over the sockets listed here whose address a `listen` names.
        env["NGINX"] = f"{listener.fileno()};"
    gateway.directory.mkdir(parents=True, exist_ok=True)
    conf = gateway.directory / "nginx.conf"
    conf.write_text(gateway.config())
    cmd = [nginx, "-p", str(gateway.directory), "-c", str(conf), "-g", "daemon off;"]
    try:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            pass_fds=[listener.fileno()] if listener is not None else [],
        )
    finally:
        if listener is not None:
            listener.close()  # nginx holds its own copy
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"nginx exited: {proc.stderr.read().decode() if proc.stderr else ''}"
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", gateway.port), timeout=0.2),
            ):
                break
            if time.monotonic() > deadline:
                log = (gateway.directory / "error.log").read_text(errors="replace")
                raise RuntimeError(f"nginx did not listen on {gateway.port}: {log}")
            time.sleep(0.05)
        yield f"https://127.0.0.1:{gateway.port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
