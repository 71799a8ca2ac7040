"""CPU share and RSS of another process, sampled from ``/proc`` (Linux only).

Benchmarks that run the node as a child process sample it with :func:`proc_sample` and turn the
samples into a CPU share over the window they measure with :func:`cpu_share`.
"""

from __future__ import annotations

import os
import time

PAGE = os.sysconf('SC_PAGE_SIZE')
TICKS = os.sysconf('SC_CLK_TCK')
NS = 1_000_000_000


def proc_sample(pid: int) -> tuple[int, float, float]:
    """(monotonic ns, CPU seconds so far, RSS MiB) of a process, from /proc."""
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    cpu_s = (int(fields[11]) + int(fields[12])) / TICKS    # utime + stime
    rss_mb = int(fields[21]) * PAGE / 2**20
    return time.monotonic_ns(), cpu_s, rss_mb


def cpu_share(samples: list[tuple[int, float, float]], t0: int, t1: int) -> float:
    """CPU seconds per wall second (1.0 = one full core) between the samples nearest t0, t1."""
    inside = [s for s in samples if t0 <= s[0] <= t1]
    if len(inside) < 2:
        raise RuntimeError('too few /proc samples in the measured window')
    (a, ca, _), (b, cb, _) = inside[0], inside[-1]
    return (cb - ca) / ((b - a) / NS)
