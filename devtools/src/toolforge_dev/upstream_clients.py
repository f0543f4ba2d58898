"""The upstream Toolforge clients (``toolforge-jobs``, ``toolforge-build``, ``toolforge-envvars``,
``toolforge-logs`` from PyPI), run as a tool against our gateway.

They are what Toolforge's users run every day, so our APIs must serve them unchanged
(REFERENCE.md, "The wire as production serves it"). They need Python >= 3.13 (the builds
client) while the repository runs on 3.11, so they get a virtual environment of their own:

- the versions are pinned with hashes in ``devtools/upstream/requirements.txt`` (compiled from
  ``requirements.in``; the command is in that file's header) and installed with
  ``uv pip install --require-hashes``;
- the environment lives in ``<cache>/upstream-clients/<key>/`` (the cache is
  ``$TOOLFORGE_DEV_CACHE``, default ``~/.cache/toolforge-dev``), where ``<key>`` is the SHA-256
  of the requirements file and the interpreter's version: a new pin makes a new environment,
  and an existing one is reused as it is. It is built in a temporary directory and renamed into
  place, so a directory that exists is complete;
- the interpreter is ``$TOOLFORGE_DEV_PYTHON313`` when set, else the first of
  ``python3.13`` on ``PATH`` and ``/root/.pyenv/versions/3.13.*/bin/python3.13`` (pyenv, as on
  these machines). uv is not asked to download one: these machines reach no Python builds.

The OpenAPI client generator (``openapi-python-client``, pinned in
``devtools/upstream/generator.txt``) gets an environment of its own the same way
(:func:`ensure_generator`): its own pins would otherwise move the workspace's (``typer``), and
the clients it generates need only ``httpx`` and ``attrs``, which it brings.

A tool's home is set up as on Toolforge (:func:`configure_tool_home`): onboarding made
``~/.toolskube/client.{crt,key}`` and ``~/.kube/config`` (whose current context's namespace,
``tool-<name>``, tells the clients the tool); the gateway URL goes to ``~/.toolforge.yaml`` as
``api_gateway: {url: ...}`` (what ``toolforge_weld.config.load_config`` reads, like
``/etc/toolforge/common.yaml`` on Toolforge) or to env ``TOOL_TOOLFORGE_API_URL``, which wins
over the files. ``toolforge_weld`` 1.6.15 presents the certificate and key named by the
kubeconfig (paths relative to ``~/.kube``) and does not verify the gateway's certificate (it
reads no CA from the kubeconfig), as on Toolforge.

:func:`run_upstream` runs one command in a clean environment (``HOME`` = the tool's home, no
``KUBECONFIG``, nothing of this repository's virtual environment) and returns the finished
process; the exit code and output are what tests assert.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from toolforge_dev.paths import REPO_ROOT, cache_dir
from toolforge_dev.web_manifests import NODE_PORT, PUBLIC_DOMAIN

#: ``toolforge-jobs``' ``publish_url_template`` here (upstream: ``https://{tool_name}.toolforge.org``).
PUBLISH_URL = f"http://{{tool_name}}.{PUBLIC_DOMAIN}:{NODE_PORT}"

__all__ = [
    "COMMANDS",
    "PINS",
    "REQUIREMENTS",
    "UpstreamClients",
    "UpstreamClientsError",
    "UpstreamResult",
    "configure_tool_home",
    "ensure_clients",
    "ensure_generator",
    "find_python313",
    "run_upstream",
]

Progress = Callable[[str], None]

#: The hash-pinned requirements of the clients.
REQUIREMENTS = REPO_ROOT / "devtools" / "upstream" / "requirements.txt"
#: The hash-pinned requirements of the OpenAPI client generator.
GENERATOR_REQUIREMENTS = REPO_ROOT / "devtools" / "upstream" / "generator.txt"
#: The packages users install, with the versions the tests hold us to.
PINS: dict[str, str] = {
    "toolforge-jobs-cli": "16.2.3",
    "toolforge-builds-cli": "0.0.29",
    "toolforge-envvars-cli": "0.0.16",
    "toolforge-logs-cli": "0.0.5",
}
#: The commands the pinned packages install.
COMMANDS = ("toolforge-jobs", "toolforge-build", "toolforge-envvars", "toolforge-logs")
_PYENV_GLOB = "/root/.pyenv/versions/3.13.*/bin/python3.13"


class UpstreamClientsError(Exception):
    """The clients' environment cannot be made: no Python 3.13, or uv failed (the message
    carries uv's output)."""


