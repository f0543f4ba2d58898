"""The Lease election's rules with a TEST DOUBLE of the Lease (compare-and-swap on a counter,
as the apiserver does on resourceVersion) and a controlled clock; the real Lease is used by the
cluster tests (a restart and a SIGKILL of the platform's emailer)."""

from __future__ import annotations

import copy
from typing import Any, cast

import pytest

from toolforge_emailer import leader
from toolforge_emailer.leader import LeaseElector
from toolforge_emailer.storage import EmailerStorage
from toolforge_kit.errors import ConflictError


class LeaseDouble:
    """TEST DOUBLE of the Lease calls of :class:`EmailerStorage`."""

    def __init__(self) -> None:
        self.rv = 1
        self.spec: dict[str, Any] = {}

    async def read_lease(self) -> dict[str, Any]:
        return {"metadata": {"resourceVersion": str(self.rv)}, "spec": copy.deepcopy(self.spec)}

    async def write_lease(self, spec: dict[str, Any], resource_version: str) -> dict[str, Any]:
        if resource_version != str(self.rv):
            raise ConflictError("the object has been modified")
        for key, value in spec.items():  # a merge patch: null removes
            if value is None:
                self.spec.pop(key, None)
            else:
                self.spec[key] = value
        self.rv += 1
        return await self.read_lease()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(f"{leader.__name__}.time.monotonic", c)
    return c


def elector(lease: LeaseDouble, name: str) -> LeaseElector:
    return LeaseElector(
        cast(EmailerStorage, lease), name, lease_duration=15, renew_deadline=10, retry=2
    )


async def test_one_holder_at_a_time_and_takeover_only_after_expiry(clock: Clock) -> None:
    lease = LeaseDouble()
    a, b = elector(lease, "a"), elector(lease, "b")
    assert await a._try() is True
    assert lease.spec["holderIdentity"] == "a"
    assert await b._try() is False
    clock.now += 10
    assert await a._try() is True  # renewed: the record changed
    assert await b._try() is False  # b sees the renewal now (its own clock)
    clock.now += 14
    assert await b._try() is False  # 14 s since b saw a change
    clock.now += 2
    assert await b._try() is True  # 16 s without a change: expired
    assert lease.spec["holderIdentity"] == "b"
    assert lease.spec["leaseTransitions"] == 1
    assert await a._try() is False


async def test_a_released_lease_is_taken_at_once(clock: Clock) -> None:
    lease = LeaseDouble()
    a, b = elector(lease, "a"), elector(lease, "b")
    assert await a._try() is True
    assert await b._try() is False
    await a.release()
    assert "holderIdentity" not in lease.spec
    assert await b._try() is True


async def test_a_concurrent_write_loses_the_race(clock: Clock) -> None:
    lease = LeaseDouble()
    a = elector(lease, "a")
    original = lease.write_lease

    async def someone_else_first(spec: dict[str, Any], rv: str) -> dict[str, Any]:
        lease.rv += 1  # another candidate wrote between our read and our write
        return await original(spec, rv)

    lease.write_lease = someone_else_first  # type: ignore[method-assign,assignment]
    assert await a._try() is False
