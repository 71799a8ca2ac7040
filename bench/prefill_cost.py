"""Benchmark: what answer prefill saves per query on the trained demo GRMs (decode steps and ms).

With ``answer_prefill`` the common head of every answer (``<score``) is put into the prompt as
token ids and generation stops at the first token after the number, so only the sign and the
digits are decoded. The random tiny models of ``step_cost.py`` never write an answer, so this runs
on the bundled demo GRMs through the product path (the engine builds the queries with the
checkpoint's profile), on a held-out synthetic episode (seed 5; training used seeds >= 10 000):
the single-mode step and the fused step (three readings), each with and without prefill, taking
turns step by step so a change in the machine's load falls on all four alike. Decode steps are
the model forwards after the prompt's (one per new token, for the whole batch): their count is
what prefill changes; their time depends on the machine. The parsed hops with and without
prefill are compared reading by reading.

Writes the section "Answer prefill (demo GRMs)" of bench/results/step_cost.md, keeping the rest
(``step_cost.py`` keeps this section too): ``python bench/prefill_cost.py``.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from step_cost import RESULTS, SECTION_PREFILL, Clock, instrument

import robo_dopamine_ros
from robo_dopamine_ros.backends.architectures import backend_profile
from robo_dopamine_ros.backends.transformers_backend import TransformersBackend
from robo_dopamine_ros.backends.transformers_config import TransformersConfig
from robo_dopamine_ros.core.engine import EngineConfig, EpisodeEngine, Sample
from robo_dopamine_ros.core.names import CAMERAS
from robo_dopamine_ros.core.progress import FusionConfig
from robo_dopamine_ros.core.types import ALL_MODES, Mode
from robo_dopamine_ros.synthetic.episode import render_episode
from robo_dopamine_ros.synthetic.spec import EpisodeSpec

MODELS = Path(robo_dopamine_ros.__file__).parent / 'models'
CONFIGS = {'single': (Mode.INCREMENTAL,), 'fused': ALL_MODES}
SEC = 1_000_000_000


class Run:
    """One configuration: an engine over a backend with timed phases and counted decodes."""

    def __init__(self, model: Path, modes: tuple[Mode, ...], prefill: bool, task: str,
                 goal: object) -> None:
        profile = backend_profile('transformers', str(model))
        self.backend = TransformersBackend(TransformersConfig(
            model=str(model), device='cpu', pixel_limits=profile.pixel_limits,
            answer_prefill=prefill))
        self.clock = Clock(lambda: None)
        instrument(self.backend, self.clock)
        self.modes = modes
        self.engine = EpisodeEngine(self.backend, EngineConfig(fusion=FusionConfig(modes=modes)),
                                    profile)
        self.engine.start(task, goal)
        self.rows: list[tuple[float, float, int]] = []
        self.hops: list[float | None] = []

    def step(self, sample: Sample) -> None:
        self.clock.reset()
        t0 = time.perf_counter()
        result = self.engine.step(sample)
        if result.step == 0:            # START asks nothing
            return
        self.rows.append((time.perf_counter() - t0, self.clock.totals.get('decode', 0.0),
                          self.clock.calls.get('decode', 0)))
        self.hops.extend(r.score.hop for r in result.readings if r.mode in self.modes)


def measure(model: Path, steps: int, interval: int) -> dict[str, object]:
    episode = render_episode(EpisodeSpec(seed=5, num_frames=steps * interval + 1,
                                         size=(320, 240), outcome='success'))
    runs = {(name, on): Run(model, modes, on, episode.task, episode.goal)
            for name, modes in CONFIGS.items() for on in (False, True)}
    for step in range(steps + 1):
        i = step * interval
        sample = Sample(step * SEC, *(episode.frames[c][i] for c in CAMERAS))
        for run in runs.values():
            run.step(sample)
    for run in runs.values():
        run.backend.close()
    table = {key: tuple(statistics.median(r[j] for r in run.rows) for j in range(3))
             for key, run in runs.items()}
    agree = {name: (sum(a == b for a, b in zip(runs[(name, False)].hops, runs[(name, True)].hops,
                                                strict=True)), len(runs[(name, True)].hops))
             for name in CONFIGS}
    return {'table': table, 'agree': agree}


def section(args: argparse.Namespace, results: dict[str, dict[str, object]]) -> str:
    lines = [SECTION_PREFILL, '', f'Command: `python bench/prefill_cost.py --steps {args.steps} '
             f'--interval {args.interval}`', '',
             f'Machine: {platform.machine()}, CPU, torch {torch.__version__} with '
             f'{torch.get_num_threads()} thread(s), {datetime.date.today()}. Held-out synthetic '
             f'episode (seed 5, success), every {args.interval}th frame, {args.steps} steps per '
             'configuration through the engine, medians; decode steps are per step (the fused '
             "step's three readings are one batch and decode together).", '',
             '| model | step | prefill | step, ms | decode, ms | decode steps | '
             'ratio fused / single |', '|---|---|---|---|---|---|---|']
    for model, res in results.items():
        table = res['table']
        for on in (False, True):
            single = table[('single', on)][0]
            for name in CONFIGS:
                wall, decode, count = table[(name, on)]
                ratio = f'{wall / single:.2f}' if name != 'single' else '—'
                lines.append(f'| {model} | {name} | {"on" if on else "off"} | {wall * 1e3:.1f} | '
                             f'{decode * 1e3:.1f} | {count:.0f} | {ratio} |')
    lines.append('')
    for model, res in results.items():
        agree = ', '.join(f'{n} {a}/{t}' for n, (a, t) in res['agree'].items())
        lines.append(f'- {model}: parsed hops equal with and without prefill: {agree}.')
    lines += ['', 'The fused/single goal belongs to prefix reuse (the tables above), not to '
              'prefill: prefill shortens every query alike. Milliseconds on this shared 2-core '
              'machine are noisy; the decode-step counts are exact.', '']
    return '\n'.join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--steps', type=int, default=10)
    parser.add_argument('--interval', type=int, default=4, help='frames between samples')
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = {name: measure(MODELS / name, args.steps, args.interval)
               for name in ('demo_grm', 'demo_grm_qwen3')}
    head = RESULTS.read_text().split(SECTION_PREFILL)[0].rstrip('\n')
    text = section(args, results)
    RESULTS.write_text(f'{head}\n\n{text}')
    print(text)


if __name__ == '__main__':
    main()
