"""A small Python app for the build service: what the demo, the tests and the benchmark build.

:func:`write_sample_app` writes into a directory::

    Procfile           hello: python3 app.py   (and web: a tiny HTTP server on $PORT)
    app.py             prints greeting.greet(<argv[1] or "Toolforge">)
    requirements.txt   greeting==1.0
    <wheels_dir>/greeting-1.0-py3-none-any.whl

:func:`write_blocking_app` writes an app whose build never finishes by itself: its
requirement ``./slowpkg`` is a local project with an in-tree PEP 517 build backend (allowed
offline: ``requires = []``) whose ``build_wheel`` sleeps for an hour, so a build of it stays in
its ``build`` step until it is cancelled or times out.

``greeting`` is a pure-Python wheel made here (:func:`greeting_wheel`, PEP 427 layout with a
RECORD of sha256 hashes), because builds have no network: the Python buildpack installs
requirements from the app's ``wheels/`` only. With ``wheels_dir="vendor"`` the build finds it
only when the build variable ``PIP_FIND_LINKS`` points there.
"""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from pathlib import Path

__all__ = ["GREETING", "greeting_wheel", "write_blocking_app", "write_sample_app"]

#: What ``launcher hello`` prints for the sample app.
GREETING = "Hello, Toolforge! (greeting 1.0 from a vendored wheel)"
WHEEL_NAME = "greeting-1.0-py3-none-any.whl"

_MODULE = '''"""Greetings."""


def greet(name: str) -> str:
    return f"Hello, {name}! (greeting 1.0 from a vendored wheel)"
'''
_APP = '''"""The sample app: prints a greeting from the vendored wheel."""

import sys

from greeting import greet

print(greet(sys.argv[1] if len(sys.argv) > 1 else "Toolforge"), flush=True)
'''
_PROCFILE = """hello: python3 app.py
web: python3 -m http.server --bind 0.0.0.0 "${PORT:-8000}"
"""


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def greeting_wheel() -> bytes:
    """The ``greeting`` 1.0 wheel (py3-none-any), deterministic bytes."""
    files = {
        "greeting/__init__.py": _MODULE.encode(),
        "greeting-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: greeting\nVersion: 1.0\n",
        "greeting-1.0.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: toolforge-dev\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n"
        ),
    }
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in files.items())
    files["greeting-1.0.dist-info/RECORD"] = (record + "greeting-1.0.dist-info/RECORD,,\n").encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            wheel.writestr(info, data)
    return out.getvalue()


def write_sample_app(directory: Path, *, wheels_dir: str = "wheels") -> Path:
    """Write the sample app into ``directory`` (made if missing); returns ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "Procfile").write_text(_PROCFILE)
    (directory / "app.py").write_text(_APP)
    (directory / "requirements.txt").write_text("greeting==1.0\n")
    wheels = directory / wheels_dir
    wheels.mkdir(exist_ok=True)
    (wheels / WHEEL_NAME).write_bytes(greeting_wheel())
    return directory


_SLOW_BACKEND = '''"""A PEP 517 build backend that never finishes building (for cancel tests)."""

import time


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    print("slowpkg: building (this takes an hour)", flush=True)
    time.sleep(3600)
    raise RuntimeError("slowpkg: gave up")
'''


def write_blocking_app(directory: Path) -> Path:
    """Write the app whose build blocks in pip (see the module docstring); returns it."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "Procfile").write_text("hello: python3 -c 'print(1)'\n")
    (directory / "requirements.txt").write_text("./slowpkg\n")
    package = directory / "slowpkg"
    package.mkdir(exist_ok=True)
    (package / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n\n'
        '[project]\nname = "slowpkg"\nversion = "1.0"\n'
    )
    (package / "backend.py").write_text(_SLOW_BACKEND)
    return directory
