"""The platform's git server: read-only smart HTTP over TLS, where builds clone from.

Why this server: Git's own ``git http-backend`` (Debian ``git``) speaks the smart HTTP
protocol (v0 and v2) exactly as git clients expect, behind nginx (Debian ``nginx-light``, already
used for the seed gateway) with ``fcgiwrap`` (Debian) as the FastCGI-to-CGI bridge. That is the
set-up the ``git-http-backend`` manual describes, all three are maintained Debian packages with
security updates, and nothing has to be built. The Go git servers of the module proxy are either
libraries (a server would be our own code) or whole forges (Gitea, Soft Serve) with databases
and user management this needs none of.

What it runs with:

- nginx on ``https://<node>:8451`` (:data:`GIT_PORT`; the node address, so pods reach it like
  the registry), server certificate from the cluster CA (``ConfigMap kube-root-ca.crt`` in every
  namespace holds that CA, so the clone step trusts it; so do the host's builds API and git
  with ``GIT_SSL_CAINFO``). ``/healthz`` answers ``ok`` from nginx alone.
- ``fcgiwrap`` as ``nobody`` (``setpriv``), so ``git http-backend`` never runs as root, on a
  unix socket only nginx's workers (also ``nobody``) use.
- **read-only and anonymous**: ``http.receivepack`` stays off (pushes over HTTP get 403), and
  only GET and POST (upload-pack) reach the backend. Repositories are made and filled on the
  host through the file system (:meth:`GitServer.create_repository`, then ``git push
  <path>``), so the server needs no accounts. ``GIT_HTTP_EXPORT_ALL`` exports every
  repository under ``repos/``; ``safe.directory`` lets ``nobody`` read the root-owned ones and
  ``uploadpack.allowReachableSHA1InWant`` lets protocol v0 clients fetch a commit by id (v2 does
  by default).

Repository URLs are ``https://<node>:8451/<name>.git``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from toolforge_admin.pki import CertificateAuthority, subject

__all__ = ["GIT_PORT", "GitServer", "GitServerError"]

GIT_PORT = 8451
#: Repository the backend's health check reads (``info/refs`` of an empty repository).
HEALTH_REPOSITORY = "_health"
_BACKEND = "/usr/lib/git-core/git-http-backend"


class GitServerError(Exception):
    """A repository could not be made, or a tool the server needs is missing."""


@dataclass(frozen=True)
class GitServer:
    """The server's files in ``directory``; serves on ``host:port``.

    Layout: ``repos/<name>.git`` (bare repositories), ``run/`` (fcgiwrap's socket, nginx's
    pid and temporary files), ``nginx.conf``, ``error.log``, ``git-server.{crt,key}``.
    """

    directory: Path
    host: str
    port: int = GIT_PORT

    @property
    def repos_dir(self) -> Path:
        """Where the bare repositories live."""
        return self.directory / "repos"

    @property
    def socket(self) -> Path:
        """fcgiwrap's socket."""
        return self.directory / "run" / "fcgiwrap.sock"

    @property
    def config_path(self) -> Path:
        """nginx's configuration file."""
        return self.directory / "nginx.conf"

    @property
    def base_url(self) -> str:
        """``https://<host>:<port>``."""
        return f"https://{self.host}:{self.port}"

    def url(self, name: str) -> str:
        """Clone URL of repository ``name``."""
        return f"{self.base_url}/{name}.git"

    @property
    def health_url(self) -> str:
        """Answers 200 when nginx alone is up."""
        return f"{self.base_url}/healthz"

    @property
    def backend_health_url(self) -> str:
        """Answers 200 when nginx, fcgiwrap and ``git http-backend`` all work."""
        return f"{self.url(HEALTH_REPOSITORY)}/info/refs?service=git-upload-pack"

    def nginx_config(self) -> str:
        """The nginx.conf text."""
        d, run = self.directory, self.directory / "run"
        return f"""
worker_processes 1;
user nobody nogroup;
pid {run}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {run}/body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
    server {{
        listen {self.host}:{self.port} ssl;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_certificate {d}/git-server.crt;
        ssl_certificate_key {d}/git-server.key;
        client_max_body_size 16m;
        location = /healthz {{
            default_type text/plain;
            return 200 "ok\\n";
        }}
        location / {{
            limit_except GET POST {{ deny all; }}
            fastcgi_pass unix:{self.socket};
            fastcgi_buffering off;
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME {_BACKEND};
            fastcgi_param PATH_INFO $uri;
            fastcgi_param GIT_PROJECT_ROOT {self.repos_dir};
            fastcgi_param GIT_HTTP_EXPORT_ALL 1;
            fastcgi_param GIT_PROTOCOL $http_git_protocol;
            fastcgi_param GIT_CONFIG_COUNT 3;
            fastcgi_param GIT_CONFIG_KEY_0 safe.directory;
            fastcgi_param GIT_CONFIG_VALUE_0 *;
            fastcgi_param GIT_CONFIG_KEY_1 http.receivepack;
            fastcgi_param GIT_CONFIG_VALUE_1 false;
            fastcgi_param GIT_CONFIG_KEY_2 uploadpack.allowReachableSHA1InWant;
            fastcgi_param GIT_CONFIG_VALUE_2 true;
        }}
    }}
}}
"""

    def prepare(self, ca: CertificateAuthority | None) -> None:
        """Write the configuration, the server certificate (issued by ``ca`` when missing) and
        the health repository; clear a stale socket (not a live one). Raises
        :class:`GitServerError` when nginx, fcgiwrap or git is not installed."""
        for tool in ("nginx", "fcgiwrap", "git", "setpriv"):
            if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
                raise GitServerError(f"{tool} is not installed (make deps installs it)")
        run = self.directory / "run"
        self.repos_dir.mkdir(parents=True, exist_ok=True)
        run.mkdir(parents=True, exist_ok=True)
        shutil.chown(run, "nobody", "nogroup")
        if not self._socket_is_live():
            self.socket.unlink(missing_ok=True)
        if not (self.directory / "git-server.crt").exists():
            if ca is None:
                raise GitServerError(f"{self.directory}: no server certificate, no CA to issue one")
            ca.issue_pair(
                self.directory,
                "git-server",
                subject("toolforge-git"),
                server=True,
                dns_names=["localhost"],
                ip_addresses=[self.host],
            )
        self.config_path.write_text(self.nginx_config())
        self.create_repository(HEALTH_REPOSITORY)

    def _socket_is_live(self) -> bool:
        """Whether a running fcgiwrap listens on :attr:`socket`. ``prepare`` runs again when
        the platform starts a stopped service next to running ones; unlinking a live socket
        then left nginx answering 502 for every request until the next full restart."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(self.socket))
            except OSError:
                return False
        return True

    def nginx_argv(self) -> list[str]:
        """nginx in the foreground (its command line names ``directory``)."""
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        return [
            nginx,
            "-p",
            str(self.directory),
            "-e",
            str(self.directory / "error.log"),
            "-c",
            str(self.config_path),
            "-g",
            "daemon off;",
        ]

    def fcgiwrap_argv(self) -> list[str]:
        """fcgiwrap as ``nobody`` (with ``nobody``'s environment: ``HOME=/nonexistent``, so
        git reads no root configuration) on :attr:`socket`, 4 workers."""
        fcgiwrap = shutil.which("fcgiwrap") or "/usr/sbin/fcgiwrap"
        setpriv = shutil.which("setpriv") or "/usr/bin/setpriv"
        return [
            setpriv,
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "--reset-env",
            "--",
            fcgiwrap,
            "-c",
            "4",
            "-s",
            f"unix:{self.socket}",
        ]

    def create_repository(self, name: str) -> Path:
        """An empty bare repository ``repos/<name>.git`` (kept when it exists); its path.

        Raises :class:`GitServerError` for a name that is not a plain ``[A-Za-z0-9._-]`` word
        or when ``git init`` fails."""
        if not name or name.startswith(".") or not all(c.isalnum() or c in "._-" for c in name):
            raise GitServerError(f"bad repository name {name!r}")
        path = self.repos_dir / f"{name}.git"
        if not path.exists():
            proc = subprocess.run(
                ["git", "init", "--quiet", "--bare", "--initial-branch=main", str(path)],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                raise GitServerError(f"git init {path} failed: {proc.stderr.strip()}")
        return path

    def publish(self, name: str, source: Path, message: str = "toolforge-dev sample") -> str:
        """Commit the files of directory ``source`` (one commit, author ``toolforge-dev``) and
        push it as branch ``main`` of repository ``name`` (made when missing), replacing what
        was there; returns the commit id (40 hex digits).

        Raises :class:`GitServerError` with git's output when a git command fails."""
        bare = self.create_repository(name)
        env = {
            "GIT_AUTHOR_NAME": "toolforge-dev",
            "GIT_AUTHOR_EMAIL": "toolforge-dev@localhost",
            "GIT_COMMITTER_NAME": "toolforge-dev",
            "GIT_COMMITTER_EMAIL": "toolforge-dev@localhost",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_CONFIG_NOSYSTEM": "1",
            "PATH": "/usr/local/bin:/usr/bin:/bin",
        }
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp) / "work"
            shutil.copytree(source, work, symlinks=True)

            def git(*args: str) -> str:
                proc = subprocess.run(
                    ["git", "-C", str(work), *args],
                    capture_output=True,
                    text=True,
                    env=env,
                    check=False,
                )
                if proc.returncode != 0:
                    raise GitServerError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
                return proc.stdout.strip()

            git("init", "--quiet", "--initial-branch=main")
            git("add", "--all")
            git("commit", "--quiet", "--message", message)
            git("push", "--quiet", "--force", str(bare), "main:main")
            return git("rev-parse", "HEAD")
