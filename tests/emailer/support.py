"""Helpers of the emailer's cluster tests: the platform's emailer (a host process), its live
ConfigMap, its state ConfigMap, its metrics, Mailpit's API, and jobs created through the
gateway as a tool. Every wait polls a condition with a deadline."""

from __future__ import annotations

import asyncio
import base64
import json
import shlex
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families

from toolforge_dev import binaries
from toolforge_dev import emailer as local_emailer
from toolforge_dev.cluster import Cluster
from toolforge_dev.mailpit import Mailpit, platform_mailpit
from toolforge_dev.pytest_plugin import Tool
from toolforge_dev.services import GATEWAY_PORT
from toolforge_emailer.state import EmailerState, decode

T = TypeVar("T")


async def wait_for(
    what: str, check: Callable[[], Awaitable[T | None]], timeout: float = 120, every: float = 0.5
) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(every)


@dataclass
class Platform:
    """The local platform's emailer and Mailpit, seen from a test."""

    cluster: Cluster

    @property
    def mailpit(self) -> Mailpit:
        return platform_mailpit(self.cluster)

    def kubectl(self, *args: str, input_text: str | None = None) -> str:
        return self.cluster.kubectl(binaries.Binaries.from_cache(), *args, input_text=input_text)

    # ----- the emailer's objects and metrics ----------------------------------------------

    def config_data(self) -> dict[str, str]:
        out = self.kubectl(
            "-n",
            local_emailer.NAMESPACE,
            "get",
            "configmap",
            local_emailer.CONFIG_MAP,
            "-o",
            "json",
        )
        data: dict[str, str] = json.loads(out).get("data") or {}
        return data

    async def set_config(self, wait: bool = True, **values: str) -> str:
        """Merge ``values`` into the live ConfigMap; with ``wait``, until the emailer applied
        that version (its ``config_resource_version`` metric). Returns the version."""
        patch = json.dumps({"data": values})
        out = self.kubectl(
            "-n", local_emailer.NAMESPACE, "patch", "configmap", local_emailer.CONFIG_MAP,
            "--type", "merge", "-p", patch, "-o", "jsonpath={.metadata.resourceVersion}",
        )  # fmt: skip
        if wait:
            await wait_for(
                f"the emailer to apply configuration {out}",
                lambda: self._applied(out),
                timeout=60,
            )
        return out

    async def replace_config(self, data: dict[str, str]) -> None:
        """Put the ConfigMap's data back to ``data`` exactly and wait until it is applied."""
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": local_emailer.CONFIG_MAP, "namespace": local_emailer.NAMESPACE},
            "data": data,
        }
        self.kubectl("replace", "-f", "-", input_text=json.dumps(body))
        rv = self.kubectl(
            "-n", local_emailer.NAMESPACE, "get", "configmap", local_emailer.CONFIG_MAP,
            "-o", "jsonpath={.metadata.resourceVersion}",
        )  # fmt: skip
        await wait_for("the original configuration", lambda: self._applied(rv), timeout=60)

    async def _applied(self, rv: str) -> bool:
        return await self.metric("toolforge_emailer_config_resource_version") == float(rv)

    def state(self) -> EmailerState:
        out = self.kubectl(
            "-n", local_emailer.NAMESPACE, "get", "configmap", local_emailer.STATE_CONFIG_MAP,
            "-o", "json",
        )  # fmt: skip
        encoded = (json.loads(out).get("binaryData") or {}).get("state.json.gz")
        return decode(base64.b64decode(encoded)) if encoded else EmailerState()

    async def pending(self, tool: str) -> list[str]:
        """``<job>:<kind>`` of the events pending for ``tool`` in the stored state."""
        state = await asyncio.to_thread(self.state)
        pending = state.pending.get(tool)
        return [f"{e.job}:{e.kind}" for e in pending.events] if pending else []

    async def metric(self, name: str, **labels: str) -> float:
        """A sample of the emailer's ``/metrics`` (0 when the labelled child is absent)."""
        pki = self.cluster.pki_dir
        context = ssl.create_default_context(cafile=pki / "backend-ca.crt")
        url = f"https://localhost:{local_emailer.EMAILER_PORT}/metrics"
        async with httpx.AsyncClient(verify=context, timeout=10) as client:
            text = (await client.get(url)).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return float(sample.value)
        return 0.0

    def emailer_log(self) -> str:
        return self.cluster.log_path("emailer").read_text(errors="replace")

    # ----- Mailpit ------------------------------------------------------------------------

    async def mails_to(self, address: str) -> list[dict[str, Any]]:
        """Every message to ``address``, oldest first, with its text (Mailpit's API)."""
        base = self.mailpit.url
        async with httpx.AsyncClient(timeout=10) as client:
            found = (
                await client.get(f"{base}/api/v1/search", params={"query": f'to:"{address}"'})
            ).json()
            messages = []
            for summary in sorted(found["messages"], key=lambda m: m["Created"]):
                messages.append((await client.get(f"{base}/api/v1/message/{summary['ID']}")).json())
        return messages

    async def wait_mails(
        self, address: str, count: int, timeout: float = 120
    ) -> list[dict[str, Any]]:
        """Wait until at least ``count`` messages went to ``address``; returns them all."""

        async def enough() -> list[dict[str, Any]] | None:
            found = await self.mails_to(address)
            return found if len(found) >= count else None

        return await wait_for(f"{count} mail(s) to {address}", enough, timeout=timeout)

    def chaos(self, code: int, probability: int) -> None:
        """Mailpit's chaos: answer RCPT TO with ``code``, ``probability`` percent of the time."""
        reply = httpx.put(
            f"{self.mailpit.url}/api/v1/chaos",
            json={"Recipient": {"ErrorCode": code, "Probability": probability}},
            timeout=5,
        )
        assert reply.status_code == 200, reply.text


