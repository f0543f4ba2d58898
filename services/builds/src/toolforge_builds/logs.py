"""Build log processing: which containers to show, in which order, formatted and redacted.

Pure and streaming; the storage layer reads the pod logs (``timestamps=true``) and feeds the
raw chunks through :class:`ContainerLogStream`.

Order (REFERENCE.md "Logs upstream"): the TaskRun pods of a PipelineRun in pipeline task
order (``status.pipelineSpec`` tasks, then finally tasks; ties and unknown tasks by start
time), and in each pod the init containers, then the containers, in spec order.

What is hidden, and why:

* **Tekton internals** — init containers ``prepare``, ``place-scripts``,
  ``working-dir-initializer`` (``place-tools``, ``step-init`` in older releases) only copy
  Tekton's entrypoint and scripts; their output means nothing to users.
* **Credential-bearing steps** — the steps that export/push the image run with the registry
  credentials of the image-push ServiceAccount (REFERENCE.md: users may not read the raw pod
  logs for this reason; upstream shows them, a known gap). By default ``step-export*``,
  ``step-image-push*`` and ``step-push*``.

  Both lists are one setting, ``BuildsSettings.log_deny_list`` (``fnmatch`` globs on the
  container name). A hidden container produces exactly one line,
  ``[<container>] output hidden``, so users see that the step ran.
* **Registry credentials** — wherever they appear in a shown container: the password, the
  ``user:password`` pair, its URL-encoded and JSON-escaped forms and its base64 forms (the
  docker config ``auth`` field is ``base64(user:password)``, and a whole docker config may be
  base64-encoded again; :func:`base64_forms` covers the secret at any alignment inside a longer
  base64 text) are replaced with ``***``.
* **Build environment variable values** — users pass tokens as build env vars; their values
  are replaced with ``***`` in all output.

Secrets shorter than :data:`MIN_SECRET_LENGTH` (6) characters are *not* redacted: env values
like ``1``, ``true``, ``prod`` or ``debug`` would otherwise turn ordinary words of every log
line into ``***`` while protecting nothing (such short values are not credentials). A secret
that spans several lines is redacted line by line (each line of it of at least 6 characters),
because the kubelet puts a timestamp in front of every line.
"""

from __future__ import annotations

import base64
import codecs
import fnmatch
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from toolforge_builds.status import parse_time

__all__ = [
    "HIDDEN_TEXT",
    "MIN_SECRET_LENGTH",
    "REDACTED",
    "ContainerLogStream",
    "LogSource",
    "Redactor",
    "base64_forms",
    "build_log_redactor",
    "container_names",
    "format_line",
    "hidden_line",
    "is_hidden",
    "ndjson",
    "order_taskrun_pods",
    "pipeline_task_order",
    "plan_log_sources",
    "registry_credential_secrets",
    "split_timestamp",
]

REDACTED = "***"
HIDDEN_TEXT = "output hidden"
MIN_SECRET_LENGTH = 6
#: Longest line emitted; longer lines are cut into pieces (memory bound per stream).
MAX_LINE_LENGTH = 16384
PIPELINE_TASK_LABEL = "tekton.dev/pipelineTask"
_FAR_FUTURE = datetime.max.replace(tzinfo=UTC)
_NEWLINE_RE = re.compile(r"\r?\n")
# kubelet's prefix with timestamps=true: RFC 3339 with nanoseconds, then one space.
_TIMESTAMP_RE = re.compile(
    r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2}))(?: |$)"
)


# ------------------------------------------------------------------------------ which & order


def container_names(pod: Mapping[str, Any]) -> list[str]:
    """Names of a pod's init containers, then its containers, in spec order."""
    spec = pod.get("spec") or {}
    return [
        str(container["name"])
        for key in ("initContainers", "containers")
        for container in spec.get(key) or ()
        if isinstance(container, Mapping) and container.get("name")
    ]


