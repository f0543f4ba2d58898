"""Several gateway processes on one port (``workers.py``), run as the real command: metrics
summed over workers (a killed and restarted one included), graceful drain after SIGTERM, and
a broken set-up that stops the whole gateway instead of restarting workers for ever."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml
from gateway.gateway_harness import Backends, GatewayPKI, refused_port
from gateway.gateway_process import GatewayProcess, gateway_command

DEADLINE = 30.0


def config(pki: GatewayPKI, backends: Backends, down: int, **extra: object) -> dict[str, object]:
    """Two workers on a port of their own choosing (see ``gateway_process``); route ``down``
    to the refusing port ``down``."""
    return {
        "host": "127.0.0.1",
        "workers": 2,
        "tls_cert_file": str(pki.path("gateway-server.crt")),
        "tls_key_file": str(pki.path("gateway-server.key")),
        "client_ca_files": [str(pki.path("cluster-ca.crt"))],
        "backend_client_cert_file": str(pki.path("gateway-backend-client.crt")),
        "backend_client_key_file": str(pki.path("gateway-backend-client.key")),
        "backend_ca_file": str(pki.path("backend-ca.crt")),
        "routes": {
            "jobs": {"url": backends.jobs.url},
            "down": {"url": f"https://127.0.0.1:{down}"},
        },
        "graceful_shutdown_seconds": 10,
        **extra,
    }


@contextmanager
def gateway_process(tmp_path: Path, settings: dict[str, object]) -> Iterator[GatewayProcess]:
    with GatewayProcess(tmp_path, settings) as process:
        yield process


def workers_of(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children]


async def wait_for(condition: object, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def ready(process: GatewayProcess, pki: GatewayPKI) -> int:
    """Until both workers run and the port answers; returns the port."""
    port = await asyncio.to_thread(process.port, DEADLINE)
    await wait_for(lambda: len(workers_of(process.pid)) == 2, "two workers")
    deadline = time.monotonic() + DEADLINE
    async with httpx.AsyncClient(verify=pki.client_context(pki.alice)) as client:
        while True:
            assert process.process.poll() is None, "the gateway exited"
            try:
                if (await client.get(f"https://127.0.0.1:{port}/healthz")).status_code == 200:
                    return port
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the gateway did not start"
            await asyncio.sleep(0.1)


def owner_of_connection(workers: list[int], server_port: int, client_port: int) -> int:
    """The worker whose socket serves the TCP connection ``client_port`` -> ``server_port``,
    found by socket inode in /proc/net/tcp and the workers' file descriptors."""
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        remote_port = int(fields[2].rsplit(":", 1)[1], 16)
        if (local_port, remote_port) == (server_port, client_port):
            inode = fields[9]
    assert inode is not None, "the connection is not in /proc/net/tcp"
    for pid in workers:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    raise AssertionError("no worker holds the connection")


def requests_total(metrics: str, route: str, status: int) -> float:
    prefix = f'toolforge_gateway_requests_total{{route="{route}",status="{status}"}} '
    for line in metrics.splitlines():
        if line.startswith(prefix):
            return float(line.removeprefix(prefix))
    return 0.0


async def test_metrics_are_summed_over_workers_dead_and_alive(
    gw_pki: GatewayPKI, backends: Backends, tmp_path: Path
) -> None:
    with (
        refused_port() as down,
        gateway_process(tmp_path, config(gw_pki, backends, down)) as process,
    ):
        port = await ready(process, gw_pki)
        before = workers_of(process.pid)
        # Three requests on one kept-alive connection, then its worker is killed.
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=gw_pki.client_context(gw_pki.alice), server_hostname="127.0.0.1"
        )
        for _ in range(3):
            writer.write(b"GET /down/v1/tool/alice/x HTTP/1.1\r\nHost: gw\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 503 ")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
        victim = owner_of_connection(before, port, writer.get_extra_info("sockname")[1])
        os.kill(victim, signal.SIGKILL)
        writer.close()
        # The supervisor starts another worker in its place.
        await wait_for(
            lambda: len(workers_of(process.pid)) == 2 and victim not in workers_of(process.pid),
            "a new worker",
        )
        async with httpx.AsyncClient(verify=gw_pki.client_context(gw_pki.alice)) as client:
            for _ in range(2):
                response = await client.get(f"https://127.0.0.1:{port}/down/v1/tool/alice/x")
                assert response.status_code == 503
            metrics = (await client.get(f"https://127.0.0.1:{port}/metrics")).text
        # The killed worker's three and the other workers' two.
        assert requests_total(metrics, "down", 503) == 5
        process.process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=DEADLINE) == -signal.SIGTERM


async def test_workers_drain_in_flight_requests_on_sigterm(
    gw_pki: GatewayPKI, backends: Backends, tmp_path: Path
) -> None:
    with (
        refused_port() as down,
        gateway_process(tmp_path, config(gw_pki, backends, down)) as process,
    ):
        port = await ready(process, gw_pki)
        workers = workers_of(process.pid)
        async with httpx.AsyncClient(
            verify=gw_pki.client_context(gw_pki.alice), timeout=DEADLINE
        ) as client:
            url = f"https://127.0.0.1:{port}/jobs/v1/tool/alice/slow?seconds=1"
            slow = asyncio.create_task(client.get(url))
            await asyncio.wait_for(backends.jobs.request_seen.wait(), timeout=DEADLINE)
            process.process.send_signal(signal.SIGTERM)
            # New connections are refused once every copy of the socket is closed.
            async with httpx.AsyncClient(verify=gw_pki.client_context(gw_pki.alice)) as late:

                async def refused() -> bool:
                    try:
                        await late.get(f"https://127.0.0.1:{port}/healthz")
                    except httpx.ConnectError:
                        return True
                    except (httpx.RemoteProtocolError, httpx.ReadError):
                        return False  # accepted just before the close, then closed unanswered
                    return False

                deadline = time.monotonic() + DEADLINE
                while not await refused():
                    assert time.monotonic() < deadline, "still accepting after SIGTERM"
                    await asyncio.sleep(0.05)
            response = await slow
        assert (response.status_code, response.json()) == (200, {"slept": "1.0"})
        assert await asyncio.to_thread(process.wait, DEADLINE) == -signal.SIGTERM
        for pid in workers:  # gone, and reaped by the supervisor
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)


def test_a_worker_that_cannot_start_stops_the_gateway(
    gw_pki: GatewayPKI, backends: Backends, tmp_path: Path
) -> None:
    """The backend CA is read by each worker at start-up: unreadable, every worker fails, and
    the supervisor gives up with status 1 instead of restarting them for ever."""
    broken = tmp_path / "not-a-ca.crt"
    broken.write_text("not a certificate\n")
    with refused_port() as down:
        settings = config(gw_pki, backends, down, backend_ca_file=str(broken))
        with gateway_process(tmp_path, settings) as process:
            assert process.wait(timeout=DEADLINE) == 1


@pytest.mark.parametrize("workers", [0, 65])
def test_worker_count_is_validated(tmp_path: Path, workers: int) -> None:
    config_file = tmp_path / "gateway.yaml"
    config_file.write_text(yaml.safe_dump({"workers": workers}))
    result = subprocess.run(
        [*gateway_command(), "--config", str(config_file)], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "workers" in result.stderr
