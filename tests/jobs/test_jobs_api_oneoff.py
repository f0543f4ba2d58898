"""One-off jobs through the jobs API on the real cluster: run, status, logs, conflicts, filelog.

The API is called as the gateway calls it (mTLS with the gateway's backend certificate and the
identity header); every job really runs as a pod of the module's tool.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from typing import Any

import httpx
import pytest
from jobs.support import JobsAPI, ndjson, wait_for

from toolforge_dev.pytest_plugin import Tool

pytestmark = [pytest.mark.cluster, pytest.mark.asyncio(loop_scope="module")]


def oneoff(name: str, cmd: str, **fields: Any) -> dict[str, Any]:
    """A one-off job whose output goes to the pod log (``filelog`` is on by default for
    standard images, REFERENCE.md), unless ``fields`` say otherwise."""
    return {"name": name, "cmd": cmd, "imagename": "python3.11", "filelog": False, **fields}


async def show(client: httpx.AsyncClient, tool: Tool, name: str) -> dict[str, Any]:
    response = await client.get(f"/v1/tool/{tool.name}/jobs/{name}")
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()["job"]
    return job


async def wait_status(
    client: httpx.AsyncClient, tool: Tool, name: str, short: str, timeout: float = 90
) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        job = await show(client, tool, name)
        return job if job["status"]["short"] == short else None

    job: dict[str, Any] = await wait_for(check, f"job {name} {short}", timeout=timeout)
    return job


async def test_oneoff_job_succeeds_and_logs_its_output(
    jobs_api: JobsAPI, module_tool: Tool
) -> None:
    async with jobs_api.client(module_tool.name) as client:
        response = await client.post(
            f"/v1/tool/{module_tool.name}/jobs",
            json=oneoff("hello", "python3 -c \"print('hello'); print('world')\""),
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["job"]["name"] == "hello"
        assert body["job"]["job_type"] == "one-off"
        assert body["job"]["image"] == "registry.local/toolforge/python3.11:stable"
        assert body["job"]["status"]["short"] == "pending"
        assert body["messages"]["error"] == []

        job = await wait_status(client, module_tool, "hello", "succeeded")
        assert job["status_short"] == "Completed"

        response = await client.get(f"/v1/tool/{module_tool.name}/jobs/hello/logs")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/x-ndjson")
        assert response.headers["x-accel-buffering"] == "no"
        lines = ndjson(response.text)
        assert [line["message"] for line in lines] == ["hello", "world"]
        for line in lines:
            assert set(line) == {"pod", "container", "datetime", "message"}
            assert line["pod"].startswith("hello-")
            assert line["container"] == "job"
            stamp = dt.datetime.fromisoformat(line["datetime"])
            assert abs(dt.datetime.now(dt.UTC) - stamp) < dt.timedelta(minutes=5)

        response = await client.get(
            f"/v1/tool/{module_tool.name}/jobs/hello/logs", params={"lines": 1}
        )
        assert [line["message"] for line in ndjson(response.text)] == ["world"]

        listed = (await client.get(f"/v1/tool/{module_tool.name}/jobs")).json()
        assert "hello" in [j["name"] for j in listed["jobs"]]


async def test_failing_job_shows_its_exit_code(jobs_api: JobsAPI, module_tool: Tool) -> None:
    async with jobs_api.client(module_tool.name) as client:
        response = await client.post(
            f"/v1/tool/{module_tool.name}/jobs",
            json=oneoff("fails", "python3 -c 'import sys; sys.exit(3)'"),
        )
        assert response.status_code == 201, response.text
        job = await wait_status(client, module_tool, "fails", "failed")
        assert "exit code 3" in job["status"]["messages"]
        assert job["status_short"] == "Failed"
        assert "exit code 3" in job["status_long"]


async def test_name_conflicts_and_finished_oneoff_replacement(
    jobs_api: JobsAPI, module_tool: Tool
) -> None:
    path = f"/v1/tool/{module_tool.name}/jobs"
    async with jobs_api.client(module_tool.name) as client:
        long_running = oneoff("busy", "python3 -c 'import time; time.sleep(300)'")
        assert (await client.post(path, json=long_running)).status_code == 201
        again = await client.post(path, json=long_running)
        assert again.status_code == 409
        assert again.json()["error"] == ["Job 'busy' already exists"]
        # a scheduled job of the same name conflicts as well: names are unique over kinds
        clash = await client.post(path, json={**long_running, "schedule": "@daily"})
        assert clash.status_code == 409

        # a finished one-off job is replaced by a new run
        first = await client.post(path, json=oneoff("again", "python3 -c 'print(1)'"))
        assert first.status_code == 201
        done = await wait_status(client, module_tool, "again", "succeeded")
        second = await client.post(path, json=oneoff("again", "python3 -c 'print(2)'"))
        assert second.status_code == 201, second.text
        assert any("replaces" in m for m in second.json()["messages"]["info"])
        assert second.json()["job"]["cmd"] == "python3 -c 'print(2)'"
        await wait_status(client, module_tool, "again", "succeeded")
        logs = await client.get(f"{path}/again/logs")
        assert [line["message"] for line in ndjson(logs.text)] == ["2"]
        assert done["cmd"] == "python3 -c 'print(1)'"

        # one-off jobs cannot be restarted
        restart = await client.post(f"{path}/busy/restart")
        assert restart.status_code == 400
        assert "one-off" in restart.json()["error"][0]

        # delete, then it is gone
        assert (await client.delete(f"{path}/busy")).status_code == 200
        gone = await client.get(f"{path}/busy")
        assert gone.status_code == 404
        assert gone.json()["error"] == ["Job 'busy' does not exist"]
        assert (await client.delete(f"{path}/busy")).status_code == 404
        assert (await client.post(f"{path}/busy/restart")).status_code == 404
        assert (await client.get(f"{path}/busy/logs")).status_code == 404


async def test_filelog_writes_to_the_home_as_the_tool(jobs_api: JobsAPI, module_tool: Tool) -> None:
    path = f"/v1/tool/{module_tool.name}/jobs"
    async with jobs_api.client(module_tool.name) as client:
        response = await client.post(
            path,
            json=oneoff(
                "tofile",
                "python3 -c \"import sys; print('to out'); print('to err', file=sys.stderr)\"",
                filelog=True,
            ),
        )
        assert response.status_code == 201, response.text
        await wait_status(client, module_tool, "tofile", "succeeded")
        out, err = module_tool.home / "tofile.out", module_tool.home / "tofile.err"
        assert out.read_text() == "to out\n"
        assert err.read_text() == "to err\n"
        assert os.stat(out).st_uid == module_tool.uid
        assert os.stat(err).st_uid == module_tool.uid

        logs = await client.get(f"{path}/tofile/logs")
        assert logs.status_code == 404
        assert logs.json() == {"error": ["Job 'tofile' does not have any logs available"]}


async def test_follow_streams_incrementally_and_ends_with_the_job(
    jobs_api: JobsAPI, module_tool: Tool
) -> None:
    path = f"/v1/tool/{module_tool.name}/jobs"
    script = (
        "import time\nfor i in range(4):\n    print(f'tick {i}', flush=True)\n    time.sleep(1)"
    )
    async with jobs_api.client(module_tool.name) as client:
        response = await client.post(path, json=oneoff("ticker", f'python3 -c "{script}"'))
        assert response.status_code == 201, response.text
        await wait_status(client, module_tool, "ticker", "running")
        arrivals: list[tuple[float, str]] = []
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with client.stream("GET", f"{path}/ticker/logs", params={"follow": "true"}) as stream:
            assert stream.status_code == 200
            async for line in stream.aiter_lines():
                if line:
                    arrivals.append((loop.time() - started, ndjson(line)[0]["message"]))
        messages = [m for _, m in arrivals]
        assert messages == [f"tick {i}" for i in range(4)]
        # lines arrived while the job ran (about a second apart), not all at once at the end
        assert arrivals[-1][0] - arrivals[0][0] >= 1.5
        # and the stream ended because the job did
        job = await show(client, module_tool, "ticker")
        assert job["status"]["short"] == "succeeded"
    assert await jobs_api.metric("toolforge_jobs_log_upstreams_open") == 0


async def test_client_disconnect_closes_the_upstream_log_stream(
    jobs_api: JobsAPI, module_tool: Tool
) -> None:
    path = f"/v1/tool/{module_tool.name}/jobs"
    script = "import time\nwhile True:\n    print('still here', flush=True)\n    time.sleep(0.5)"
    async with jobs_api.client(module_tool.name) as client:
        response = await client.post(path, json=oneoff("chatty", f'python3 -c "{script}"'))
        assert response.status_code == 201, response.text
        await wait_status(client, module_tool, "chatty", "running")
        async with client.stream("GET", f"{path}/chatty/logs", params={"follow": "true"}) as stream:
            # keep the line iterator referenced: a finalised one closes the response early
            lines = stream.aiter_lines()
            first = await anext(lines)
            assert ndjson(first)[0]["message"] == "still here"
            assert await jobs_api.metric("toolforge_jobs_log_streams_open") == 1
            assert await jobs_api.metric("toolforge_jobs_log_upstreams_open") == 1
        # the client closed its connection mid-stream: the server ends both sides

        async def closed() -> bool:
            streams = await jobs_api.metric("toolforge_jobs_log_streams_open")
            upstreams = await jobs_api.metric("toolforge_jobs_log_upstreams_open")
            return streams == 0 and upstreams == 0

        await wait_for(closed, "log streams closed", timeout=10, interval=0.2)
        assert (await client.delete(f"{path}/chatty")).status_code == 200