def find_python313() -> Path:
    """A working Python 3.13 interpreter (see the module documentation for the order; a
    candidate that does not run, such as a pyenv shim with no version selected, is skipped).

    Raises:
        UpstreamClientsError: none found.
    """
    override = os.environ.get("TOOLFORGE_DEV_PYTHON313")
    candidates = [override] if override else []
    on_path = shutil.which("python3.13")
    if on_path:
        candidates.append(on_path)
    candidates += sorted(glob.glob(_PYENV_GLOB), reverse=True)
    for candidate in candidates:
        path = Path(candidate)
        if path.is_file() and _python_version(path).startswith("3.13."):
            return path
    raise UpstreamClientsError(
        "the upstream clients need Python 3.13: none found (set TOOLFORGE_DEV_PYTHON313, put "
        f"python3.13 on PATH, or install it with pyenv so that {_PYENV_GLOB} exists)"
    )


def _python_version(python: Path) -> str:
    """``X.Y.Z`` of ``python``; ``""`` when it does not run."""
    try:
        out = subprocess.run(
            [str(python), "-c", "import sys; print(sys.version.split()[0])"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except OSError:
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


@dataclass(frozen=True)
class UpstreamClients:
    """An installed environment of the clients: ``bin/`` holds :data:`COMMANDS`."""

    root: Path

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    def command(self, name: str) -> Path:
        """The path of one of :data:`COMMANDS`.

        Raises:
            ValueError: ``name`` is not one of them.
        """
        if name not in COMMANDS:
            raise ValueError(f"{name!r} is not an upstream client command ({', '.join(COMMANDS)})")
        return self.bin_dir / name

    def is_complete(self) -> bool:
        return all(self.command(name).is_file() for name in COMMANDS)


def clients_dir(python: Path | None = None, requirements: Path = REQUIREMENTS) -> Path:
    """Where the environment for ``requirements`` and ``python`` lives (not created)."""
    interpreter = python or find_python313()
    key = hashlib.sha256(requirements.read_bytes())
    key.update(_python_version(interpreter).encode())
    kind = "upstream-clients" if requirements == REQUIREMENTS else requirements.stem
    return cache_dir() / kind / key.hexdigest()[:16]


def ensure_clients(progress: Progress = print) -> UpstreamClients:
    """The clients' environment, made first when missing (about 10 s with a warm uv cache).

    Raises:
        UpstreamClientsError: see the class.
    """
    pins = ", ".join(f"{name}=={version}" for name, version in PINS.items())
    root = _ensure_env(REQUIREMENTS, COMMANDS, f"the upstream clients ({pins})", progress)
    return UpstreamClients(root)


def ensure_generator(progress: Progress = print) -> Path:
    """The generator's environment (``bin/openapi-python-client``, ``bin/python`` with
    ``httpx`` and ``attrs``), made first when missing; returns its root.

    Raises:
        UpstreamClientsError: see the class.
    """
    return _ensure_env(
        GENERATOR_REQUIREMENTS, ("openapi-python-client",), "openapi-python-client", progress
    )


def _ensure_env(requirements: Path, commands: Sequence[str], what: str, progress: Progress) -> Path:
    python = find_python313()
    target = clients_dir(python, requirements)
    if all((target / "bin" / name).is_file() for name in commands):
        return target
    progress(f"installing {what} with {python} into {target}")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        # --relocatable: the scripts find their interpreter relative to themselves, so the
        # environment works after the rename into place
        _uv("venv", "--quiet", "--relocatable", "--python", str(python), str(staging))
        _uv(
            "pip",
            "install",
            "--quiet",
            "--require-hashes",
            "--python",
            str(staging / "bin" / "python"),
            "-r",
            str(requirements),
        )
        if target.exists():  # incomplete (checked above): replace it
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    missing = [name for name in commands if not (target / "bin" / name).is_file()]
    if missing:
        raise UpstreamClientsError(f"{target}: the install did not provide {', '.join(missing)}")
    return target


def _uv_argv() -> list[str]:
    """How to run uv: ``$UV`` (set by ``uv run``), ``uv`` on ``PATH``, else ``python3 -m uv``
    (the Makefile's way)."""
    found = os.environ.get("UV") or shutil.which("uv")
    return [found] if found else ["python3", "-m", "uv"]


def _uv(*args: str) -> None:
    proc = subprocess.run(
        [*_uv_argv(), *args], capture_output=True, text=True, check=False, timeout=600
    )
    if proc.returncode != 0:
        raise UpstreamClientsError(
            f"uv {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}"
        )


def configure_tool_home(
    home: Path, gateway_url: str, *, via: Literal["file", "env"] = "file"
) -> dict[str, str]:
    """Point the clients of the tool whose home is ``home`` at ``gateway_url``, as Toolforge
    does; returns the environment variables to add (``TOOL_TOOLFORGE_API_URL`` with
    ``via="env"``, else none: the URL is written to ``~/.toolforge.yaml`` as
    ``api_gateway: {url: ...}``, with ``jobs: {publish_url_template: ...}``, the form of a
    published job's URL that ``toolforge-jobs show`` prints: the local platform's
    ``http://<tool>.toolforge.local:30000``).

    Raises:
        FileNotFoundError: the home lacks ``~/.kube/config`` or ``~/.toolskube/client.crt``
            (the tool was not onboarded).
    """
    for needed in (home / ".kube" / "config", home / ".toolskube" / "client.crt"):
        if not needed.is_file():
            raise FileNotFoundError(f"{needed} is missing: onboard the tool first")
    config = home / ".toolforge.yaml"
    if via == "env":
        config.unlink(missing_ok=True)
        return {"TOOL_TOOLFORGE_API_URL": gateway_url}
    config.write_text(
        yaml.safe_dump(
            {"api_gateway": {"url": gateway_url}, "jobs": {"publish_url_template": PUBLISH_URL}}
        )
    )
    return {}


@dataclass(frozen=True)
class UpstreamResult:
    """A finished upstream command: ``argv``, ``returncode``, ``stdout``, ``stderr``.

    ``stderr_lines`` leaves out the one warning every client prints off Toolforge ("Unable to
    find project file '/etc/wmcs-project'"), which says nothing about our APIs.
    """

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def stderr_lines(self) -> list[str]:
        return [
            line
            for line in self.stderr.splitlines()
            if line.strip() and "/etc/wmcs-project" not in line
        ]

    def describe(self) -> str:
        """For assertion messages: the command, its exit code and its output."""
        return (
            f"$ {' '.join(self.argv)}\n-> exit {self.returncode}\n"
            f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}"
        )


def run_upstream(
    clients: UpstreamClients,
    command: str,
    args: Sequence[str],
    *,
    home: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    input_text: str | None = None,
    timeout: float = 300,
) -> UpstreamResult:
    """Run ``command args`` (one of :data:`COMMANDS`) as the tool whose home is ``home``.

    The environment is clean: ``PATH`` (the clients' ``bin`` first), ``HOME``, ``LANG``,
    ``TERM=dumb``, and ``env`` (e.g. from :func:`configure_tool_home`). Never raises for a
    non-zero exit.

    Raises:
        subprocess.TimeoutExpired: it ran longer than ``timeout`` seconds.
    """
    argv = [str(clients.command(command)), *args]
    environment = {
        "PATH": f"{clients.bin_dir}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        **(env or {}),
    }
    proc = subprocess.run(
        argv,
        env=environment,
        cwd=str(cwd or home),
        input=input_text,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return UpstreamResult([command, *args], proc.returncode, proc.stdout, proc.stderr)


def main() -> None:
    """``python -m toolforge_dev.upstream_clients``: make both environments (clients and
    generator), print their paths."""

    def progress(message: str) -> None:
        print(f"==> {message}", file=sys.stderr)

    print(ensure_clients(progress).root)
    print(ensure_generator(progress))


if __name__ == "__main__":
    main()
