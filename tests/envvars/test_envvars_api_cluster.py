"""The envvars API on the real cluster (served over real TLS, called as the gateway calls it):
the wire, the rules, the race-free quota, isolation, and values kept out of logs."""

from __future__ import annotations

import asyncio
import base64
import logging

import httpx
import pytest
from envvars.conftest import EnvvarsAPI
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from toolforge_dev.pytest_plugin import Tool, new_tool_api

pytestmark = [pytest.mark.cluster, pytest.mark.asyncio(loop_scope="module")]

SECRET_VALUE = "hunter2-very-secret-Zq9"  # noqa: S105 - test data


async def test_create_show_list_replace_delete(envvars_api: EnvvarsAPI, fresh_tool: Tool) -> None:
    async with envvars_api.client(fresh_tool.name) as api:
        assert (await api.get("/envvars")).json()["envvars"] == []
        created = await api.post("/envvars", json={"name": "API_TOKEN", "value": SECRET_VALUE})
        assert created.status_code == 200, created.text
        assert created.json()["envvar"] == {"name": "API_TOKEN", "value": SECRET_VALUE}
        assert created.json()["messages"]["info"] == ["Envvar 'API_TOKEN' created"]
        replaced = await api.post("/envvars/", json={"name": "API_TOKEN", "value": "v2"})
        assert replaced.json()["messages"]["info"] == ["Envvar 'API_TOKEN' updated"]
        shown = await api.get("/envvars/API_TOKEN")
        assert shown.json()["envvar"] == {"name": "API_TOKEN", "value": "v2"}
        await api.post("/envvars", json={"name": "OTHER_ONE", "value": "x"})
        listed = (await api.get("/envvars/")).json()["envvars"]
        assert [e["name"] for e in listed] == ["API_TOKEN", "OTHER_ONE"]
        assert (await api.get("/quotas")).json()["quota"] == {"quota": 4, "used": 2}
        deleted = await api.delete("/envvars/API_TOKEN")
        assert deleted.json()["envvar"] == {"name": "API_TOKEN", "value": "v2"}
        missing = await api.get("/envvars/API_TOKEN")
        assert (missing.status_code, missing.json()) == (
            404,
            {"error": ["Envvar 'API_TOKEN' does not exist"]},
        )
        assert (await api.delete("/envvars/OTHER_ONE")).status_code == 200
    # the last variable takes the Secret with it
    tool_api = await new_tool_api(fresh_tool.kubeconfig)
    async with tool_api:
        with pytest.raises(ApiException) as gone:
            await k8s.CoreV1Api(tool_api).read_namespaced_secret(
                "toolforge-envvars", fresh_tool.namespace
            )
        assert gone.value.status == 404


@pytest.mark.parametrize(
    ("body", "rule"),
    [
        ({"name": "lower", "value": "x"}, "name: String should match pattern"),
        ({"name": "HOME", "value": "x"}, "reserved"),
        ({"name": "TOOL_DATA_DIR", "value": "x"}, "reserved"),
        ({"name": "GOOD_NAME", "value": ""}, "value"),
        ({"name": "GOOD_NAME", "value": "a\u0000b"}, "NUL"),
        ({"name": "GOOD_NAME", "value": "x" * 8193}, "8193 bytes long; at most 8192"),
        ({"name": "GOOD_NAME"}, "value"),
        ({"name": "GOOD_NAME", "value": "x", "extra": 1}, "extra"),
    ],
)
async def test_bad_input_is_400_naming_the_rule_and_writes_nothing(
    envvars_api: EnvvarsAPI, fresh_tool: Tool, body: dict[str, object], rule: str
) -> None:
    async with envvars_api.client(fresh_tool.name) as api:
        answer = await api.post("/envvars", json=body)
        assert answer.status_code == 400, answer.text
        assert rule in " ".join(answer.json()["error"])
        value = body.get("value")
        if isinstance(value, str) and len(value) > 3:
            assert value not in answer.text
        assert (await api.get("/envvars")).json()["envvars"] == []


