"""``jobs.yaml``: read and check it whole (``toolforge jobs load``), write it (``dump``).

The file is a YAML list of mappings whose keys are the ``run`` flags (REFERENCE.md, CLI
paragraph; the key table is in :mod:`toolforge_cli.jobspec`)::

    - name: everyday
      command: ./daily.sh
      image: bookworm
      schedule: "@daily"
      emails: onfailure
    - name: web
      command: ./serve.sh
      image: python3.11
      continuous: true
      port: 8000
      health-check-http: /healthz
    - name: prepare
      command: ./prepare.sh
      image: bookworm
      wait: true          # one-off: wait until it finished before loading the next entry
      no-filelog: true    # as upstream: the same as "filelog: false"

:func:`parse_jobs_file` reports every problem of the file at once (unknown keys with a
suggestion, missing ``name``/``command``/``image``, wrong types, rules across options,
duplicate names), so that ``load`` refuses a bad file before sending anything.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Any

import yaml
from pydantic import ValidationError

from toolforge_cli.errors import UserError
from toolforge_cli.jobspec import OPTION_KEYS, JobOptions, key_name

__all__ = ["JobsFileError", "dump_jobs_yaml", "parse_jobs_file"]


class JobsFileError(UserError):
    """``jobs.yaml`` is not valid; ``details`` has one line per problem (exit code 1)."""


def _describe(index: int, raw: Any) -> str:
    name = raw.get("name") if isinstance(raw, dict) else None
    return f"entry {index}" + (f" ({name!r})" if isinstance(name, str) and name else "")


def _pydantic_problems(exc: ValidationError) -> list[str]:
    problems = []
    for error in exc.errors():
        key = str(error["loc"][0]) if error["loc"] else ""
        if error["type"] == "missing":
            problems.append(f"missing required key {key!r}")
        elif error["type"] == "extra_forbidden":
            close = difflib.get_close_matches(key, OPTION_KEYS, n=1)
            if not close and "_" in key and key.replace("_", "-") in OPTION_KEYS:
                close = [key.replace("_", "-")]
            suggestion = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"unknown key {key!r}{suggestion}")
        else:
            msg = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"{key}: {msg}")
    return problems


def validate_entries(data: Any) -> tuple[list[JobOptions], list[str]]:
    """(valid entries, problems) of already-parsed YAML ``data``; entries are numbered from
    1 in the problems."""
    if data is None:
        return [], ["the file is empty; expected a list of jobs"]
    if not isinstance(data, list):
        return [], [f"expected a list of jobs at the top level, got a {type(data).__name__}"]
    jobs: list[JobOptions] = []
    problems: list[str] = []
    first_index: dict[str, int] = {}
    for index, raw in enumerate(data, start=1):
        where = _describe(index, raw)
        if not isinstance(raw, dict):
            problems.append(f"{where}: must be a mapping of options, got {type(raw).__name__}")
            continue
        try:
            options = JobOptions.model_validate(raw)
        except ValidationError as exc:
            problems += [f"{where}: {p}" for p in _pydantic_problems(exc)]
            continue
        problems += [f"{where}: {p}" for p in options.problems(key_name)]
        if options.name in first_index:
            problems.append(
                f"{where}: name {options.name!r} is also used by entry {first_index[options.name]}"
            )
        else:
            first_index[options.name] = index
        jobs.append(options)
    return jobs, problems


def parse_jobs_file(text: str, source: str = "jobs.yaml") -> list[JobOptions]:
    """The jobs of a ``jobs.yaml`` text, all checked. Raises :class:`JobsFileError` listing
    every problem (YAML syntax, structure, keys, types, rules, duplicate names)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise JobsFileError(f"{source} is not valid YAML", details=[str(exc)]) from None
    jobs, problems = validate_entries(data)
    if problems:
        count = f"{len(problems)} problem" + ("s" if len(problems) != 1 else "")
        raise JobsFileError(
            f"{source} is not valid ({count}); nothing was loaded", details=problems
        )
    return jobs


def dump_jobs_yaml(jobs: Iterable[JobOptions]) -> str:
    """YAML text of ``jobs`` that :func:`parse_jobs_file` reads back to equal options."""
    entries: Sequence[dict[str, Any]] = [job.to_entry() for job in jobs]
    if not entries:
        return "[]\n"
    return yaml.safe_dump(list(entries), sort_keys=False, allow_unicode=True, width=1000)
