"""Several gateway processes on one port: a small pre-fork supervisor (as nginx's master).

With ``workers: N > 1`` the ``toolforge-gateway`` process binds the listening socket, then
forks N workers that each run the whole gateway (uvicorn, the app, its backend pools) on that
shared socket; the kernel hands each new connection to a worker that is waiting in
``accept``, so a busy worker takes fewer. The supervisor itself serves nothing:

- metrics: each worker writes its counters to memory-mapped files in a fresh directory
  (prometheus_client's multiprocess mode, ``PROMETHEUS_MULTIPROC_DIR``); ``/metrics`` on any
  worker sums them over all workers, dead ones included, so totals never go back;
- SIGTERM/SIGINT: the supervisor closes its copy of the listening socket and passes the signal
  on; each worker drains as a single gateway does (stops accepting, gives in-flight requests
  ``graceful_shutdown_seconds``). Once all have exited, the supervisor exits by re-raising the
  signal. Workers that are still alive ``graceful_shutdown_seconds`` + 5 s later are killed;
- a worker that dies is started again, unless it could not start (exit status 3, uvicorn's
  start-up failure: a broken set-up, such as a backend CA that cannot be read) or workers died
  :data:`MAX_RESTARTS` times within :data:`RESTART_WINDOW_SECONDS`: then the supervisor stops
  every worker and exits with status 1.

Before forking, the supervisor builds the uvicorn configuration once (so invalid settings and
unreadable certificates fail the command with status 2, as with one process) and freezes the
garbage collector's view of the imported modules (:func:`gc.freeze`), so the workers keep
sharing those pages with the supervisor instead of copying them.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import uvicorn
from prometheus_client import values

from toolforge_gateway.settings import GatewaySettings

__all__ = [
    "MAX_RESTARTS",
    "MULTIPROC_ENV",
    "RESTART_WINDOW_SECONDS",
    "STARTUP_FAILURE",
    "Supervisor",
    "listening_socket",
]

log = logging.getLogger(__name__)

#: The environment variable with prometheus_client's multiprocess directory.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Exit status of a worker whose server did not start (as uvicorn's command uses).
STARTUP_FAILURE = 3
#: More restarts than this within the window stop the gateway (a crash loop).
MAX_RESTARTS = 5
RESTART_WINDOW_SECONDS = 30.0
_KILL_GRACE_SECONDS = 5.0


def listening_socket(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A TCP socket listening on ``host:port`` (IPv4 or IPv6), to be shared by the workers.

    Raises :class:`OSError` when the address cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock


class Supervisor:
    """Runs ``settings.workers`` gateway workers; see the module docstring.

    ``build_server`` makes a worker's :class:`uvicorn.Server` (called in the worker, after the
    fork). :meth:`run` blocks until the workers have exited after a signal.
    """

    def __init__(
        self,
        settings: GatewaySettings,
        build_server: Callable[[GatewaySettings], uvicorn.Server],
    ) -> None:
        self.settings = settings
        self.build_server = build_server
        self.socket = listening_socket(settings.host, settings.port)
        self._workers: set[int] = set()
        self._signal: int | None = None

    def run(self) -> None:
        metrics_dir = Path(tempfile.mkdtemp(prefix="toolforge-gateway-metrics-"))
        os.environ[MULTIPROC_ENV] = str(metrics_dir)
        previous = {
            sig: signal.signal(sig, self._handle_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        gc.collect()
        gc.freeze()
        failed = False
        try:
            for _ in range(self.settings.workers):
                self._start_worker()
            # The address as bound (the port the kernel chose for port 0), as uvicorn logs it
            # for one process; the workers, serving a socket they were given, log none.
            host, port = self.socket.getsockname()[:2]
            log.info(
                "gateway running on https://%s:%d with %d workers",
                f"[{host}]" if ":" in host else host,
                port,
                self.settings.workers,
            )
            failed = self._watch()
        finally:
            self._stop_workers()
            self.socket.close()
            shutil.rmtree(metrics_dir, ignore_errors=True)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if self._signal is not None:
            signal.raise_signal(self._signal)
        if failed:
            raise SystemExit(1)

    def _start_worker(self) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                # prometheus_client chose its value class at import, before the directory
                # was set: make the metrics created from now on use the shared files.
                values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
                server = self.build_server(self.settings)
                server.run(sockets=[self.socket])
                code = 0 if server.started else STARTUP_FAILURE
            except BaseException:
                log.exception("gateway worker %d failed", os.getpid())
            finally:
                logging.shutdown()
                os._exit(code)
        self._workers.add(pid)

    def _handle_signal(self, sig: int, _frame: FrameType | None) -> None:
        if self._signal is None:
            self._signal = sig
            # New connections are refused from now on (the workers close their copies too).
            self.socket.close()
        for pid in self._workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def _watch(self) -> bool:
        """Wait for workers to exit and restart them until a signal comes; returns True when
        a worker failed at start-up."""
        restarts: list[float] = []
        while self._workers and self._signal is None:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                return False
            if pid not in self._workers or self._signal is not None:
                self._workers.discard(pid)
                continue
            self._workers.discard(pid)
            code = os.waitstatus_to_exitcode(status)
            now = time.monotonic()
            restarts = [t for t in restarts if now - t < RESTART_WINDOW_SECONDS] + [now]
            if code == STARTUP_FAILURE or len(restarts) > MAX_RESTARTS:
                log.error("gateway worker %d exited (status %d): stopping the gateway", pid, code)
                return True
            log.error("gateway worker %d exited (status %d): starting another", pid, code)
            self._start_worker()
        return False

    def _stop_workers(self) -> None:
        """Pass SIGTERM to the workers left, wait for their drain, then kill stragglers."""
        for pid in self._workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, self._signal or signal.SIGTERM)
        deadline = time.monotonic() + self.settings.graceful_shutdown_seconds + _KILL_GRACE_SECONDS
        while self._workers:
            for pid in list(self._workers):
                with contextlib.suppress(ChildProcessError):
                    done, _ = os.waitpid(pid, os.WNOHANG)
                    if done == 0:
                        continue
                self._workers.discard(pid)
            if self._workers and time.monotonic() > deadline:
                for pid in self._workers:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                deadline = float("inf")
            time.sleep(0.05)