def pipeline_task_order(pipelinerun: Mapping[str, Any]) -> list[str]:
    """Pipeline task names in execution-plan order: ``status.pipelineSpec.tasks`` then
    ``finally``; when Tekton has not resolved the spec yet, the order of
    ``status.childReferences``."""
    status = pipelinerun.get("status") or {}
    spec = status.get("pipelineSpec") or {}
    names = [
        str(task["name"])
        for key in ("tasks", "finally")
        for task in spec.get(key) or ()
        if isinstance(task, Mapping) and task.get("name")
    ]
    if names:
        return names
    return [
        str(child["pipelineTaskName"])
        for child in status.get("childReferences") or ()
        if isinstance(child, Mapping) and child.get("pipelineTaskName")
    ]


def order_taskrun_pods(
    pods: Iterable[Mapping[str, Any]], task_order: Sequence[str] = ()
) -> list[Mapping[str, Any]]:
    """TaskRun pods sorted by the index of their ``tekton.dev/pipelineTask`` label in
    ``task_order`` (unknown tasks last), then ``status.startTime``, creation time and name."""
    index = {name: i for i, name in enumerate(task_order)}

    def key(pod: Mapping[str, Any]) -> tuple[int, datetime, datetime, str]:
        metadata = pod.get("metadata") or {}
        task = (metadata.get("labels") or {}).get(PIPELINE_TASK_LABEL)
        return (
            index.get(task, len(index)) if isinstance(task, str) else len(index),
            parse_time((pod.get("status") or {}).get("startTime")) or _FAR_FUTURE,
            parse_time(metadata.get("creationTimestamp")) or _FAR_FUTURE,
            str(metadata.get("name") or ""),
        )

    return sorted(pods, key=key)


def is_hidden(container: str, deny: Iterable[str]) -> bool:
    """Whether ``container`` matches one of the ``fnmatch`` globs in ``deny`` (case-sensitive)."""
    return any(fnmatch.fnmatchcase(container, pattern) for pattern in deny)


@dataclass(frozen=True)
class LogSource:
    """One container to show (or to announce as hidden), in output order."""

    pod: str
    container: str
    task: str
    hidden: bool


def plan_log_sources(
    pods: Iterable[Mapping[str, Any]], *, deny: Iterable[str], task_order: Sequence[str] = ()
) -> list[LogSource]:
    """Every container of every TaskRun pod, in output order, marked hidden per ``deny``."""
    deny = tuple(deny)
    sources = []
    for pod in order_taskrun_pods(pods, task_order):
        metadata = pod.get("metadata") or {}
        task = str((metadata.get("labels") or {}).get(PIPELINE_TASK_LABEL) or "")
        for container in container_names(pod):
            sources.append(
                LogSource(
                    pod=str(metadata.get("name") or ""),
                    container=container,
                    task=task,
                    hidden=is_hidden(container, deny),
                )
            )
    return sources


# ----------------------------------------------------------------------------------- formatting


def split_timestamp(raw_line: str) -> tuple[str | None, str]:
    """Split kubelet's ``<RFC 3339 timestamp> <text>`` into ``(timestamp, text)``;
    ``(None, raw_line)`` when the line has no timestamp."""
    match = _TIMESTAMP_RE.match(raw_line)
    if match is None:
        return None, raw_line
    return match.group(1), raw_line[match.end() :]


def format_line(container: str, timestamp: str | None, text: str) -> str:
    """``[<container>] <timestamp> <text>`` (REFERENCE.md), without the timestamp when
    there is none."""
    if timestamp is None:
        return f"[{container}] {text}"
    return f"[{container}] {timestamp} {text}"


def hidden_line(container: str) -> str:
    """The one line shown for a hidden container: ``[<container>] output hidden``."""
    return f"[{container}] {HIDDEN_TEXT}"


def ndjson(line: str) -> bytes:
    """One NDJSON record ``{"line": "..."}`` followed by ``\\n`` (UTF-8)."""
    return json.dumps({"line": line}, ensure_ascii=False).encode() + b"\n"


# ------------------------------------------------------------------------------------ redaction


