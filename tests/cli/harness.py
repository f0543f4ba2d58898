"""Test harness for the ``toolforge`` CLI tests: certificates and a tool home on disk, a way to
run the CLI, and a TLS server standing in for the jobs API.

Used by ``conftest.py`` (the fixtures) and the test modules; imported as ``cli.harness``
(``tests/`` is on the import path for pytest and mypy).

:class:`JobsApiDouble` STANDS IN FOR THE JOBS API (behind the gateway) UNTIL IT EXISTS: the lead
replaces the tests that use it by end-to-end tests against the real gateway and jobs API.
"""

# No "from __future__ import annotations": FastAPI inspects the handlers' annotations.
import asyncio
import base64
import json
import os
import shutil
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError
from typer.testing import CliRunner, Result

from certs import AuthPKI, Pair
from tlsserver import serve
from toolforge_admin.pki import PlatformPKI
from toolforge_auth.tls import peer_certificate, server_ssl_context
from toolforge_cli.__main__ import app
from toolforge_jobs.models import Job, JobSpec, JobStatus, specs_equal, validation_messages


@dataclass(frozen=True)
class CliPKI:
    auth: AuthPKI
    alice: Pair
    bob: Pair
    admin: Pair
    service: Pair
    expired_alice: Pair

    @property
    def cluster_ca_file(self) -> Path:
        return self.auth.path("cluster-ca.crt")


def write_kubeconfig(path: Path, cluster: Mapping[str, Any], *, current: str = "toolforge") -> None:
    """A kubeconfig like the one onboarding writes, with ``cluster`` as the cluster entry."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "toolforge", "cluster": dict(cluster)}],
        "users": [
            {
                "name": "tf-alice",
                "user": {
                    "client-certificate": "../.toolskube/client.crt",
                    "client-key": "../.toolskube/client.key",
                },
            }
        ],
        "contexts": [
            {
                "name": "toolforge",
                "context": {"cluster": "toolforge", "user": "tf-alice", "namespace": "tool-alice"},
            }
        ],
        "current-context": current,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


@dataclass(frozen=True)
class Home:
    """A tool's home directory as onboarding leaves it."""

    path: Path

    @property
    def cert(self) -> Path:
        return self.path / ".toolskube" / "client.crt"

    @property
    def key(self) -> Path:
        return self.path / ".toolskube" / "client.key"

    @property
    def kubeconfig(self) -> Path:
        return self.path / ".kube" / "config"


def clean_env(home: Home, **extra: str) -> dict[str, str | None]:
    """Environment for a CLI run as the tool of ``home``: HOME set, every TOOLFORGE_* and
    KUBECONFIG of the developer's shell removed, ``extra`` added."""
    env: dict[str, str | None] = {
        k: None for k in os.environ if k.startswith("TOOLFORGE_") or k == "KUBECONFIG"
    }
    env["HOME"] = str(home.path)
    env.update(extra)
    return env


def run_cli(args: list[str], env: Mapping[str, str | None]) -> Result:
    """Run ``toolforge <args>`` in this process with Typer's CliRunner (stdout and stderr
    apart)."""
    return CliRunner().invoke(app, args, env=dict(env), catch_exceptions=False)


# -- the jobs API test double ---------------------------------------------------------------


