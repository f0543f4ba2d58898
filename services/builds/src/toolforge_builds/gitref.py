"""Resolve a git ref of a public repository to a commit id with ``git ls-remote``.

The build records the commit it builds (``SOURCE_REFERENCE``), so a branch that moves while
the build waits does not change what is built.

``git`` runs as an asyncio subprocess in its own process group, with a hard timeout (the whole
group is killed), no terminal prompts (``GIT_TERMINAL_PROMPT=0``), no system/global git
configuration (so no credential helpers and no ``url.*.insteadOf`` rewrites), an empty
credential helper list, redirects not followed, and only the ``https`` protocol allowed
(``-c protocol.allow=never -c protocol.https.allow=always``). Output is capped.

Ref resolution follows gitrevisions(7) for the names a remote advertises: ``HEAD`` and
``refs/...`` are taken as they are; a short name ``X`` is looked up as ``refs/X``,
``refs/tags/X``, ``refs/heads/X`` in this order. Annotated tags resolve to the commit they
point to (the peeled ``^{}`` entry). A full commit id (40 or 64 hex digits) is returned without
asking the remote: remotes do not advertise arbitrary commits, so it cannot be checked here;
the build's clone step fails if it does not exist.

Errors are :class:`GitRefError` subclasses whose message is meant for the user.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from collections.abc import Mapping
from pathlib import Path

from toolforge_builds.rules import COMMIT_RE

__all__ = [
    "DEFAULT_REF",
    "GitRefError",
    "LsRemoteTimeoutError",
    "RefNotFoundError",
    "RemoteUnreachableError",
    "RepositoryNotFoundError",
    "candidate_refs",
    "ls_remote",
    "parse_ls_remote",
    "pick_commit",
    "resolve_ref",
]

DEFAULT_REF = "HEAD"
MAX_OUTPUT_BYTES = 4 * 1024 * 1024
_LINE_RE = re.compile(r"^([0-9a-f]{40}|[0-9a-f]{64})\t(\S+)$")
_HTTP_STATUS_RE = re.compile(r"returned error: (\d{3})")


class GitRefError(Exception):
    """A ref could not be resolved; ``str()`` is a message for the user."""


class RemoteUnreachableError(GitRefError):
    """The git server could not be reached (DNS, connection, TLS, HTTP error)."""


class RepositoryNotFoundError(GitRefError):
    """The server answered but has no public repository at that URL."""


class RefNotFoundError(GitRefError):
    """The repository has no branch or tag of that name."""


class LsRemoteTimeoutError(GitRefError):
    """``git ls-remote`` did not finish in time."""


def parse_ls_remote(output: str) -> dict[str, str]:
    """``git ls-remote`` output (``<commit>\\t<refname>`` lines) -> ``{refname: commit}``.

    Peeled tag lines keep their ``^{}`` suffix. Lines that do not match (``ref: ...`` symref
    lines, warnings) are skipped.
    """
    refs: dict[str, str] = {}
    for line in output.splitlines():
        match = _LINE_RE.match(line.strip())
        if match:
            refs[match.group(2)] = match.group(1)
    return refs


def candidate_refs(ref: str) -> list[str]:
    """Full ref names ``ref`` may stand for, in gitrevisions(7) precedence."""
    if ref == "HEAD" or ref.startswith("refs/"):
        return [ref]
    return [f"refs/{ref}", f"refs/tags/{ref}", f"refs/heads/{ref}"]


def pick_commit(refs: Mapping[str, str], ref: str) -> str | None:
    """The commit ``ref`` names among the advertised ``refs`` (peeled tags preferred)."""
    for name in candidate_refs(ref):
        if f"{name}^{{}}" in refs:
            return refs[f"{name}^{{}}"]
        if name in refs:
            return refs[name]
    return None


def _environment(ca_file: Path | None) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": "/nonexistent",
        "LC_ALL": "C",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "/bin/false",
        "SSH_ASKPASS": "/bin/false",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_PROTOCOL_FROM_USER": "0",
    }
    if ca_file is not None:
        env["GIT_SSL_CAINFO"] = str(ca_file)
    return env


def _command(git: str, url: str, patterns: list[str], *, allow_file: bool) -> list[str]:
    config = [
        "protocol.allow=never",
        "protocol.https.allow=always",
        "credential.helper=",
        "core.askPass=",
        "http.followRedirects=false",
    ]
    if allow_file:
        config.append("protocol.file.allow=always")
    argv = [git]
    for item in config:
        argv += ["-c", item]
    return [*argv, "ls-remote", "--", url, *patterns]


def _error_for(stderr: str, url: str) -> GitRefError:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    detail = next((line for line in reversed(lines) if line.startswith("fatal:")), "")
    detail = detail or (lines[-1] if lines else "no output")
    said = f" (git: {detail[:300]})"
    lowered = stderr.lower()
    status = _HTTP_STATUS_RE.search(stderr)
    code = int(status.group(1)) if status else None
    if (
        code in (401, 403, 404)
        or "could not read username" in lowered
        or ("repository" in lowered and "not found" in lowered)
    ):
        return RepositoryNotFoundError(
            f"no public git repository at {url}: it does not exist or needs credentials{said}"
        )
    if code is not None and 300 <= code < 400:
        return RemoteUnreachableError(
            f"{url} redirects elsewhere; use the repository's final https URL{said}"
        )
    if "does not appear to be a git repository" in lowered or "not a git repository" in lowered:
        return RepositoryNotFoundError(f"no git repository at {url}{said}")
    return RemoteUnreachableError(f"cannot reach the git repository at {url}{said}")


async def _read_capped(stream: asyncio.StreamReader | None) -> bytes:
    if stream is None:
        return b""
    data = bytearray()
    while chunk := await stream.read(65536):
        data += chunk
        if len(data) > MAX_OUTPUT_BYTES:
            raise GitRefError("git ls-remote printed too much output")
    return bytes(data)


def _kill_group(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


async def ls_remote(
    url: str,
    patterns: list[str],
    *,
    timeout: float,
    ca_file: Path | None = None,
    git: str = "git",
    allow_file_urls_for_tests: bool = False,
) -> dict[str, str]:
    """Run ``git ls-remote -- url patterns...`` and return ``{refname: commit}``.

    Only ``https://`` URLs are accepted; ``allow_file_urls_for_tests=True`` also allows
    ``file://`` URLs and exists for tests only (never pass it from the API). ``timeout`` is
    in seconds. Raises :class:`LsRemoteTimeoutError`, :class:`RemoteUnreachableError`,
    :class:`RepositoryNotFoundError` or :class:`GitRefError` (git missing, output too large).
    """
    allowed = ("https://", "file://") if allow_file_urls_for_tests else ("https://",)
    if not url.startswith(allowed):
        raise GitRefError(f"only https:// repository URLs are allowed (got {url!r})")
    if any(pattern.startswith("-") for pattern in patterns):
        raise GitRefError("ref patterns must not start with '-'")
    argv = _command(git, url, patterns, allow_file=allow_file_urls_for_tests)
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=_environment(ca_file),
            start_new_session=True,
        )
    except FileNotFoundError:
        raise GitRefError(f"git executable {git!r} not found on the server") from None
    try:
        async with asyncio.timeout(timeout):
            stdout, stderr = await asyncio.gather(
                _read_capped(process.stdout), _read_capped(process.stderr)
            )
            returncode = await process.wait()
    except TimeoutError:
        _kill_group(process)
        await process.wait()
        raise LsRemoteTimeoutError(
            f"git ls-remote {url} did not answer within {timeout:g} seconds"
        ) from None
    except BaseException:
        _kill_group(process)
        await process.wait()
        raise
    if returncode != 0:
        raise _error_for(stderr.decode(errors="replace"), url)
    return parse_ls_remote(stdout.decode(errors="replace"))


async def resolve_ref(
    url: str,
    ref: str | None = None,
    *,
    timeout: float,
    ca_file: Path | None = None,
    git: str = "git",
    allow_file_urls_for_tests: bool = False,
) -> str:
    """The commit id ``ref`` (default ``HEAD``) names in the repository at ``url``.

    ``ref`` must already be validated (:func:`toolforge_builds.models.validate_ref`). A full
    commit id is returned as it is, without network access. Raises :class:`RefNotFoundError` when
    the repository has no such ref, and whatever :func:`ls_remote` raises.
    """
    ref = ref or DEFAULT_REF
    if COMMIT_RE.fullmatch(ref):
        return ref
    # ls-remote matches patterns against the end of ref names, at '/' boundaries; the peeled
    # line of an annotated tag ("<name>^{}") only matches a pattern that ends in ^{} too.
    patterns = [ref] if ref == DEFAULT_REF else [ref, f"{ref}^{{}}"]
    refs = await ls_remote(
        url,
        patterns,
        timeout=timeout,
        ca_file=ca_file,
        git=git,
        allow_file_urls_for_tests=allow_file_urls_for_tests,
    )
    commit = pick_commit(refs, ref)
    if commit is None:
        if ref == DEFAULT_REF:
            raise RefNotFoundError(f"the repository at {url} has no HEAD (is it empty?)")
        raise RefNotFoundError(f"the repository at {url} has no branch or tag named {ref!r}")
    return commit
