"""The logs API app over real TLS with the real store, called as the gateway calls it (no
cluster: its kubeconfig points at a closed port, which a read that finds lines never asks):
pages through ``next.url`` as the upstream clients resolve it, parameters refused with 400,
another tool's path 403, the write endpoint for ``service:jobs-api`` only, and a follow that
closes its store tail when the client goes away."""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest
import pytest_asyncio
import yaml

from tlsserver import serve
from toolforge_admin.pki import PlatformPKI
from toolforge_auth.tls import server_ssl_context
from toolforge_dev.logstore import LOGSTORE_USER, LogStore
from toolforge_logs.app import create_app
from toolforge_logs.settings import LogsSettings
from toolforge_logstore import LogQuery, LogStoreClient, NewLogEntry, StreamSelector

S = 1_000_000_000


@dataclass(frozen=True)
class Api:
    url: str
    pki: Path

    def client(self, dn: str) -> httpx.AsyncClient:
        """A client with the gateway's certificate forwarding identity ``dn``."""
        context = ssl.create_default_context(cafile=self.pki / "backend-ca.crt")
        context.load_cert_chain(
            self.pki / "gateway-backend-client.crt", self.pki / "gateway-backend-client.key"
        )
        return httpx.AsyncClient(
            base_url=self.url, verify=context, headers={"ssl-client-subject-dn": dn}, timeout=60
        )


def _dead_kubeconfig(directory: Path) -> Path:
    path = directory / "dead.kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {"token": "none"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return path


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def api(logstore: LogStore, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    work = tmp_path_factory.mktemp("logs-api")
    pki = PlatformPKI.ensure(work / "pki").directory
    settings = LogsSettings(
        tls_cert_file=pki / "logs-api-server.crt",
        tls_key_file=pki / "logs-api-server.key",
        backend_ca_file=pki / "backend-ca.crt",
        kubeconfig=_dead_kubeconfig(work),
        kube_timeout_seconds=2,
        logstore_url=logstore.url,
        logstore_username=LOGSTORE_USER,
        logstore_password_file=logstore.password_file,
        logstore_ca_file=logstore.ca_file,
        page_size=7,
        follow_delay_seconds=2,
    )
    context = server_ssl_context(
        certfile=settings.tls_cert_file,
        keyfile=settings.tls_key_file,
        client_ca_files=[settings.backend_ca_file],
        client_cert="optional",
    )
    async with serve(create_app(settings), context, timeout_graceful_shutdown=5) as url:
        yield Api(url, pki)


async def _write(logstore: LogStore, entries: list[NewLogEntry]) -> None:
    async with LogStoreClient(logstore.client_config()) as client:
        await client.insert(entries)


async def _pages(client: httpx.AsyncClient, url: str) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    current: str | None = url
    while current:
        reply = await client.get(current)
        assert reply.status_code == 200, reply.text
        data = reply.json()["data"]
        assert data["logs"] or data["next"] is None
        out.extend(data["logs"])
        current = urljoin(current, data["next"]["url"]) if data["next"] else None
    return out


async def _stored(logstore: LogStore, namespace: str, count: int) -> None:
    """Wait until the store has ``count`` lines of ``namespace`` (written a moment ago)."""
    deadline = time.monotonic() + 30
    async with LogStoreClient(logstore.client_config()) as client:
        while True:
            found = await client.query(LogQuery(StreamSelector(namespace), limit=count + 1))
            if len(found) >= count:
                return
            assert time.monotonic() < deadline, f"{len(found)} of {count} lines in 30 s"
            await asyncio.sleep(0.3)


pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_pages_through_next_url_and_the_wire_shape(api: Api, logstore: LogStore) -> None:
    tool = f"t{uuid.uuid4().hex[:8]}"
    t0 = time.time_ns() - 60 * S
    await _write(
        logstore,
        [
            NewLogEntry(t0 + i * 1000, f"m{i}", f"tool-{tool}", job="j", pod="j-1", container="job")
            for i in range(30)
        ],
    )
    await _stored(logstore, f"tool-{tool}", 30)
    async with api.client(f"CN={tool},O=toolforge") as client:
        base = f"/v1/tool/{tool}/job/j/logs"
        lines = await _pages(client, base)
        assert [line["message"] for line in lines] == [f"m{i}" for i in range(30)]
        assert lines[0] == {
            "datetime": lines[0]["datetime"],
            "pod": "j-1",
            "container": "job",
            "message": "m0",
            "source": "run-logs",
            "job_name": "j",
        }
        first = (await client.get(base + "?direction=newest_first&lines=10")).json()
        assert [line["message"] for line in first["data"]["logs"]] == [
            f"m{i}" for i in range(29, 22, -1)
        ]
        assert re.fullmatch(
            r"\?cursor=\d+\.1&direction=newest_first&lines=3&since=\S+&until=\S+",
            first["data"]["next"]["url"],
        )
        last = await _pages(client, base + "?direction=newest_first&lines=10")
        assert [line["message"] for line in last] == [f"m{i}" for i in range(29, 19, -1)]
        # the tool-wide route, the same lines
        everything = await _pages(client, f"/v1/tool/{tool}/logs/?job_names=j&sources=run-logs")
        assert [line["message"] for line in everything] == [f"m{i}" for i in range(30)]


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("since=yesterday", "since"),
        ("until=1x", "until"),
        ("direction=up", "direction"),
        ("cursor=1.2.3", "cursor"),
        ("since=1h&until=2h", "since"),
        ("lines=0", "lines"),
        ("lines=1000001", "lines"),
    ],
)
async def test_bad_parameters_are_400_naming_them(api: Api, query: str, names: str) -> None:
    async with api.client("CN=alice,O=toolforge") as client:
        reply = await client.get(f"/v1/tool/alice/job/j/logs?{query}")
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"][0].startswith(names)


