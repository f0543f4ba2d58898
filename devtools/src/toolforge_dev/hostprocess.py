"""A server the tests and benchmarks run as a child process of their own (the registry, the
log store, Mailpit): start it, wait until it is ready, stop it, read its log.

The platform itself runs these servers through :class:`toolforge_dev.services.PlatformServices`
(one supervisor for every host service); this base is for the standalone instances that tests
and benchmarks make (``LocalRegistry.standalone()``, ``LogStore.standalone()``, ...), so that
each server module keeps only what is its own: its files, its command line and its readiness
check.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import ClassVar

__all__ = ["OwnProcess"]


class OwnProcess:
    """Mixin: a server process started by :meth:`start`, logging to ``log_path``.

    A subclass sets ``log_path`` and ``_proc = None`` in ``__init__``, the class variables
    :attr:`process_name` and :attr:`error`, and implements :meth:`prepare`, :meth:`argv` and
    :meth:`is_ready`; it may override :meth:`env` (extra environment variables) and
    :meth:`_started` (e.g. to learn an OS-assigned port from the log first).
    """

    #: The server's name in error messages (``"the registry"``, ``"mailpit"``).
    process_name: ClassVar[str]
    #: The exception :meth:`start` raises.
    error: ClassVar[type[Exception]]

    log_path: Path
    _proc: subprocess.Popen[bytes] | None

    def prepare(self) -> object:
        """Write the files the server reads (configuration, certificates); idempotent. What it
        returns is the subclass's (the registry returns its configuration file)."""
        raise NotImplementedError

    def argv(self) -> list[str]:
        """The server's command line."""
        raise NotImplementedError

    def is_ready(self) -> bool:
        """The server answers its readiness check."""
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        """Environment variables added to the caller's for the server (default: none)."""
        return {}

    def _started(self, log_offset: int) -> bool:
        """Whether the starting server is ready; ``log_offset`` is where this start's log
        output begins in ``log_path``."""
        return self.is_ready()

    def start(self, timeout: float = 20) -> None:
        """:meth:`prepare`, run :meth:`argv` (stdout and stderr appended to ``log_path``) and
        wait until it is ready; nothing when it runs already.

        Raises:
            error: (the subclass's :attr:`error`, with the log tail) when the process exits at
                start-up or is not ready within ``timeout`` seconds (it is stopped then).
        """
        if self.running:
            return
        self.prepare()
        with self.log_path.open("ab") as log:
            offset = log.tell()
            proc = subprocess.Popen(
                self.argv(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, **self.env()},
            )
        self._proc = proc
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise self.error(f"{self.process_name} exited at start-up:\n{self.log_tail()}")
            if self._started(offset):
                return
            time.sleep(0.05)
        self.stop()
        raise self.error(
            f"{self.process_name} is not ready after {timeout:.0f} s:\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM the process of :meth:`start` (SIGKILL after ``timeout`` seconds) and reap it."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    @property
    def running(self) -> bool:
        """The process of :meth:`start` is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The pid of the process of :meth:`start`, while it runs."""
        return self._proc.pid if self._proc is not None and self.running else None

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of ``log_path`` (``(no log)`` when it cannot be read)."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