async def test_quota_is_race_free(envvars_api: EnvvarsAPI, fresh_tool: Tool) -> None:
    """20 concurrent creates of different names against a quota of 4: exactly 4 land."""
    async with envvars_api.client(fresh_tool.name) as api:

        async def create(i: int) -> int:
            answer = await api.post("/envvars", json={"name": f"VAR_{i:02d}", "value": str(i)})
            return answer.status_code

        codes = await asyncio.gather(*(create(i) for i in range(20)))
        assert sorted(codes).count(200) == 4, codes
        assert set(codes) <= {200, 409}, codes
        stored = (await api.get("/envvars")).json()["envvars"]
        assert len(stored) == 4
        assert (await api.get("/quotas")).json()["quota"] == {"quota": 4, "used": 4}
        over = await api.post("/envvars", json={"name": "ONE_MORE", "value": "x"})
        assert over.status_code == 409
        assert "4 of 4 variables" in over.json()["error"][0]
        # replacing an existing one is not a new variable
        name = stored[0]["name"]
        assert (await api.post("/envvars", json={"name": name, "value": "y"})).status_code == 200


async def test_ansecond_tool_can_neither_read_nor_write(
    envvars_api: EnvvarsAPI, fresh_tool: Tool, second_tool: Tool
) -> None:
    async with envvars_api.client(fresh_tool.name) as api:
        await api.post("/envvars", json={"name": "API_TOKEN", "value": SECRET_VALUE})
    # through the API: B's identity on A's path is refused before anything is read
    async with envvars_api.client(second_tool.name) as b:
        for method, path in (("GET", "envvars"), ("POST", "envvars"), ("GET", "quotas")):
            url = f"{envvars_api.url}/v1/tool/{fresh_tool.name}/{path}"
            answer = await b.request(method, url, json={"name": "API_TOKEN", "value": "owned"})
            assert answer.status_code == 403, answer.text
            assert SECRET_VALUE not in answer.text
        assert (await b.get("/envvars")).json()["envvars"] == []
    # by impersonation: B's own credentials cannot read A's Secret
    tool_api = await new_tool_api(second_tool.kubeconfig)
    async with tool_api:
        with pytest.raises(ApiException) as refused:
            await k8s.CoreV1Api(tool_api).read_namespaced_secret(
                "toolforge-envvars", fresh_tool.namespace
            )
        assert refused.value.status == 403
    async with envvars_api.client(fresh_tool.name) as api:
        shown = await api.get("/envvars/API_TOKEN")
        assert shown.json()["envvar"]["value"] == SECRET_VALUE


async def test_values_stay_out_of_logs_and_metrics(
    envvars_api: EnvvarsAPI, fresh_tool: Tool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with envvars_api.client(fresh_tool.name) as api:
        await api.post("/envvars", json={"name": "API_TOKEN", "value": SECRET_VALUE})
        await api.post("/envvars", json={"name": "bad", "value": SECRET_VALUE})
        await api.post("/envvars", json={"name": "API_TOKEN", "value": SECRET_VALUE * 1000})
        await api.get("/envvars")
        metrics = (await api.get(f"{envvars_api.url}/metrics")).text
    encoded = base64.b64encode(SECRET_VALUE.encode()).decode()
    for text in (caplog.text, metrics):
        assert SECRET_VALUE not in text
        assert encoded not in text
    assert "toolforge_envvars_requests_total" in metrics


async def test_no_identity_no_access(envvars_api: EnvvarsAPI, fresh_tool: Tool) -> None:
    async with httpx.AsyncClient(
        verify=str(envvars_api.pki / "backend-ca.crt"), base_url=envvars_api.url
    ) as anonymous:
        answer = await anonymous.get(f"/v1/tool/{fresh_tool.name}/envvars")
        assert answer.status_code == 401
        assert (await anonymous.get("/v1/healthz")).json()["health"]["status"] == "OK"