def sh(script: str) -> str:
    """A job command that runs ``script`` with ``sh -c`` whatever the jobs API does with the
    command (split shell-style without filelog, or under ``/bin/sh -c``)."""
    return f"sh -c {shlex.quote(script)}"


def recipient(tool: Tool) -> str:
    """The address of ``tool``'s mails in the local platform's configuration."""
    return f"tools.{tool.name}@toolforge.org"


def tool_client(cluster: Cluster, tool: Tool) -> httpx.AsyncClient:
    """The gateway of ``make run`` as ``tool`` (its client certificate)."""
    context = ssl.create_default_context(cafile=cluster.pki_dir / "cluster-ca.crt")
    toolskube = tool.home / ".toolskube"
    context.load_cert_chain(toolskube / "client.crt", toolskube / "client.key")
    return httpx.AsyncClient(
        base_url=f"https://127.0.0.1:{GATEWAY_PORT}/jobs/v1/tool/{tool.name}",
        verify=context,
        timeout=60,
    )


async def run_job(
    cluster: Cluster, tool: Tool, name: str, cmd: str, emails: str, **extra: Any
) -> None:
    """Create one-off job ``name`` of ``tool`` (python3.11 image, output to the pod log)."""
    async with tool_client(cluster, tool) as client:
        body: dict[str, Any] = {
            "name": name, "cmd": cmd, "imagename": "python3.11", "emails": emails,
        }  # fmt: skip
        body.update({"filelog": False, **extra})
        deadline = time.monotonic() + 60
        while True:  # a 503 right after an apiserver restart is retried
            reply = await client.post("/jobs", json=body)
            if reply.status_code < 500 or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        assert reply.status_code == 201, reply.text


async def job_pods_ended(cluster: Cluster, tool: Tool, count: int) -> bool:
    """Whether ``count`` pods of ``tool``'s jobs have ended (Succeeded or Failed)."""
    out = await asyncio.to_thread(
        cluster.kubectl,
        binaries.Binaries.from_cache(),
        "-n", tool.namespace, "get", "pods", "-o", "jsonpath={.items[*].status.phase}",
    )  # fmt: skip
    return sum(p in ("Succeeded", "Failed") for p in out.split()) >= count


async def job_done(cluster: Cluster, tool: Tool, name: str) -> bool:
    """Whether one-off job ``name`` has finished (a Complete or Failed condition), or is gone
    already (``ttlSecondsAfterFinished``)."""
    out = await asyncio.to_thread(
        cluster.kubectl,
        binaries.Binaries.from_cache(),
        "-n", tool.namespace, "get", "jobs", "--ignore-not-found", "-o", "json",
    )  # fmt: skip
    for job in json.loads(out or '{"items": []}')["items"]:
        if job["metadata"]["name"] == name:
            types = {c["type"] for c in job.get("status", {}).get("conditions") or ()}
            return bool(types & {"Complete", "Failed"})
    return True