async def test_another_tools_path_and_service_identities_are_refused(api: Api) -> None:
    async with (
        api.client("CN=alice,O=toolforge") as alice,
        api.client("CN=service:jobs-api,O=toolforge") as jobs_api,
    ):
        assert (await alice.get("/v1/tool/bob/job/j/logs")).status_code == 403
        assert (await alice.get("/v1/tool/bob/logs")).status_code == 403
        assert (await jobs_api.get("/v1/tool/alice/logs")).status_code == 403


async def test_job_events_are_written_by_the_jobs_api_identity_only(
    api: Api, logstore: LogStore
) -> None:
    tool = f"t{uuid.uuid4().hex[:8]}"
    path = f"/v1/tool/{tool}/source/jobs-api/log"
    event = {"job_name": "web", "event_type": "restarted", "user_name": tool}
    async with (
        api.client("CN=service:jobs-api,O=toolforge") as jobs_api,
        api.client("CN=service:other,O=toolforge") as other,
        api.client(f"CN={tool},O=toolforge") as owner,
    ):
        assert (await other.post(path, json=event)).status_code == 403
        assert (await owner.post(path, json=event)).status_code == 403
        assert (
            await jobs_api.post(path, json={**event, "event_type": "exploded"})
        ).status_code == 422
        reply = await jobs_api.post(path, json=event)
        assert reply.status_code == 201, reply.text
        await _stored(logstore, f"tool-{tool}/jobs-api", 1)
        events = await _pages(owner, f"/v1/tool/{tool}/logs?sources=jobs")
        assert [(e["source"], e["event_type"], e["job_name"]) for e in events] == [
            ("jobs", "restarted", "web")
        ]
        assert await _pages(owner, f"/v1/tool/{tool}/logs?sources=run-logs") == []


async def _tails_open(api: Api) -> float:
    async with api.client("CN=alice,O=toolforge") as client:
        text = (await client.get("/metrics")).text
    match = re.search(r"^toolforge_logs_store_tails_open (\S+)$", text, re.M)
    assert match, text
    return float(match.group(1))


async def test_a_follow_closes_its_store_tail_when_the_client_goes_away(
    api: Api, logstore: LogStore
) -> None:
    tool = f"t{uuid.uuid4().hex[:8]}"
    namespace = f"tool-{tool}"
    await _write(
        logstore,
        [NewLogEntry(time.time_ns() - 30 * S, "old", namespace, job="j", pod="p", container="job")],
    )
    await _stored(logstore, namespace, 1)
    async with api.client(f"CN={tool},O=toolforge") as client:
        before = await _tails_open(api)

        async def printer() -> None:
            for i in range(100):
                await _write(
                    logstore,
                    [
                        NewLogEntry(
                            time.time_ns(), f"new {i}", namespace, job="j", pod="p", container="job"
                        )
                    ],
                )
                await asyncio.sleep(0.3)

        writing = asyncio.create_task(printer())
        seen: list[str] = []
        try:
            async with client.stream("GET", f"/v1/tool/{tool}/job/j/logs_stream?lines=5") as reply:
                assert reply.status_code == 200
                lines = reply.aiter_lines()  # kept referenced (see test_logs_api_cluster.py)
                async with asyncio.timeout(30):
                    async for raw in lines:
                        seen.append(json.loads(raw)["message"])
                        if len(seen) >= 4:
                            break
                assert await _tails_open(api) == before + 1
        finally:
            writing.cancel()
    assert seen[0] == "old"
    assert seen[1:] == [f"new {i}" for i in range(3)]
    deadline = time.monotonic() + 10
    while await _tails_open(api) != before:
        assert time.monotonic() < deadline, "the store tail stayed open"
        await asyncio.sleep(0.2)
