"""Log sources: container order, pod order, the deny list, and line formatting."""

from __future__ import annotations

import json
from typing import Any

import pytest

from toolforge_builds.logs import (
    ContainerLogStream,
    Redactor,
    container_names,
    format_line,
    hidden_line,
    is_hidden,
    ndjson,
    order_taskrun_pods,
    pipeline_task_order,
    plan_log_sources,
    split_timestamp,
)
from toolforge_builds.settings import DEFAULT_LOG_DENY_LIST, BuildsSettings


def _pod(
    name: str,
    task: str | None,
    init: list[str],
    containers: list[str],
    start: str | None = None,
    created: str = "2024-05-01T12:00:00Z",
) -> dict[str, Any]:
    labels = {"tekton.dev/pipelineRun": "foo-buildpacks-pipelinerun-abcde"}
    if task is not None:
        labels["tekton.dev/pipelineTask"] = task
    pod: dict[str, Any] = {
        "metadata": {"name": name, "labels": labels, "creationTimestamp": created},
        "spec": {
            "initContainers": [{"name": c, "image": "x"} for c in init],
            "containers": [{"name": c, "image": "x"} for c in containers],
        },
        "status": {},
    }
    if start:
        pod["status"]["startTime"] = start
    return pod


def _pipelinerun(tasks: list[str], final: list[str] | None = None) -> dict[str, Any]:
    return {
        "status": {
            "pipelineSpec": {
                "tasks": [{"name": t} for t in tasks],
                "finally": [{"name": t} for t in final or []],
            },
            "childReferences": [
                {"name": f"tr-{t}", "pipelineTaskName": t} for t in reversed(tasks)
            ],
        }
    }


def test_container_order_is_init_then_containers_in_spec_order() -> None:
    pod = _pod("p", "build", ["prepare", "place-scripts", "z-init"], ["step-b", "step-a"])
    assert container_names(pod) == ["prepare", "place-scripts", "z-init", "step-b", "step-a"]
    assert container_names({"spec": {}}) == []


def test_pipeline_task_order_uses_the_spec_then_finally() -> None:
    run = _pipelinerun(["fetch", "build"], ["report"])
    assert pipeline_task_order(run) == ["fetch", "build", "report"]


def test_pipeline_task_order_falls_back_to_child_references() -> None:
    run = _pipelinerun(["fetch", "build"])
    del run["status"]["pipelineSpec"]
    assert pipeline_task_order(run) == ["build", "fetch"]
    assert pipeline_task_order({}) == []


def test_pods_follow_task_order_then_start_time() -> None:
    pods = [
        _pod("report", "report", [], ["step-r"], start="2024-05-01T12:00:01Z"),
        _pod("build", "build", [], ["step-b"], start="2024-05-01T12:05:00Z"),
        _pod("fetch", "fetch", [], ["step-f"], start="2024-05-01T12:01:00Z"),
        _pod("stray-late", None, [], ["step-x"], start="2024-05-01T12:09:00Z"),
        _pod("stray-early", "unlisted", [], ["step-x"], start="2024-05-01T12:00:00Z"),
        _pod("stray-unstarted", None, [], ["step-x"]),
    ]
    ordered = order_taskrun_pods(pods, ["fetch", "build", "report"])
    assert [p["metadata"]["name"] for p in ordered] == [
        "fetch",
        "build",
        "report",
        "stray-early",
        "stray-late",
        "stray-unstarted",
    ]


def test_without_task_order_pods_are_ordered_by_start_time() -> None:
    pods = [
        _pod("second", "b", [], ["s"], start="2024-05-01T12:05:00Z"),
        _pod("first", "a", [], ["s"], start="2024-05-01T12:01:00Z"),
    ]
    assert [p["metadata"]["name"] for p in order_taskrun_pods(pods)] == ["first", "second"]


def test_retried_pods_of_one_task_are_ordered_by_start_time() -> None:
    pods = [
        _pod("retry", "build", [], ["s"], start="2024-05-01T12:05:00Z"),
        _pod("attempt", "build", [], ["s"], start="2024-05-01T12:01:00Z"),
    ]
    ordered = order_taskrun_pods(pods, ["build"])
    assert [p["metadata"]["name"] for p in ordered] == ["attempt", "retry"]


def test_default_deny_list_hides_tekton_internals_and_credential_steps() -> None:
    deny = DEFAULT_LOG_DENY_LIST
    for name in ("prepare", "place-scripts", "working-dir-initializer", "place-tools"):
        assert is_hidden(name, deny), name
    for name in ("step-export", "step-export-image", "step-image-push", "step-push-to-registry"):
        assert is_hidden(name, deny), name
    for name in ("step-build", "step-create", "step-clone", "step-detect", "prepare-x"):
        assert not is_hidden(name, deny), name
    assert BuildsSettings().log_deny_list == list(DEFAULT_LOG_DENY_LIST)


