"""Cron schedules of scheduled jobs: validation, deterministic ``@daily``-style spreading,
previous and next fire times.

A schedule is either a 5-field cron line (minute hour day-of-month month day-of-week) or one of
the descriptors ``@hourly @daily @midnight @weekly @monthly @yearly @annually``. Descriptors
are replaced by a concrete line whose fields come from a SHA-256 hash of ``"<tool> <job>"``
(REFERENCE.md, "Jobs API": randomised deterministically so tools don't all fire at :00). The
same tool and job always get the same line, on every host and Python version.

Lines are checked against what the Kubernetes CronJob controller accepts (its parser is
robfig/cron v3 ``ParseStandard``): per field ``*``, ``?``, ``N``, ``N-M``, each optionally with
``/STEP``, comma-separated; month and weekday names (``jan``, ``mon``) in any case; minute
0-59, hour 0-23, day 1-31, month 1-12, weekday 0-6 (Sunday is 0; ``7`` is rejected by
Kubernetes). croniter's extensions (``L``, ``W``, ``#``, ``H``, seconds, years) are rejected,
and so are lines that never fire (``0 0 30 2 *``). ``TZ=`` prefixes are rejected: CronJobs run
in the controller's time zone, which is UTC on Toolforge, so all times here are UTC.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
from dataclasses import dataclass

from croniter import CroniterBadDateError, CroniterError, croniter

from toolforge_jobs.errors import JobSpecError

__all__ = [
    "DESCRIPTORS",
    "InvalidScheduleError",
    "Schedule",
    "check_schedule",
    "next_fire_time",
    "previous_fire_time",
    "resolve_schedule",
]

#: Descriptors and the fields a hash fills in (``M`` minute, ``H`` hour, ``D`` weekday,
#: ``d`` day of month 1-28 so that it exists in every month, ``m`` month).
DESCRIPTORS: dict[str, str] = {
    "@hourly": "M * * * *",
    "@daily": "M H * * *",
    "@midnight": "M H * * *",
    "@weekly": "M H * * D",
    "@monthly": "M H d * *",
    "@yearly": "M H d m *",
    "@annually": "M H d m *",
}

_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_WEEKDAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
#: (name, lowest, highest, names) of the five fields.
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {name: i + 1 for i, name in enumerate(_MONTHS)}),
    ("day of week", 0, 6, {name: i for i, name in enumerate(_WEEKDAYS)}),
)
_ITEM_RE = re.compile(
    r"(?P<range>\*|\?|(?P<lo>[0-9a-z]+)(?:-(?P<hi>[0-9a-z]+))?)(?:/(?P<step>[0-9]+))?",
    re.IGNORECASE,
)
_EXAMPLES = "e.g. '*/15 * * * *', '30 4 * * mon-fri' or '@daily'"


class InvalidScheduleError(JobSpecError):
    """The schedule is not one Kubernetes accepts (field ``schedule``); the message names the
    rule."""

    def __init__(self, rule: str) -> None:
        super().__init__("schedule", rule)


@dataclass(frozen=True)
class Schedule:
    """A validated schedule.

    ``text`` is what the user gave (returned as the job's ``schedule``); ``actual`` is the
    5-field line given to the CronJob (returned as ``schedule_actual``).
    """

    text: str
    actual: str

    def next_fire(self, now: dt.datetime) -> dt.datetime:
        """The first fire time strictly after ``now`` (UTC); see :func:`next_fire_time`."""
        return next_fire_time(self.actual, now)

    def previous_fire(self, now: dt.datetime) -> dt.datetime:
        """The last fire time at or before ``now`` (UTC); see :func:`previous_fire_time`."""
        return previous_fire_time(self.actual, now)


def _check_value(token: str, field: int) -> int:
    name, lo, hi, names = _FIELDS[field]
    value = names.get(token.lower()) if not token.isdigit() else int(token)
    if value is None:
        raise InvalidScheduleError(f"has {token!r}, which is not a valid {name}")
    if not lo <= value <= hi:
        raise InvalidScheduleError(f"has {name} {value}, outside {lo}-{hi}")
    return value


@functools.lru_cache(maxsize=4096)
def _check_line(text: str) -> None:
    """Raises InvalidScheduleError; valid lines are remembered (jobs are listed often)."""
    if "=" in text:
        raise InvalidScheduleError(
            "cannot have a time zone prefix (TZ=, CRON_TZ=); schedules are UTC"
        )
    fields = text.split()
    if len(fields) != 5:
        raise InvalidScheduleError(
            f"{text!r} has {len(fields)} fields; a cron line has exactly 5 "
            f"(minute hour day-of-month month day-of-week, no seconds), {_EXAMPLES}"
        )
    for index, field in enumerate(fields):
        for item in field.split(","):
            match = _ITEM_RE.fullmatch(item)
            if match is None:
                raise InvalidScheduleError(
                    f"has {item!r}, which is not valid in the {_FIELDS[index][0]} field "
                    f"(use *, N, N-M, */S, N-M/S or lists of those; {_EXAMPLES})"
                )
            if match["lo"] is not None:
                low = _check_value(match["lo"], index)
                if match["hi"] is not None and _check_value(match["hi"], index) < low:
                    raise InvalidScheduleError(
                        f"has a reversed range {item!r} in the {_FIELDS[index][0]} field"
                    )
            if match["step"] is not None and int(match["step"]) == 0:
                raise InvalidScheduleError(f"has a zero step in {item!r}; steps are at least 1")
    try:
        croniter(text, dt.datetime(2000, 1, 1, tzinfo=dt.UTC)).get_next(dt.datetime)
    except CroniterBadDateError:
        raise InvalidScheduleError(f"{text!r} never fires") from None
    except CroniterError as exc:
        raise InvalidScheduleError(f"{text!r} is not valid: {exc}") from None


def check_schedule(text: str) -> None:
    """Check a schedule without resolving descriptors (no tool or job name needed).

    Raises:
        InvalidScheduleError: not a descriptor and not a valid 5-field line; the message
            names the rule.
    """
    stripped = text.strip()
    if stripped.startswith("@"):
        if stripped not in DESCRIPTORS:
            raise InvalidScheduleError(
                f"{stripped!r} is not a known descriptor; use one of {', '.join(DESCRIPTORS)}"
            )
        return
    _check_line(stripped)


def resolve_schedule(text: str, *, tool: str, job: str) -> Schedule:
    """Validate ``text`` and give the concrete line for the CronJob.

    Descriptors get fields from ``sha256("<tool> <job>")``: ``@daily`` for tool ``foo`` and
    job ``bar`` is always the same line, e.g. ``"17 3 * * *"``. Other lines are kept with
    their whitespace collapsed.

    Raises:
        InvalidScheduleError: as :func:`check_schedule`.
    """
    check_schedule(text)
    stripped = text.strip()
    if stripped not in DESCRIPTORS:
        return Schedule(text=text, actual=" ".join(stripped.split()))
    seed = int.from_bytes(hashlib.sha256(f"{tool} {job}".encode()).digest(), "big")
    values: dict[str, int] = {}
    for key, size, offset in (("M", 60, 0), ("H", 24, 0), ("D", 7, 0), ("d", 28, 1), ("m", 12, 1)):
        seed, value = divmod(seed, size)
        values[key] = value + offset
    actual = " ".join(
        str(values[part]) if part in values else part for part in DESCRIPTORS[stripped].split()
    )
    return Schedule(text=text, actual=actual)


def _utc(now: dt.datetime) -> dt.datetime:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(dt.UTC)


def next_fire_time(line: str, now: dt.datetime) -> dt.datetime:
    """The first time strictly after ``now`` at which the 5-field ``line`` fires, in UTC.

    Raises:
        ValueError: ``now`` is naive. ``line`` must be valid (see :func:`resolve_schedule`).
    """
    # Fire times are whole minutes, so the next one after ``now`` is the next one after the
    # start of its minute: results are shared for a minute (a list of many jobs asks often).
    return _next_after_minute(line, _utc(now).replace(second=0, microsecond=0))


@functools.lru_cache(maxsize=8192)
def _next_after_minute(line: str, minute: dt.datetime) -> dt.datetime:
    result: dt.datetime = croniter(line, minute).get_next(dt.datetime)
    return result


def previous_fire_time(line: str, now: dt.datetime) -> dt.datetime:
    """The last time at or before ``now`` at which the 5-field ``line`` fires, in UTC.

    Raises:
        ValueError: ``now`` is naive. ``line`` must be valid (see :func:`resolve_schedule`).
    """
    # croniter's get_prev is strictly before its start, and cron has minute resolution: start
    # one second into the current minute so that a fire time in this minute counts.
    start = _utc(now).replace(second=1, microsecond=0)
    result: dt.datetime = croniter(line, start).get_prev(dt.datetime)
    return result