def base64_forms(secret: str) -> list[str]:
    """Base64 texts that reveal ``secret`` (UTF-8): its padded standard encoding, and for
    each of the 3 byte alignments the characters that encode only ``secret``'s bits when it
    is embedded in a longer base64 text (standard and URL-safe alphabets; RFC 4648)."""
    raw = secret.encode()
    forms = {base64.b64encode(raw).decode()}
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw).decode().rstrip("=")
        start = -(-shift * 8 // 6)  # first character with no bit of the prefix
        end = (shift + len(raw)) * 8 // 6  # characters with no bit of what follows
        forms.add(encoded[start:end])
    forms |= {form.replace("+", "-").replace("/", "_") for form in forms}
    return sorted(form for form in forms if form)


def registry_credential_secrets(username: str, password: str) -> list[str]:
    """Texts that reveal the registry credentials: the password (raw, URL-encoded,
    JSON-escaped), ``user:password``, the base64 forms of both (:func:`base64_forms`), and the
    base64 forms of the docker config ``auth`` value (a docker config that is itself
    base64-encoded, as in a Secret's ``.dockerconfigjson``)."""
    pair = f"{username}:{password}"
    auth = base64.b64encode(pair.encode()).decode()  # docker config "auth" field
    secrets = {
        password,
        pair,
        quote(password, safe=""),
        json.dumps(password)[1:-1],
        *base64_forms(pair),
        *base64_forms(password),
        *base64_forms(auth),  # a whole docker config, base64-encoded (Secret data)
    }
    return sorted(secret for secret in secrets if secret)


def build_log_redactor(
    envvar_values: Iterable[str], registry_credentials: tuple[str, str] | None
) -> Redactor:
    """The :class:`Redactor` for one build's logs: its env var values and, when known, the
    registry ``(username, password)`` in every form :func:`registry_credential_secrets`
    lists."""
    secrets = list(envvar_values)
    if registry_credentials is not None:
        secrets += registry_credential_secrets(*registry_credentials)
    return Redactor(secrets)


class Redactor:
    """Streaming replacement of secrets with ``***``.

    ``feed()`` takes the next chunk (``bytes`` are decoded as UTF-8, invalid bytes become
    U+FFFD, a multi-byte character split across chunks is kept whole; do not mix ``bytes``
    and ``str`` in one stream) and returns the text that is safe to emit; ``flush()`` returns
    the rest at the end of the stream and resets the redactor.

    Guarantees:

    * Every character covered by an occurrence of any secret is replaced; overlapping or
      adjacent occurrences (of the same or different secrets) become a single ``***``.
      Output is the same however the input is split into chunks.
    * Secrets never span lines (see the module docstring), so everything up to the last
      newline is emitted at once; of an unfinished line at most ``len(longest secret) - 1``
      characters are held back. A partial secret is never emitted.
    * Secrets shorter than ``min_length`` are ignored (module docstring).
    """

    def __init__(self, secrets: Iterable[str], *, min_length: int = MIN_SECRET_LENGTH) -> None:
        if min_length < 1:
            raise ValueError("min_length must be at least 1")
        pieces = {
            piece
            for secret in secrets
            for piece in _NEWLINE_RE.split(secret)
            if len(piece) >= min_length
        }
        # Longest first: at one position the longest secret wins, so one match covers it.
        self._secrets = tuple(sorted(pieces, key=lambda piece: (-len(piece), piece)))
        self._pattern = (
            re.compile("(?=(" + "|".join(re.escape(piece) for piece in self._secrets) + "))")
            if self._secrets
            else None
        )
        self._hold = len(self._secrets[0]) - 1 if self._secrets else 0
        self._reset()

    def _reset(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self._forced = 0  # leading characters of _pending known to be part of a secret
        self._joined = False  # output so far ends with *** whose secret reaches _pending

    @property
    def secrets(self) -> tuple[str, ...]:
        """The effective secrets (split into lines, short ones dropped), longest first."""
        return self._secrets

    def fresh(self) -> Redactor:
        """A new redactor for another stream with the same secrets (no recompilation)."""
        clone = object.__new__(Redactor)
        clone._secrets, clone._pattern, clone._hold = self._secrets, self._pattern, self._hold
        clone._reset()
        return clone

    def feed(self, chunk: bytes | str) -> str:
        """Redacted text that can be emitted now (possibly ``""``)."""
        text = self._decoder.decode(chunk) if isinstance(chunk, bytes) else chunk
        return self._process(self._pending + text, final=False)

    def flush(self) -> str:
        """The rest of the stream, redacted; the redactor is then ready for a new stream."""
        text = self._decoder.decode(b"", final=True)
        out = self._process(self._pending + text, final=True)
        self._reset()
        return out

    def redact(self, text: str) -> str:
        """``text`` redacted as a whole stream (does not touch this redactor's state)."""
        other = self.fresh()
        return other.feed(text) + other.flush()

    def _spans(self, pattern: re.Pattern[str], buf: str) -> list[tuple[int, int]]:
        spans = [(0, self._forced)] if self._forced else []
        spans += [(m.start(), m.start() + len(m.group(1))) for m in pattern.finditer(buf)]
        merged: list[tuple[int, int]] = []
        for start, end in sorted(spans):
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        return merged

    def _process(self, buf: str, *, final: bool) -> str:
        if self._pattern is None:
            self._pending = ""
            return buf
        # Nothing before the last newline or len(longest) - 1 characters can still be part
        # of a secret that is not complete yet.
        cut = len(buf) if final else max(len(buf) - self._hold, buf.rfind("\n") + 1, 0)
        if cut == 0:
            self._pending = buf
            return ""
        out: list[str] = []
        pos = 0
        forced = 0
        joined = False
        for start, end in self._spans(self._pattern, buf):
            if start >= cut:
                break
            out.append(buf[pos:start])
            if not (start == 0 and self._joined):
                out.append(REDACTED)
            pos = min(end, cut)
            if end >= cut:
                forced, joined = end - cut, True
        out.append(buf[pos:cut])
        self._pending, self._forced, self._joined = buf[cut:], forced, joined
        return "".join(out)


# ----------------------------------------------------------------------------- per container


class ContainerLogStream:
    """One container's raw log (kubelet format, ``timestamps=true``) -> formatted lines.

    Chunks go through the :class:`Redactor` first, then are cut into lines (``\\n``, a
    trailing ``\\r`` is dropped) formatted by :func:`format_line`. Lines longer than
    ``max_line_length`` are emitted in pieces; continuation pieces carry no timestamp.
    """

    def __init__(
        self, container: str, redactor: Redactor, *, max_line_length: int = MAX_LINE_LENGTH
    ) -> None:
        if max_line_length < 1:
            raise ValueError("max_line_length must be at least 1")
        self.container = container
        self._redactor = redactor.fresh()
        self._max = max_line_length
        self._partial = ""
        self._at_line_start = True

    def feed(self, chunk: bytes | str) -> list[str]:
        """Complete lines available after ``chunk``."""
        return self._lines(self._redactor.feed(chunk), final=False)

    def close(self) -> list[str]:
        """The remaining lines at the end of the stream (an unterminated last line too)."""
        return self._lines(self._redactor.flush(), final=True)

    def _emit(self, piece: str, lines: list[str]) -> None:
        if self._at_line_start:
            timestamp, text = split_timestamp(piece)
        else:
            timestamp, text = None, piece
        lines.append(format_line(self.container, timestamp, text))

    def _lines(self, text: str, *, final: bool) -> list[str]:
        pieces = (self._partial + text).split("\n")
        self._partial = pieces.pop()
        lines: list[str] = []
        for raw in pieces:
            raw = raw.removesuffix("\r")
            while len(raw) > self._max:
                self._emit(raw[: self._max], lines)
                raw, self._at_line_start = raw[self._max :], False
            self._emit(raw, lines)
            self._at_line_start = True
        # Pieces are cut at the same offsets whether the line arrives whole or in chunks.
        while len(self._partial) > self._max:
            self._emit(self._partial[: self._max], lines)
            self._partial, self._at_line_start = self._partial[self._max :], False
        if final and self._partial:
            self._emit(self._partial.removesuffix("\r"), lines)
            self._partial, self._at_line_start = "", True
        return lines