def test_deny_list_globs_are_case_sensitive() -> None:
    assert is_hidden("step-upload-1", ["step-upload-*"])
    assert is_hidden("step-a", ["step-?"])
    assert not is_hidden("STEP-UPLOAD-1", ["step-upload-*"])
    assert not is_hidden("anything", [])


def test_plan_marks_hidden_sources_in_output_order() -> None:
    run = _pipelinerun(["fetch", "build"])
    pods = [
        _pod("pod-build", "build", ["prepare", "place-scripts"], ["step-create", "step-export"]),
        _pod("pod-fetch", "fetch", ["prepare", "working-dir-initializer"], ["step-clone"]),
    ]
    plan = plan_log_sources(pods, deny=DEFAULT_LOG_DENY_LIST, task_order=pipeline_task_order(run))
    assert [(s.pod, s.container, s.task, s.hidden) for s in plan] == [
        ("pod-fetch", "prepare", "fetch", True),
        ("pod-fetch", "working-dir-initializer", "fetch", True),
        ("pod-fetch", "step-clone", "fetch", False),
        ("pod-build", "prepare", "build", True),
        ("pod-build", "place-scripts", "build", True),
        ("pod-build", "step-create", "build", False),
        ("pod-build", "step-export", "build", True),
    ]


def test_hidden_line() -> None:
    assert hidden_line("step-export") == "[step-export] output hidden"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            "2024-05-01T12:00:00.123456789Z hello world",
            ("2024-05-01T12:00:00.123456789Z", "hello world"),
        ),
        ("2024-05-01T12:00:00Z  two spaces", ("2024-05-01T12:00:00Z", " two spaces")),
        ("2024-05-01T12:00:00+02:00 x", ("2024-05-01T12:00:00+02:00", "x")),
        ("2024-05-01T12:00:00Z", ("2024-05-01T12:00:00Z", "")),
        ("no timestamp here", (None, "no timestamp here")),
        ("2024-05-01 12:00:00 not rfc3339", (None, "2024-05-01 12:00:00 not rfc3339")),
        ("2024-05-01T12:00:00Zjunk", (None, "2024-05-01T12:00:00Zjunk")),
        ("", (None, "")),
    ],
)
def test_split_timestamp(raw: str, expected: tuple[str | None, str]) -> None:
    assert split_timestamp(raw) == expected


def test_format_line_and_ndjson() -> None:
    line = format_line("step-build", "2024-05-01T12:00:00Z", 'say "hi" ✓')
    assert line == '[step-build] 2024-05-01T12:00:00Z say "hi" ✓'
    assert format_line("step-build", None, "x") == "[step-build] x"
    record = ndjson(line)
    assert record.endswith(b"\n")
    assert record.count(b"\n") == 1
    assert json.loads(record) == {"line": line}
    assert json.loads(ndjson("a\nb\x00c")) == {"line": "a\nb\x00c"}
    assert ndjson("a\nb").count(b"\n") == 1


def test_container_stream_formats_lines_across_chunks() -> None:
    stream = ContainerLogStream("step-build", Redactor([]))
    raw = (
        b"2024-05-01T12:00:00.1Z first line\r\n"
        b"2024-05-01T12:00:00.2Z second \xe2\x9c\x93\n"
        b"2024-05-01T12:00:00.3Z unterminated"
    )
    lines: list[str] = []
    for i in range(0, len(raw), 7):
        lines += stream.feed(raw[i : i + 7])
    assert lines == [
        "[step-build] 2024-05-01T12:00:00.1Z first line",
        "[step-build] 2024-05-01T12:00:00.2Z second ✓",
    ]
    assert stream.close() == ["[step-build] 2024-05-01T12:00:00.3Z unterminated"]
    assert stream.close() == []


def test_container_stream_redacts_before_formatting() -> None:
    stream = ContainerLogStream("step-build", Redactor(["hunter2-password"]))
    lines = stream.feed("2024-05-01T12:00:00Z token=hunter2-")
    lines += stream.feed("password done\n")
    assert lines == ["[step-build] 2024-05-01T12:00:00Z token=*** done"]


def test_container_stream_cuts_overlong_lines() -> None:
    stream = ContainerLogStream("c", Redactor([]), max_line_length=30)
    lines = stream.feed("2024-05-01T12:00:00Z " + "x" * 40 + "\nnext\n")
    assert lines == [
        "[c] 2024-05-01T12:00:00Z " + "x" * 9,
        "[c] " + "x" * 30,
        "[c] x",
        "[c] next",
    ]


def test_container_stream_invalid_utf8_is_replaced() -> None:
    stream = ContainerLogStream("c", Redactor([]))
    assert stream.feed(b"bad \xff byte\n") == ["[c] bad \ufffd byte"]