@dataclass
class Recorded:
    """One request as the double received it."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    client_cn: str | None


@dataclass
class JobsApiDouble:
    """Stands in for the jobs API behind the gateway until it exists.

    Shapes follow REFERENCE.md ("Jobs API (v1)") and the jobs API's own pydantic models
    (``toolforge_jobs.models``): request bodies are validated and normalised with ``JobSpec``
    (400 with field-naming messages otherwise), returned jobs are ``Job`` dumps. Like the
    gateway, it requires a client certificate from the cluster CA and answers 403 when the
    tool in the path is not the certificate's CN. Every request is recorded.

    Test knobs: ``statuses[name]`` is a list of ``status.short`` values returned by successive
    GETs of that job (the last one sticks); ``forced[(method, path)]`` answers ``(status,
    body)`` instead of the handler; ``log_entries`` are the log lines; with ``follow=true``
    ``follow_extra`` more lines come every 50 ms, then the stream ends (``None``: never).
    """

    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    statuses: dict[str, list[str]] = field(default_factory=dict)
    forced: dict[tuple[str, str], tuple[int, Any]] = field(default_factory=dict)
    log_entries: list[dict[str, str]] = field(default_factory=list)
    follow_extra: int | None = 0
    images: list[dict[str, str]] = field(
        default_factory=lambda: [
            {"shortname": "bookworm", "image": "registry.local/toolforge/bookworm:stable"},
            {"shortname": "python3.11", "image": "registry.local/toolforge/python3.11:stable"},
        ]
    )

    def requests_to(self, method: str, suffix: str = "") -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path.endswith(suffix)]

    def add_job(self, body: dict[str, Any], short: str = "running") -> dict[str, Any]:
        """Store a job as if POSTed; returns it as the API returns it."""
        spec = JobSpec.model_validate(body)
        self.jobs[spec.name] = spec.model_dump(mode="json")
        return self.render(spec.name, short)

    def render(self, name: str, short: str | None = None) -> dict[str, Any]:
        spec = JobSpec.model_validate(self.jobs[name])
        if short is None:
            plan = self.statuses.get(name) or ["running"]
            short = plan.pop(0) if len(plan) > 1 else plan[0]
        legacy = {"running": "Running", "succeeded": "Completed", "failed": "Failed"}
        image = next(
            (i["image"] for i in self.images if i["shortname"] == spec.imagename), "unknown"
        )
        job = Job.from_spec(
            spec,
            image=image,
            status=JobStatus.model_validate(
                {"short": short, "messages": ["exit code 1"] if short == "failed" else []}
            ),
            status_short=legacy.get(short, short.capitalize()),
            status_long=f"{legacy.get(short, short)} (test double)",
            schedule_actual=spec.schedule,
        )
        return job.model_dump(mode="json")

    def build_app(self) -> FastAPI:
        app = FastAPI()
        base = "/jobs/v1/tool/{tool}"

        def envelope(*errors: str, info: list[str] | None = None) -> dict[str, Any]:
            return {"messages": {"info": info or [], "warning": [], "error": list(errors)}}

        def error(status: int, *errors: str) -> JSONResponse:
            return JSONResponse(envelope(*errors), status_code=status)

        @app.middleware("http")
        async def gate(request: Request, call_next: Any) -> Response:
            raw = await request.body()
            cert = peer_certificate(request.scope)
            cn = None
            if cert is not None:
                cn = str(cert.subject.rfc4514_string()).split(",")[0].removeprefix("CN=")
            self.requests.append(
                Recorded(
                    request.method,
                    request.url.path,
                    dict(request.query_params),
                    json.loads(raw) if raw else None,
                    cn,
                )
            )
            parts = request.url.path.split("/")
            if len(parts) > 4 and parts[1:3] == ["jobs", "v1"] and parts[4] != cn:
                return error(403, f"tool {parts[4]!r} does not match the certificate ({cn})")
            forced = self.forced.get((request.method, request.url.path))
            if forced is not None:
                status, body = forced
                if isinstance(body, str | bytes):
                    return Response(body, status_code=status)
                return JSONResponse(body, status_code=status)
            response: Response = await call_next(request)
            return response

        def spec_from(body: Any) -> JobSpec | JSONResponse:
            try:
                return JobSpec.model_validate(body)
            except ValidationError as exc:
                return error(400, *validation_messages(exc))

        @app.get(base + "/jobs")
        async def list_jobs(tool: str) -> Any:
            return {"jobs": [self.render(n) for n in sorted(self.jobs)], **envelope()}

        @app.post(base + "/jobs", status_code=201)
        async def create(tool: str, request: Request) -> Any:
            spec = spec_from(await request.json())
            if isinstance(spec, JSONResponse):
                return spec
            if spec.name in self.jobs:
                return error(409, f"A job with the name {spec.name} exists already")
            self.jobs[spec.name] = spec.model_dump(mode="json")
            return {"job": self.render(spec.name), **envelope(info=[f"Job {spec.name} created"])}

        @app.patch(base + "/jobs")
        async def upsert(tool: str, request: Request) -> Any:
            spec = spec_from(await request.json())
            if isinstance(spec, JSONResponse):
                return spec
            old = self.jobs.get(spec.name)
            if old is not None and specs_equal(JobSpec.model_validate(old), spec):
                return {"job_changed": False, **envelope(info=["already up to date"])}
            self.jobs[spec.name] = spec.model_dump(mode="json")
            word = "updated" if old is not None else "created"
            return {"job_changed": True, **envelope(info=[f"Job {spec.name} {word}"])}

        @app.delete(base + "/jobs")
        async def flush(tool: str) -> Any:
            self.jobs.clear()
            return envelope(info=["All jobs deleted"])

        @app.get(base + "/jobs/{name}")
        async def show(tool: str, name: str) -> Any:
            if name not in self.jobs:
                return error(404, f"Job '{name}' does not exist")
            return {"job": self.render(name), **envelope()}

        @app.delete(base + "/jobs/{name}")
        async def delete(tool: str, name: str) -> Any:
            if self.jobs.pop(name, None) is None:
                return error(404, f"Job '{name}' does not exist")
            return envelope(info=[f"Job {name} deleted"])

        @app.post(base + "/jobs/{name}/restart")
        async def restart(tool: str, name: str) -> Any:
            if name not in self.jobs:
                return error(404, f"Job '{name}' does not exist")
            if self.jobs[name]["job_type"] == "one-off":
                return error(400, "one-off jobs cannot be restarted")
            return envelope(info=[f"Job {name} restarted"])

        @app.get(base + "/jobs/{name}/logs")
        async def logs(tool: str, name: str, follow: bool = False, lines: int | None = None) -> Any:
            if name not in self.jobs:
                return error(404, f"Job '{name}' does not exist")
            entries = self.log_entries[-lines:] if lines else list(self.log_entries)

            async def stream() -> AsyncIterator[bytes]:
                for entry in entries:
                    yield (json.dumps(entry) + "\n").encode()
                n = 0
                while follow and (self.follow_extra is None or n < self.follow_extra):
                    await asyncio.sleep(0.05)
                    n += 1
                    entry = {
                        "pod": f"{name}-0",
                        "container": "job",
                        "datetime": "2026-01-01T00:00:00Z",
                        "message": f"more {n}",
                    }
                    yield (json.dumps(entry) + "\n").encode()

            return StreamingResponse(stream(), media_type="application/x-ndjson")

        @app.get(base + "/images")
        async def images(tool: str) -> Any:
            return {"images": self.images, **envelope()}

        @app.get(base + "/quotas")
        async def quotas(tool: str) -> Any:
            return {
                "quota": {
                    "categories": [
                        {
                            "name": "Running jobs",
                            "items": [
                                {"name": "CPU", "limit": "2", "used": "500m"},
                                {"name": "Memory", "limit": "4Gi", "used": "1Gi"},
                            ],
                        },
                        {
                            "name": "Per-job limits",
                            "items": [{"name": "CPU", "limit": "1", "used": None}],
                        },
                    ]
                },
                **envelope(),
            }

        return app


@dataclass
class RunningDouble:
    double: JobsApiDouble
    url: str


def make_cli_pki(directory: Path) -> CliPKI:
    """The platform PKI in ``directory`` plus the client certificates of :class:`CliPKI`."""
    auth = AuthPKI(directory, PlatformPKI.ensure(directory))
    cluster = auth.platform.cluster_ca
    return CliPKI(
        auth=auth,
        alice=auth.client(cluster, "alice", "alice", ["toolforge"]),
        bob=auth.client(cluster, "bob", "bob", ["toolforge"]),
        admin=auth.client(cluster, "admin", "kubernetes-admin", ["system:masters"]),
        service=auth.client(cluster, "service", "service:builder", ["toolforge"]),
        expired_alice=auth.expired_client(cluster, "expired-alice", "alice"),
    )


def make_home(path: Path, pki: CliPKI) -> Home:
    """alice's home at ``path``: her certificate and key, and a kubeconfig with the cluster
    CA inline (as onboarding writes them)."""
    result = Home(path)
    result.cert.parent.mkdir(parents=True)
    shutil.copy(pki.alice.cert, result.cert)
    shutil.copy(pki.alice.key, result.key)
    ca_data = base64.b64encode(pki.cluster_ca_file.read_bytes()).decode()
    write_kubeconfig(
        result.kubeconfig,
        {"server": "https://10.244.0.1:6443", "certificate-authority-data": ca_data},
    )
    return result


@contextmanager
def serve_double(pki: CliPKI) -> Iterator[RunningDouble]:
    """A fresh :class:`JobsApiDouble` over mTLS (client certificates from the cluster CA
    required, server certificate for 127.0.0.1 from the cluster CA, like the gateway's), in a
    background thread with its own event loop, so that the CLI can run in the caller's thread.
    """
    double = JobsApiDouble()
    context = server_ssl_context(
        certfile=pki.auth.path("gateway-server.crt"),
        keyfile=pki.auth.path("gateway-server.key"),
        client_ca_files=[pki.cluster_ca_file],
        client_cert="required",
    )
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    started = threading.Event()
    holder: dict[str, Any] = {}

    async def main() -> None:
        try:
            async with serve(double.build_app(), context, timeout_graceful_shutdown=2) as url:
                holder["url"] = url
                started.set()
                await stop.wait()
        except BaseException as exc:
            holder["error"] = exc
            started.set()
            raise

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    if not started.wait(20):
        raise RuntimeError("the jobs API double did not start")
    if "error" in holder:
        raise holder["error"]
    try:
        yield RunningDouble(double, holder["url"])
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(20)
        loop.close()
