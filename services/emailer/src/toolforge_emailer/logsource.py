"""Where the last lines of a job's output come from.

:class:`LogSource` is the interface; :class:`PodLogSource` reads the pod log API (the
container's log on its node, so it exists only while the pod does: the emailer reads it as
soon as it sees a run end). When the logs API (issue 17) exists, a source that asks it fills
the same interface, and the output of pods that are already gone can be mailed too.
"""

from __future__ import annotations

import logging
from typing import Protocol

from toolforge_emailer.events import JobEvent
from toolforge_emailer.storage import EmailerStorage
from toolforge_kit.errors import APIError

__all__ = ["LogSource", "PodLogSource", "fill_output"]

_log = logging.getLogger(__name__)
_MAX_LINE = 300


class LogSource(Protocol):
    """Gives the last lines of one run of a job's container."""

    async def last_lines(self, event: JobEvent, namespace: str, lines: int) -> list[str] | None:
        """Up to ``lines`` last lines of ``event``'s run, ``None`` when there is no output to
        read. Raises :class:`~toolforge_kit.APIError` when the source fails."""
        ...


class PodLogSource:
    """The pod log API (``GET .../pods/<pod>/log?tailLines=N``, ``previous`` for the run before
    a restart), as the emailer's own identity."""

    def __init__(self, storage: EmailerStorage) -> None:
        self.storage = storage

    async def last_lines(self, event: JobEvent, namespace: str, lines: int) -> list[str] | None:
        """See :class:`LogSource`."""
        if event.container is None:
            return None
        return await self.storage.log_tail(
            namespace, event.pod, event.container, lines, previous=event.previous
        )


async def fill_output(
    source: LogSource, event: JobEvent, namespace: str, lines: int, *, filelog: bool
) -> None:
    """Set ``event.output`` (or ``output_note``) for an ended run; lines are cut at 300
    characters. A failing source is logged and noted in the mail, never fatal."""
    if not event.ended or lines == 0:
        return
    if filelog:
        event.output_note = "the job writes its output to files in the tool's home (filelog)"
        return
    try:
        found = await source.last_lines(event, namespace, lines)
    except APIError as exc:
        _log.warning("output of %s/%s unavailable: %s", namespace, event.pod, exc.message)
        event.output_note = "the output could not be read"
        return
    if found is None:
        event.output_note = "the output is no longer available"
    elif not found:
        event.output_note = "no output"
    else:
        event.output = [
            line if len(line) <= _MAX_LINE else line[: _MAX_LINE - 1] + "…" for line in found
        ]
