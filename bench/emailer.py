"""Emailer measurements.

``uv run python bench/emailer.py state``: size and encode/decode time of the state ConfigMap
payload, and compose time of one mail, for growing numbers of tools and pending events (pure,
no cluster). The apiserver stores objects up to 1 MiB (binaryData is base64: 4/3 of the gzip).

``uv run python bench/emailer.py e2e --jobs 10``: with the platform up (``make up``), as the
demo tool through the gateway: N one-off jobs that fail, a 1 s batch window and a 1 s send
loop (set through the live ConfigMap, restored afterwards); reports the time from the last
job's end (its container's ``finishedAt``) to the mail's arrival in Mailpit (its ``Created``),
the number of mails, and the emailer's RSS before and after.
"""

from __future__ import annotations

import argparse
import json
import ssl
import statistics
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from toolforge_emailer.config import EmailConfig
from toolforge_emailer.events import JobEvent
from toolforge_emailer.mails import compose
from toolforge_emailer.state import EmailerState, PendingTool, decode, encode

NOW = datetime(2026, 12, 4, 22, 0, tzinfo=UTC)


def _event(tool: str, job: int, run: int) -> JobEvent:
    return JobEvent(
        key=f"end:containerd://{uuid.uuid4().hex}{uuid.uuid4().hex}",
        kind="failed",
        tool=tool,
        job=f"job-{job}",
        job_type="scheduled",
        pod=f"job-{job}-29410{run:03d}-x7k2p",
        pod_uid=str(uuid.uuid4()),
        container="job",
        at=NOW + timedelta(seconds=run),
        exit_code=1,
        reason="Error",
        output=[
            f"line {i}: some output of the job, about sixty characters long" for i in range(10)
        ],
    )


def bench_state() -> None:
    print("| tools | events pending (each) | pods seen | gzip bytes | base64 | encode | decode |")
    print("|---|---|---|---|---|---|---|")
    for tools, per_tool, seen in ((10, 10, 100), (100, 10, 1000), (1000, 2, 3000), (300, 10, 3000)):
        state = EmailerState(initialised=True)
        for t in range(tools):
            tool = f"tool{t}"
            for j in range(per_tool):
                event = _event(tool, j, j)
                state.queue(event, NOW, 500)
        for _ in range(seen):
            state.seen[str(uuid.uuid4())] = [
                f"start:containerd://{uuid.uuid4().hex}{uuid.uuid4().hex}",
                f"end:containerd://{uuid.uuid4().hex}{uuid.uuid4().hex}",
            ]
        started = time.perf_counter()
        data = encode(state)
        encoded = time.perf_counter() - started
        started = time.perf_counter()
        decode(data)
        decoded = time.perf_counter() - started
        print(
            f"| {tools} | {tools * per_tool} ({per_tool}) | {seen} | {len(data):,} | "
            f"{len(data) * 4 // 3:,} | {encoded * 1000:.1f} ms | {decoded * 1000:.1f} ms |"
        )
    pending = PendingTool(since=NOW, events=[_event("t", j, j) for j in range(100)])
    timings = []
    for _ in range(20):
        started = time.perf_counter()
        compose("t", pending, EmailConfig(), NOW)
        timings.append(time.perf_counter() - started)
    print(
        f"\ncompose of a 100-event mail: {statistics.median(timings) * 1000:.2f} ms (median of 20)"
    )


RUN = Path("/var/lib/toolforge-dev")
KUBECTL = Path.home() / ".cache/toolforge-dev/bin/kubernetes-v1.34.4/kubectl"


def kubectl(*args: str) -> str:
    return subprocess.run(
        [str(KUBECTL), "--kubeconfig", str(RUN / "admin.kubeconfig"), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout


def rss_mib() -> float:
    pid = (RUN / "pids" / "emailer.pid").read_text().strip()
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def set_config(data: dict[str, str]) -> None:
    kubectl(
        "-n",
        "jobs-emailer",
        "patch",
        "configmap",
        "jobs-emailer-config",
        "--type",
        "merge",
        "-p",
        json.dumps({"data": data}),
    )


def bench_e2e(jobs: int) -> None:
    original = json.loads(
        kubectl("-n", "jobs-emailer", "get", "cm", "jobs-emailer-config", "-o", "json")
    )["data"]
    home = RUN / "homes" / "demo" / ".toolskube"
    context = ssl.create_default_context(cafile=RUN / "pki" / "cluster-ca.crt")
    context.load_cert_chain(home / "client.crt", home / "client.key")
    rss_before = rss_mib()
    set_config({"task_compose_emails_loop_sleep": "1", "task_send_emails_loop_sleep": "1"})
    time.sleep(4)  # two configuration reads (task_read_configmap_sleep is 2 s locally)
    tag = uuid.uuid4().hex[:6]
    names = [f"bench-{tag}-{i}" for i in range(jobs)]
    try:
        with httpx.Client(
            base_url="https://127.0.0.1:8443/jobs/v1/tool/demo", verify=context, timeout=60
        ) as client:
            for name in names:
                reply = client.post(
                    "/jobs",
                    json={
                        "name": name,
                        "cmd": "sh -c 'exit 1'",
                        "imagename": "python3.11",
                        "emails": "onfailure",
                        "filelog": False,
                    },
                )
                reply.raise_for_status()
        ends: dict[str, datetime] = {}
        deadline = time.monotonic() + 300
        while len(ends) < jobs and time.monotonic() < deadline:
            pods = json.loads(kubectl("-n", "tool-demo", "get", "pods", "-o", "json"))["items"]
            for pod in pods:
                name = pod["metadata"]["labels"].get("app.kubernetes.io/name")
                for cs in pod["status"].get("containerStatuses") or ():
                    term = cs.get("state", {}).get("terminated")
                    if name in names and term:
                        ends[name] = datetime.fromisoformat(
                            term["finishedAt"].replace("Z", "+00:00")
                        )
            time.sleep(0.5)
        mails: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            found = httpx.get(
                "http://127.0.0.1:8025/api/v1/search",
                params={"query": f'to:"tools.demo@toolforge.org" {tag}'},
            ).json()
            mails = found["messages"]
            listed = sum(
                len(
                    [
                        n
                        for n in names
                        if n
                        in httpx.get(f"http://127.0.0.1:8025/api/v1/message/{m['ID']}").json()[
                            "Text"
                        ]
                    ]
                )
                for m in mails
            )
            if listed >= jobs:
                break
            time.sleep(0.5)
        created = max(datetime.fromisoformat(m["Created"]) for m in mails)
        last_end = max(ends.values())
        first_end = min(ends.values())
        spread = (last_end - first_end).total_seconds()
        print(f"jobs: {jobs}, ended over {spread:.1f} s; mails: {len(mails)}")
        print(
            f"last job end -> mail in Mailpit: {(created - last_end).total_seconds():.2f} s "
            "(batch window 1 s, send loop 1 s, ConfigMap re-read 2 s)"
        )
        print(f"emailer RSS: {rss_before:.0f} MiB before, {rss_mib():.0f} MiB after")
    finally:
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "jobs-emailer-config", "namespace": "jobs-emailer"},
            "data": original,
        }
        subprocess.run(
            [str(KUBECTL), "--kubeconfig", str(RUN / "admin.kubeconfig"), "replace", "-f", "-"],
            input=json.dumps(body),
            text=True,
            check=True,
            capture_output=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("state")
    e2e = sub.add_parser("e2e")
    e2e.add_argument("--jobs", type=int, default=10)
    args = parser.parse_args()
    if args.what == "state":
        bench_state()
    else:
        bench_e2e(args.jobs)


if __name__ == "__main__":
    main()
