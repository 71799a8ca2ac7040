"""`make demo` end to end: the real node on live topics, fed the bundled episode from a bag."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from node_harness import ros_environment

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_ros_demo_scores_every_sample_through_the_node(repo_root: Path, tmp_path: Path,
                                                       tiny_grm_dir: Path) -> None:
    env = ros_environment(repo_root, 90 + os.getpid() % 40)
    exe = shutil.which('robo-dopamine', path=env['PATH'])
    assert exe, 'robo-dopamine is not on the PATH of the installed environment'
    out = tmp_path / 'demo'
    proc = subprocess.run([exe, 'demo', '--model', str(tiny_grm_dir), '--rate', '4',
                           '--out-dir', str(out)], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert '(22 samples to score)' in proc.stdout
    records = [json.loads(line) for line in (out / 'messages.jsonl').read_text().splitlines()]
    assert [r['step'] for r in records] == list(range(22))
    assert records[0]['valid'] and not any(r['valid'] for r in records[1:])   # random weights
    assert all(r['reward'] is not None for r in records[1:])
    assert (out / 'progress.png').read_bytes()[:4] == b'\x89PNG'
    assert '[episode] READY' in proc.stdout and '[episode] SHUTDOWN' in proc.stdout
