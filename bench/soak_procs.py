"""The soak's view of its processes: resident memory and CPU time, read from ``/proc``.

Linux only, standard library only (psutil is no dependency of the platform): a
process's ``VmRSS`` from ``/proc/PID/status``, its CPU seconds from ``/proc/PID/stat``,
and its children from every process's parent id.

>>> sample = ProcessSample.of(os.getpid())
>>> sample is not None and sample.rss_bytes > 0
True
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ProcessSample", "ProcessSeries", "children_of", "cpu_ticks", "load_average"]

PROC = Path("/proc")
TICKS_PER_S = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcessSample:
    """One reading of one process."""

    rss_bytes: int
    cpu_s: float

    @classmethod
    def of(cls, pid: int) -> ProcessSample | None:
        """The process's resident set and CPU seconds so far; ``None`` once it is gone."""
        try:
            status = (PROC / str(pid) / "status").read_text()
            stat = (PROC / str(pid) / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            return None
        rss_kib = 0
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss_kib = int(line.split()[1])
                break
        # The command in parentheses may hold spaces: the fields start after its ")".
        fields = stat[stat.rindex(")") + 2 :].split()
        utime, stime = int(fields[11]), int(fields[12])
        return cls(rss_bytes=rss_kib * 1024, cpu_s=(utime + stime) / TICKS_PER_S)


def children_of(pid: int) -> list[int]:
    """The ids of ``pid``'s direct children, in ascending order."""
    found: list[int] = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


@dataclass
class ProcessSeries:
    """Readings of one named process over the soak, one per sampling round."""

    name: str
    pid: int
    samples: list[ProcessSample | None] = field(default_factory=list)

    def take(self) -> None:
        self.samples.append(ProcessSample.of(self.pid))

    def rss_mib(self, index: int) -> float | None:
        sample = self.samples[index] if -len(self.samples) <= index < len(self.samples) else None
        return None if sample is None else sample.rss_bytes / (1 << 20)

    def growth(self, first: int, last: int = -1) -> float | None:
        """RSS growth from reading ``first`` to ``last``, as a fraction."""
        before, after = self.rss_mib(first), self.rss_mib(last)
        if before is None or after is None or before == 0:
            return None
        return after / before - 1

    def cpu_s(self) -> float | None:
        """CPU seconds between the first reading and the last."""
        first, last = self.samples[0], self.samples[-1]
        if first is None or last is None:
            return None
        return last.cpu_s - first.cpu_s


def cpu_ticks() -> tuple[int, int]:
    """The machine's busy and total CPU ticks since boot (every core, ``/proc/stat``)."""
    fields = [int(v) for v in (PROC / "stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields) - idle, sum(fields)


def load_average() -> float:
    """The one-minute load average."""
    return float((PROC / "loadavg").read_text().split()[0])
