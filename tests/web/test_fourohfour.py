"""fourohfour, the Gateway's default backend: content negotiation, the tool named by the host,
escaping, and the real server (``python3 -m toolforge_fourohfour``) on a loopback socket."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from toolforge_fourohfour.app import MAX_SHOWN, prefers_json, tool_of

DOMAIN = "toolforge.local"


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, False),
        ("", False),
        ("*/*", False),
        ("application/json", True),
        ("application/json, text/plain;q=0.5", True),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", False),
        ("application/json;q=0.5, text/html", False),
        ("text/html;q=0.2, application/json", True),
        ("application/*", True),
        ("text/*;q=0.9, application/json;q=0.8", False),
        ("application/json;q=0", False),
        ("APPLICATION/JSON", True),
        ("application/json;q=nonsense, */*;q=0.1", False),
        ("application/json, text/html", False),  # a tie gives the page
    ],
)
def test_prefers_json(accept: str | None, expected: bool) -> None:
    assert prefers_json(accept) is expected


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("mytool.toolforge.local", "mytool"),
        ("MyTool.Toolforge.Local:30000", "mytool"),
        ("a-b.toolforge.local", "a-b"),
        ("toolforge.local", None),
        ("x.y.toolforge.local", None),
        ("mytool.toolforge.local.evil.org", None),
        ("mytool.other.local", None),
        ("-bad.toolforge.local", None),
        ("[::1]:30000", None),
        ("", None),
    ],
)
def test_tool_of(host: str, expected: str | None) -> None:
    assert tool_of(host, DOMAIN) == expected


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: Starts tried when the port picked was taken before the server bound it.
_ATTEMPTS = 5


def _start(port: int) -> subprocess.Popen[bytes] | None:
    """The server listening on ``port``, once it says so (uvicorn's ``Uvicorn running on``
    comes after its bind); ``None`` when it exited because something else took the port
    between :func:`_free_port` and its bind (its output says so); any other exit fails the
    test."""
    env = {
        **os.environ,
        "TOOLFORGE_FOUROHFOUR_DOMAIN": DOMAIN,
        "TOOLFORGE_FOUROHFOUR_HOST": "127.0.0.1",
        "TOOLFORGE_FOUROHFOUR_PORT": str(port),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "toolforge_fourohfour"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    output = b""
    deadline = time.monotonic() + 20
    while b"Uvicorn running on" not in output:
        left = deadline - time.monotonic()
        assert left > 0, f"fourohfour did not listen within 20 s: {output.decode()}"
        readable, _, _ = select.select([proc.stdout], [], [], left)
        if not readable:
            continue
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:  # it exited
            proc.wait()
            if b"address already in use" in output:
                return None
            raise AssertionError(output.decode())
        output += chunk
    return proc


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """The real server as a subprocess, on a free loopback port.

    Its settings want a port (1-65535), so the port is picked here and may be taken by another
    process before the server binds it: then the server exits saying so and is started again
    on another port (at most :data:`_ATTEMPTS` times); any other failure fails at once."""
    for _ in range(_ATTEMPTS):
        port = _free_port()
        proc = _start(port)
        if proc is not None:
            break
    else:
        raise AssertionError(f"the port was taken {_ATTEMPTS} times in a row")
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)


def test_browser_gets_the_html_page_naming_the_tool(server: str) -> None:
    r = httpx.get(
        f"{server}/some/page",
        headers={"Host": "mytool.toolforge.local", "Accept": "text/html,*/*;q=0.8"},
    )
    assert r.status_code == 404
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["cache-control"] == "no-cache"
    assert r.headers["vary"] == "Accept"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "server" not in r.headers
    assert r.text.startswith("<!DOCTYPE html>")
    assert "tool &#x27;mytool&#x27;" in r.text
    assert "mytool.toolforge.local/some/page" in r.text
    assert "--publish /" in r.text


def test_json_for_accept_application_json(server: str) -> None:
    r = httpx.post(
        f"{server}/api/v1?x=1",
        headers={"Host": "mytool.toolforge.local:30000", "Accept": "application/json"},
        content=b"ignored",
    )
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["error"] == "not_found"
    assert body["tool"] == "mytool"
    assert body["host"] == "mytool.toolforge.local:30000"
    assert body["path"] == "/api/v1"
    assert "mytool" in body["message"]


def test_unknown_domain_has_no_tool(server: str) -> None:
    r = httpx.get(server, headers={"Host": "example.org", "Accept": "application/json"})
    assert r.status_code == 404
    assert r.json()["tool"] is None
    assert r.json()["message"] == "There is no tool at example.org/."
    page = httpx.get(server, headers={"Host": "example.org"})
    assert "--publish" not in page.text


def test_host_and_path_are_escaped_and_shortened(server: str) -> None:
    r = httpx.get(
        f"{server}/%3Cscript%3Ealert(1)%3C/script%3E" + "a" * 400,
        headers={"Host": "mytool.toolforge.local"},
    )
    assert r.status_code == 404
    assert "<script>" not in r.text
    assert "&lt;script&gt;" in r.text
    assert "a" * 400 not in r.text
    assert "aaa...:" in r.text  # host + path shortened to MAX_SHOWN characters
    j = httpx.get(
        f"{server}/" + "b" * 400, headers={"Host": "x.org", "Accept": "application/json"}
    ).json()
    assert len(j["path"]) == MAX_SHOWN
    assert j["path"].endswith("...")


def test_head_has_headers_and_no_body(server: str) -> None:
    get = httpx.get(server, headers={"Host": "mytool.toolforge.local"})
    head = httpx.head(server, headers={"Host": "mytool.toolforge.local"})
    assert head.status_code == 404
    assert head.content == b""
    assert head.headers["content-length"] == str(len(get.content))


def test_keep_alive_connection_serves_many(server: str) -> None:
    with httpx.Client(headers={"Host": "t.toolforge.local", "Accept": "application/json"}) as c:
        bodies = [c.get(f"{server}/{i}").json()["path"] for i in range(20)]
    assert bodies == [f"/{i}" for i in range(20)]


def test_missing_domain_exits_2() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLFORGE_FOUROHFOUR_")}
    proc = subprocess.run(
        [sys.executable, "-m", "toolforge_fourohfour"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "domain" in proc.stderr


def test_bad_domain_exits_2() -> None:
    env = {**os.environ, "TOOLFORGE_FOUROHFOUR_DOMAIN": "not a domain"}
    proc = subprocess.run(
        [sys.executable, "-m", "toolforge_fourohfour"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert json.dumps("not a domain")[1:-1] in proc.stderr
