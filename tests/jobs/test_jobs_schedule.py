"""Schedules: what Kubernetes CronJobs accept, deterministic spreading of @daily and friends,
fire times."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import pytest
from croniter import croniter

from toolforge_jobs.schedule import (
    DESCRIPTORS,
    InvalidScheduleError,
    check_schedule,
    next_fire_time,
    previous_fire_time,
    resolve_schedule,
)


@pytest.mark.parametrize(
    "line",
    [
        "* * * * *",
        "*/15 * * * *",
        "0 4 * * mon-fri",
        "30 2 1,15 * *",
        "0 0 1 JAN,jul *",
        "5/10 8-18/2 ? * *",
        "0 0 29 2 *",  # rare, but it does fire
        "0 12 * * 0",
    ],
)
def test_valid_lines_are_kept(line: str) -> None:
    schedule = resolve_schedule(line, tool="t", job="j")
    assert schedule.text == line
    assert schedule.actual == line


def test_whitespace_is_collapsed_in_the_actual_line() -> None:
    schedule = resolve_schedule(" 0  4 *\t* * ", tool="t", job="j")
    assert schedule.actual == "0 4 * * *"
    assert schedule.text == " 0  4 *\t* * "


@pytest.mark.parametrize(
    ("line", "rule"),
    [
        ("* * * * * *", "has 6 fields; a cron line has exactly 5"),
        ("0 0 * * * 2024", "has 6 fields"),
        ("* * * *", "has 4 fields"),
        ("", "has 0 fields"),
        ("60 * * * *", "minute 60, outside 0-59"),
        ("0 24 * * *", "hour 24, outside 0-23"),
        ("0 0 0 * *", "day of month 0, outside 1-31"),
        ("0 0 * 13 *", "month 13, outside 1-12"),
        ("0 0 * * 7", "day of week 7, outside 0-6"),
        ("0 0 L * *", "'L', which is not a valid day of month"),
        ("0 0 15W * *", "'15W', which is not a valid day of month"),
        ("0 0 * * 1#2", "not valid in the day of week field"),
        ("H * * * *", "'H', which is not a valid minute"),
        ("0 0 * * funday", "not a valid day of week"),
        ("30-10 * * * *", "reversed range '30-10'"),
        ("*/0 * * * *", "zero step"),
        ("0 0 30 2 *", "never fires"),
        ("? * * * *", "is not valid"),
        ("TZ=Europe/Berlin 0 0 * * *", "time zone"),
        ("@every 1h", "not a known descriptor"),
        ("@reboot", "not a known descriptor"),
        ("@DAILY", "not a known descriptor"),
    ],
)
def test_invalid_schedules(line: str, rule: str) -> None:
    with pytest.raises(InvalidScheduleError) as exc:
        check_schedule(line)
    assert exc.value.field == "schedule"
    assert str(exc.value).startswith("schedule ")
    assert rule in str(exc.value)


@pytest.mark.parametrize("descriptor", DESCRIPTORS)
def test_descriptors_become_concrete_lines(descriptor: str) -> None:
    schedule = resolve_schedule(descriptor, tool="tool", job="job")
    assert schedule.text == descriptor
    check_schedule(schedule.actual)  # a valid 5-field line without descriptors
    minute, hour, day, month, weekday = schedule.actual.split()
    assert 0 <= int(minute) <= 59
    fixed = {"@hourly": "M", "@daily": "MH", "@midnight": "MH", "@weekly": "MHw"}
    fixed |= {"@monthly": "MHd", "@yearly": "MHdm", "@annually": "MHdm"}
    fields = fixed[descriptor]
    assert (hour != "*") == ("H" in fields)
    assert (weekday != "*") == ("w" in fields)
    assert (day != "*") == ("d" in fields)
    assert (month != "*") == ("m" in fields)
    if day != "*":
        assert 1 <= int(day) <= 28  # exists in every month


def test_descriptor_period_is_kept() -> None:
    now = dt.datetime(2024, 3, 10, 12, 0, tzinfo=dt.UTC)
    periods = {"@hourly": 3600, "@daily": 86400, "@weekly": 7 * 86400}
    for descriptor, seconds in periods.items():
        line = resolve_schedule(descriptor, tool="tool", job="job").actual
        first = next_fire_time(line, now)
        assert (next_fire_time(line, first) - first).total_seconds() == seconds


def test_same_tool_and_job_give_the_same_line_in_another_process() -> None:
    here = [resolve_schedule(d, tool="mytool", job="nightly").actual for d in DESCRIPTORS]
    code = (
        "from toolforge_jobs.schedule import DESCRIPTORS, resolve_schedule\n"
        "print('|'.join(resolve_schedule(d, tool='mytool', job='nightly').actual"
        " for d in DESCRIPTORS))"
    )
    for seed in ("1", "2"):  # Python's hash() would differ between these
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip().split("|") == here


def test_different_tools_and_jobs_are_spread() -> None:
    lines = [resolve_schedule("@daily", tool=f"tool{i}", job="backup").actual for i in range(500)]
    minutes = {line.split()[0] for line in lines}
    hours = {line.split()[1] for line in lines}
    assert len(minutes) >= 50
    assert len(hours) >= 20
    by_job = {resolve_schedule("@hourly", tool="t", job=f"job{i}").actual for i in range(100)}
    assert len(by_job) >= 40


def test_fire_times() -> None:
    line = "*/15 * * * *"
    at_fire = dt.datetime(2024, 1, 1, 10, 15, tzinfo=dt.UTC)
    assert next_fire_time(line, at_fire) == dt.datetime(2024, 1, 1, 10, 30, tzinfo=dt.UTC)
    assert previous_fire_time(line, at_fire) == at_fire
    late = at_fire.replace(minute=29, second=59, microsecond=999)
    assert previous_fire_time(line, late) == at_fire
    assert next_fire_time(line, late) == dt.datetime(2024, 1, 1, 10, 30, tzinfo=dt.UTC)
    # other time zones are converted; results are UTC
    berlin = dt.timezone(dt.timedelta(hours=1))
    result = next_fire_time("0 0 * * *", dt.datetime(2024, 1, 1, 0, 30, tzinfo=berlin))
    assert result == dt.datetime(2024, 1, 1, 0, 0, tzinfo=dt.UTC)
    assert result.utcoffset() == dt.timedelta(0)
    with pytest.raises(ValueError, match="aware"):
        next_fire_time(line, dt.datetime(2024, 1, 1))


def test_fire_times_agree_with_croniter_for_resolved_lines() -> None:
    now = dt.datetime(2024, 6, 1, 8, 7, 6, tzinfo=dt.UTC)
    schedule = resolve_schedule("@weekly", tool="x", job="y")
    expected = croniter(schedule.actual, now).get_next(dt.datetime)
    assert schedule.next_fire(now) == expected
    assert schedule.previous_fire(now) < now < schedule.next_fire(now)
