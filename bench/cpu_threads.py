"""Benchmark: the cores in-process CPU inference takes, with and without ``model.cpu_threads``.

Question answered (issue 24): does a CPU GRM leave cores to the robot's control stack? The same
torch + OpenCV CPU workload (1024² float32 matmuls and 2000² image resizes/blurs, the kinds of
work a CPU GRM step and frame decoding do) runs in a fresh process per setting: unbounded (the
libraries' defaults, one thread per core), the node's default bound (``model.cpu_threads: 0`` =
half the cores) and one thread. Measured per setting: the torch and OpenCV pool sizes, the
process's OS threads after the work, and the cores it kept busy (CPU time / wall time). On a
machine shared with other jobs, "cores busy" is capped by what the others leave.

Usage: ``. scripts/env.sh && python bench/cpu_threads.py`` (about 20 s).
Writes ``bench/results/cpu_threads.md``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

WORKLOAD = r'''
import json, os, sys, time
import numpy as np
setting = sys.argv[1]
import cv2, torch
if setting != 'unbounded':
    from robo_dopamine_ros.backends.threads import bound_cpu_threads
    bound_cpu_threads(int(setting), 'transformers')
a = torch.randn(1024, 1024)
img = np.zeros((2000, 2000, 3), np.uint8)
t0, c0 = time.perf_counter(), time.process_time()
while time.perf_counter() - t0 < 4.0:
    a @ a
    cv2.GaussianBlur(cv2.resize(img, (3000, 3000)), (15, 15), 0)
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
print(json.dumps({'torch': torch.get_num_threads(), 'cv2': cv2.getNumThreads(),
                  'os_threads': len(os.listdir('/proc/self/task')), 'cores_busy': cpu / wall}))
'''

SETTINGS = (('unbounded (library defaults)', 'unbounded'),
            ('model.cpu_threads: 0 (default: half the cores)', '0'),
            ('model.cpu_threads: 1', '1'))


def main() -> int:
    rows = []
    for label, setting in SETTINGS:
        out = subprocess.run([sys.executable, '-c', WORKLOAD, setting], capture_output=True,
                             text=True, check=True, timeout=120).stdout
        m = json.loads(out.strip().splitlines()[-1])
        rows.append(f"| {label} | {m['torch']} | {m['cv2']} | {m['os_threads']} | "
                    f"{m['cores_busy']:.2f} |")
    cores = len(os.sched_getaffinity(0))
    report = '\n'.join([
        '# CPU threads of in-process inference (model.cpu_threads)', '',
        'Command: `python bench/cpu_threads.py` (after `. scripts/env.sh`)', '',
        f'Machine: {cores} CPUs ({platform.machine()}), Python {platform.python_version()}, '
        f'{time.strftime("%Y-%m-%d")}; shared with other jobs.', '',
        '| setting | torch threads | OpenCV threads | OS threads | cores busy |',
        '|---|---|---|---|---|', *rows, ''])
    path = Path(__file__).parent / 'results' / 'cpu_threads.md'
    path.write_text(report)
    print(report)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
