"""What the log store benchmarks share (``bench/logstore.py``, ``bench/logs_api.py``): result
checks, percentiles, disk and memory of a process, and the synthetic log line."""

from __future__ import annotations

import subprocess
from pathlib import Path

__all__ = ["check", "du_mib", "line_text", "percentile", "rss_mib"]


def check(ok: bool, message: str) -> None:
    """Stop the benchmark when a result is wrong (numbers of wrong answers mean nothing)."""
    if not ok:
        raise SystemExit(f"check failed: {message}")


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def du_mib(path: Path) -> float:
    """Disk use of ``path`` in MiB (``du -sb``)."""
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0]) / 2**20


def rss_mib(pid: int) -> tuple[float, float]:
    """``(RSS, peak RSS)`` of process ``pid`` in MiB, from ``/proc/<pid>/status``."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def line_text(i: int) -> str:
    """The ``i``-th synthetic log line (about 90 characters, varied enough for compression)."""
    return (
        f"2026-12-04 12:00:00,000 INFO worker.batch{i % 97:02d} processed item {i:07d} "
        f"in {i % 1000} ms (queue {i % 31})"
    )
