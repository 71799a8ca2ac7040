"""Benchmark: does the GRM's shaped reward teach a policy, and can it be farmed? (issue 26)

A tabular Q-learner (robo_dopamine_ros/rl/qlearning.py, hyperparameters tuned on the true-progress
PBRS reward only, then frozen) learns the long-horizon synthetic pick-and-place task
(rl/long_horizon.py: 16 moves, 40 steps, scenes from seeds the demo GRM never trained on) with
each in-process reward source of rl/sources.py: (a) sparse, (b) GRM PBRS through the gymnasium
wrapper, (d) true-progress PBRS, (e) GRM progress as the reward, (f) GRM PBRS shuffled across
steps (negative control). ``--over-ros`` runs source (c) alone, the same GRM PBRS through the live
reward node (ros/live_rewards.py), and rewrites only its section of the results file.

Reported: a random policy's success; success of the greedy policy vs training episodes (mean and
spread over scenes x seeds); episodes to 90 % (10-episode window); the return of fixed
back-and-forth cycle policies and of standing still per source; the GRM cache's proof (rewards of
cached and live readings on the same transitions). GRM readings are cached by image digest
(rl/grm_cache.py, fingerprinted with the weights' digest) in ``--cache``, so a rerun costs only
the learner.

Usage: ``. scripts/env.sh && python bench/rl_learning.py [--model DIR] [--scenes 1 2 3]
[--seeds 5] [--episodes 150]`` (``--tune``: the learner's grid on source d only). Writes
``bench/results/rl_learning.md`` and ``docs/images/rl_learning.png``.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import platform
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

import robo_dopamine_ros
from robo_dopamine_ros.backends.factory import make_backend
from robo_dopamine_ros.core.engine import EngineConfig
from robo_dopamine_ros.core.profiles import DEMO_GRM
from robo_dopamine_ros.rl import LEARNING_ENGINE
from robo_dopamine_ros.rl.grm_cache import CachedBackend
from robo_dopamine_ros.rl.node_params import node_parameters
from robo_dopamine_ros.rl.qlearning import QConfig
from robo_dopamine_ros.rl.sources import (
    FixedPolicyReturn,
    LearningCurve,
    RemoteRewards,
    RunConfig,
    Source,
    fixed_policy_return,
    make_env,
    random_policy,
    random_success,
    reward_config,
    run_episode,
    train,
)

ROOT = Path(__file__).resolve().parents[1]
DEMO_MODEL = Path(robo_dopamine_ros.__file__).parent / 'models' / 'demo_grm'
PAPER, PAPER_START = 'paper fusion', 'paper fusion, START read'
ANCHORED, ANCHORED_START = 'anchored', 'anchored, START read'
# GRM reward settings: the engine and GrmRewardConfig.read_start. The package default (paper
# fusion, START at 0 by definition) is the "before"; LEARNING_ENGINE with read_start the "after".
SETTINGS = {PAPER: (EngineConfig(), False), PAPER_START: (EngineConfig(), True),
            ANCHORED: (LEARNING_ENGINE, False), ANCHORED_START: (LEARNING_ENGINE, True)}
LEARNING = ((Source.SPARSE, None), (Source.GRM_PBRS, PAPER), (Source.GRM_PBRS, PAPER_START),
            (Source.GRM_PBRS, ANCHORED), (Source.GRM_PBRS, ANCHORED_START),
            (Source.TRUE_PBRS, None), (Source.GRM_PROGRESS, ANCHORED_START),
            (Source.SHUFFLED, ANCHORED_START))
FARMING = ((Source.SPARSE, None), (Source.TRUE_PBRS, None), (Source.GRM_PBRS, PAPER),
           (Source.GRM_PBRS, ANCHORED), (Source.GRM_PBRS, ANCHORED_START),
           (Source.GRM_PROGRESS, ANCHORED_START))
CYCLES = (0, 1, 2, 4, 5, 10)          # divide 40: every cycle policy ends where it started
WINDOW = 10
OVER_ROS = '## Over ROS (source c)'


def fingerprint(model: Path) -> str:
    """The weights' digest: a retrained model at the same path gets a new cache."""
    h = hashlib.sha256()
    for f in sorted(model.glob('*.safetensors')):
        h.update(f.read_bytes())
    return f'{model.name}:{h.hexdigest()[:16]}'


def window_success(success: np.ndarray) -> np.ndarray:
    """Success rate over the last ``WINDOW`` episodes, per episode (shorter at the start)."""
    cum = np.cumsum(np.concatenate([[0], success.astype(float)]))
    n = np.arange(1, len(success) + 1)
    lo = np.maximum(n - WINDOW, 0)
    return (cum[n] - cum[lo]) / (n - lo)


def episodes_to_90(success: np.ndarray) -> int | None:
    """The first episode after which the greedy policy succeeded in >= 90 % of the last 10."""
    rate = window_success(success)
    hits = np.flatnonzero((rate >= 0.9) & (np.arange(1, len(rate) + 1) >= WINDOW))
    return int(hits[0]) + 1 if hits.size else None


def walk_rewards(run: RunConfig, scene: int, episodes: int, seed: int,
                 backend: CachedBackend | None, remote: RemoteRewards | None = None) -> np.ndarray:
    """The rewards of seeded random-walk episodes, in process (b) or through ``remote`` (c)."""
    source = Source.GRM_PBRS if remote is None else Source.NODE
    env = make_env(source, scene, run, backend)
    if remote is not None:
        remote.open(env.task, env.goal)
    rng = np.random.default_rng(seed)
    return np.concatenate([[t.reward for t in run_episode(env, source, random_policy(rng), run,
                                                          rng, remote)[0]]
                           for _ in range(episodes)])


def cache_proof(live: CachedBackend, cached: CachedBackend, scene: int, run: RunConfig,
                steps: int) -> tuple[int, float]:
    """Rewards of one random-walk episode prefix, live model vs cache: (steps, max |Δr|)."""
    short = RunConfig(num_moves=run.num_moves, max_steps=steps, engine=run.engine, q=run.q)
    a, b = (walk_rewards(short, scene, 1, 99, backend) for backend in (live, cached))
    return len(a), float(np.max(np.abs(a - b)))


def reward_spread(backend: CachedBackend, scenes: Sequence[int], run: RunConfig,
                  episodes: int = 20) -> float:
    """How much the GRM PBRS reward of one (state, action, next state) varies between visits:
    the mean standard deviation over the triples of ``episodes`` random walks per scene. Zero
    for a potential that is a function of the state."""
    spread = []
    for scene in scenes:
        env = make_env(Source.GRM_PBRS, scene, run, backend)
        rng = np.random.default_rng(scene)
        seen: dict[tuple[int, int, int], list[float]] = {}
        for _ in range(episodes):
            transitions, *_ = run_episode(env, Source.GRM_PBRS, random_policy(rng), run, rng)
            for t in transitions:
                seen.setdefault((t.state, t.action, t.next_state), []).append(t.reward)
        spread += [float(np.std(v)) for v in seen.values() if len(v) > 1]
    return float(np.mean(spread))


def tune(run: RunConfig, scenes: Sequence[int], seeds: int) -> str:
    lines = ['| alpha | epsilon | median episodes to 90 % | runs reaching 90 % | mean success, '
             'all episodes |', '|---|---|---|---|---|']
    for alpha, eps in itertools.product((0.1, 0.3, 0.5, 1.0), (0.05, 0.1, 0.2)):
        r = RunConfig(num_moves=run.num_moves, max_steps=run.max_steps, episodes=run.episodes,
                      q=QConfig(alpha=alpha, gamma=run.q.gamma, epsilon=eps))
        runs = [train(Source.TRUE_PBRS, s, k, r).success for s in scenes for k in range(seeds)]
        e90 = [episodes_to_90(success) for success in runs]
        got = [e for e in e90 if e is not None]
        med = f'{np.median(got):.0f}' if got else '-'
        lines.append(f'| {alpha} | {eps} | {med} | {len(got)}/{len(e90)} | '
                     f'{np.mean(runs):.3f} |')
    return '\n'.join(lines)


def setting(run: RunConfig, name: str | None) -> RunConfig:
    engine, read_start = SETTINGS[name or PAPER]
    return replace(run, engine=engine, read_start=read_start)


def label(source: Source, engine: str | None) -> str:
    return source.value if engine is None else f'{source.value} ({engine})'


def plot(curves: dict[str, list[LearningCurve]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for source, runs in curves.items():
        rates = np.array([window_success(c.success) for c in runs])
        x = np.arange(1, rates.shape[1] + 1)
        mean = rates.mean(axis=0)
        ax.plot(x, mean, label=source)
        sem = rates.std(axis=0) / np.sqrt(len(rates))
        ax.fill_between(x, mean - sem, mean + sem, alpha=0.15)
    ax.axhline(0.9, color='grey', lw=0.8, ls='--')
    ax.set(xlabel='training episode', ylabel='greedy success, last 10 episodes (mean ± s.e.)',
           ylim=(0, 1.02), title=title)
    ax.legend(loc='lower right', fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def learning_table(curves: dict[str, list[LearningCurve]]) -> str:
    lines = ['| source | success, last 10 episodes (mean ± sd over runs) | '
             'episodes to 90 % (median) | runs reaching 90 % |', '|---|---|---|---|']
    for source, runs in curves.items():
        final = np.array([c.success[-WINDOW:].mean() for c in runs])
        e90 = [episodes_to_90(c.success) for c in runs]
        got = [e for e in e90 if e is not None]
        med = f'{np.median(got):.0f}' if got else 'never'
        lines.append(f'| {source} | {final.mean():.2f} ± {final.std():.2f} | {med} | '
                     f'{len(got)}/{len(runs)} |')
    return '\n'.join(lines)


def cycle_table(returns: dict[str, list[FixedPolicyReturn]]) -> str:
    lengths = sorted({r.cycle_length for rs in returns.values() for r in rs})
    head = ' | '.join('stand still' if n == 0 else f'cycle {n}' for n in lengths)
    lines = [f'| source | {head} |', '|---|' + '---|' * len(lengths)]
    for arm, results in returns.items():
        cells = []
        for n in lengths:
            rs = [r for r in results if r.cycle_length == n]
            cells.append(f'{max(r.discounted for r in rs):+.3f} / {max(r.steady for r in rs):+.4f}'
                         f' / {max(r.final_progress for r in rs):.2f}')
        lines.append(f'| {arm} | {" | ".join(cells)} |')
    return '\n'.join(lines)


def over_ros(args: argparse.Namespace, run: RunConfig, backend: CachedBackend) -> str:
    """Source (c): rewards on identical transitions with the node's own model (live), then
    learning runs with its answers shared with the cache; returns the results section."""
    from robo_dopamine_ros.ros.live_rewards import LiveRewards
    from robo_dopamine_ros.ros.node import load_backend

    arm, scene = replace(setting(run, ANCHORED_START), episodes=args.ros_episodes), args.scenes[0]
    model = {'model.backend': 'transformers', 'model.path': str(args.model), 'model.device': 'cpu'}
    params = node_parameters(reward_config(make_env(Source.SPARSE, scene, arm, None), arm), model)
    t0 = time.perf_counter()
    with LiveRewards(params, read_start=arm.read_start) as remote:
        ros = walk_rewards(arm, scene, args.ros_walks, 5, None, remote)
    walks_s = time.perf_counter() - t0
    delta = float(np.max(np.abs(ros - walk_rewards(arm, scene, args.ros_walks, 5, backend))))

    def shared(config: object) -> CachedBackend:
        cached = CachedBackend(load_backend(config), backend.fingerprint)
        cached.answers = backend.answers
        return cached

    t0 = time.perf_counter()
    with LiveRewards(params, read_start=arm.read_start, backend_factory=shared) as remote:
        curves = [train(Source.NODE, scene, k, arm, remote=remote) for k in range(args.ros_seeds)]
    runs_s = time.perf_counter() - t0
    pairs = [(c, train(Source.GRM_PBRS, scene, c.seed, arm, backend)) for c in curves]
    final = ', '.join(f'{c.success[-WINDOW:].mean():.1f}' for c in curves)
    e90 = ', '.join(str(episodes_to_90(c.success)) for c in curves)
    identical = all(np.array_equal(a.success, b.success) for a, b in pairs)
    ret = max(float(np.max(np.abs(a.returns - b.returns))) for a, b in pairs)
    return f'''{OVER_ROS}

Command: `. scripts/env.sh && python bench/rl_learning.py --over-ros --scenes {scene}
--ros-walks {args.ros_walks} --ros-seeds {args.ros_seeds} --ros-episodes {args.ros_episodes}`
({platform.machine()}, CPU). `grm_pbrs ({ANCHORED_START})` through the live reward node
(`RewardNode` in this process, real DDS on loopback; its parameters from rl/node_params.py:
the wrapper's engine, γ per 1 s env step, sampling every 1 s, profile `{DEMO_GRM.name}`,
transformers on `{args.model.name}`, CPU): it scores the three cameras the env publishes with
header stamps 1 s apart; the learner joins `~/reward` to its transitions by stamp
(`RewardLink`, tolerance 0; ros/live_rewards.py).

**Identical transitions**: {args.ros_walks} seeded random walks of {arm.max_steps} steps on
scene {scene} ({len(ros)} transitions), the node's model answering live ({walks_s:.0f} s):
max |Δr| against `grm_pbrs` in process = **{delta:.2g}** (the messages carry float32).

**Learning runs over ROS**: {args.ros_seeds} learner seeds x {arm.episodes} episodes on scene
{scene}, the node's model answers shared with the cache ({runs_s:.0f} s): greedy success over
the last {WINDOW} episodes {final}, episodes to 90 % {e90}. Against `grm_pbrs` in process with
the same seeds: success curves identical: {'yes' if identical else 'no'}; largest difference
of a training episode's return {ret:.2g}.
'''


def kept_section(old: str) -> str:
    """The over-ROS section of an earlier results file (a full run does not redo it)."""
    return old[old.index(OVER_ROS):] if OVER_ROS in old else f'{OVER_ROS}\n\nNot run.\n'


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', type=Path, default=DEMO_MODEL)
    parser.add_argument('--scenes', type=int, nargs='+', default=[1, 2, 3])
    parser.add_argument('--seeds', type=int, default=5)
    parser.add_argument('--episodes', type=int, default=150)
    parser.add_argument('--proof-steps', type=int, default=12)
    parser.add_argument('--cache', type=Path, default=Path('/tmp/rl_learning_cache.json'))
    parser.add_argument('--tune', action='store_true')
    parser.add_argument('--over-ros', action='store_true', help='run source (c) only')
    parser.add_argument('--ros-walks', type=int, default=2)
    parser.add_argument('--ros-seeds', type=int, default=3)
    parser.add_argument('--ros-episodes', type=int, default=60)
    parser.add_argument('--out', type=Path, default=ROOT / 'bench/results/rl_learning.md')
    parser.add_argument('--plot', type=Path, default=ROOT / 'docs/images/rl_learning.png')
    args = parser.parse_args(argv)
    run = RunConfig(episodes=args.episodes)
    if args.tune:
        print(tune(run, args.scenes, args.seeds))
        return 0
    t0 = time.perf_counter()
    live = make_backend('transformers', model=str(args.model), device='cpu',
                        pixel_limits=DEMO_GRM.pixel_limits)
    fp = fingerprint(args.model)
    backend = CachedBackend(live, fp)
    if args.cache.is_file():
        backend.load(args.cache)
    if args.over_ros:
        section = over_ros(args, run, backend)
        backend.save(args.cache)
        old = args.out.read_text()
        args.out.write_text(old[:old.index(OVER_ROS)] + section)
        print(section)
        return 0
    randoms = {s: random_success(s, run, 1000, seed=s) for s in args.scenes}
    curves: dict[str, list[LearningCurve]] = {}
    for source, engine in LEARNING:
        arm = setting(run, engine)
        for scene in args.scenes:
            for seed in range(args.seeds):
                curves.setdefault(label(source, engine), []).append(
                    train(source, scene, seed, arm, backend))
            backend.save(args.cache)
            print(f'{label(source, engine)} scene {scene}: {time.perf_counter() - t0:.0f} s, '
                  f'{backend.misses} GRM queries', flush=True)
    returns = {label(source, engine): [
        fixed_policy_return(source, scene, n, setting(run, engine), backend)
        for scene in args.scenes for n in CYCLES]
        for source, engine in FARMING}
    backend.save(args.cache)
    forward = {name: np.mean([fixed_policy_return(
        Source.GRM_PBRS, s, run.num_moves, setting(run, name), backend).discounted
        for s in args.scenes]) for name in (PAPER, ANCHORED_START)}
    steady = max(r.steady for arm, rs in returns.items() if 'grm_pbrs' in arm for r in rs)
    spread = {name: reward_spread(backend, args.scenes, setting(run, name))
              for name in SETTINGS}
    backend.save(args.cache)
    proof_steps, proof = cache_proof(CachedBackend(live, fp), backend, args.scenes[0], run,
                                     args.proof_steps)
    wall = time.perf_counter() - t0
    plot(curves, args.plot, f'Q-learning, {len(args.scenes)} scenes x {args.seeds} seeds')
    command = ('python bench/rl_learning.py --scenes ' + ' '.join(map(str, args.scenes))
               + f' --seeds {args.seeds} --episodes {args.episodes}')
    args.out.write_text(f'''# RL learning with the GRM reward (bench/rl_learning.py)

Command: `. scripts/env.sh && {command}`
(model `{args.model.name}`, fingerprint `{fp}`; {platform.machine()}, CPU; {wall:.0f} s wall,
{backend.misses} GRM queries run, {backend.hits} answered from the cache `--cache`; a cold cache
adds at most 17 x 17 + 34 live queries per scene, ~0.1 s each on a free core; the cache proof
below runs its queries live).

Task: rl/long_horizon.py, {run.num_moves} moves to the goal, {run.max_steps} steps, scenes
{args.scenes} (seeds < 10 000: never in the demo GRM's training). Learner: tabular Q-learning
(rl/qlearning.py) `{run.q}`, tuned on `true_pbrs` only. Budget: {args.episodes} episodes
x {args.seeds} learner seeds x {len(args.scenes)} scenes per source; success = the greedy
policy reaches the goal within {run.max_steps} steps after each training episode.

Random policy success: {', '.join(f'scene {s}: {p:.1%}' for s, p in randoms.items())}
(1000 episodes each).

## Success vs episodes

![success vs episodes](../../docs/images/rl_learning.png)

{learning_table(curves)}

Why the paper fusion does not hold the policy: its potential is path-dependent (the incremental
reading re-bases on the previous fused value), so the reward of one (state, action, next state)
changes from visit to visit while the learner's state is the position alone. Mean standard
deviation of that reward over 20 random walks per scene: {spread[PAPER]:.4f} with the paper
fusion, {spread[ANCHORED]:.4f} with `LEARNING_ENGINE` (forward and backward readings, functions
of the observation), {spread[ANCHORED_START]:.4f} with `LEARNING_ENGINE` and `read_start`
(a step of the task is worth 1/{run.num_moves} = {1 / run.num_moves:.4f} of progress). What is
left without `read_start`: the START sample has progress 0 by definition, but the GRM reads the
start state later at up to 0.05, so the first step of an episode pays for standing at the start
and the learner, which cannot tell START from a return to position 0, learns to wait there
(the runs that never reach 90 % with `anchored`). `read_start` scores the reset observation once
more and uses that reading as the first potential (rl/wrappers.py).

## Cycle returns (farming)

Discounted return (γ = {run.q.gamma}) of one {run.max_steps}-step episode of a fixed policy
(`cycle n`: n moves forward, n back, repeated, ending where it started) / its **steady** part,
the discounted return from the first return to the start position on (the repeated cycles
alone) / the last progress (GRM fused progress for GRM sources, else true); each the largest
over the scenes. The episode return telescopes to γ^T·Φ_T − Φ_0: a positive one comes from the
START sample's progress being 0 by definition while the GRM reads the start state later at up to
0.05 (a one-off offset, γ^40·0.05 = 0.033), plus the paper fusion's first-cycle drift; the
steady part, the farming, is at most {steady:+.4f} under GRM PBRS (test tolerance 0.01 = 1 − γ,
test/test_rl_learning.py). For scale, going straight to the goal earns {forward[PAPER]:+.3f}
under `grm_pbrs ({PAPER})`, {forward[ANCHORED_START]:+.3f} under `grm_pbrs ({ANCHORED_START})`
(mean over the scenes). With `read_start` the offset is gone and whole episodes of cycles earn
nothing either.

{cycle_table(returns)}

## GRM cache proof

Live readings vs cached readings on the same {proof_steps} transitions of a random walk on scene
{args.scenes[0]}: max |Δr| = {proof:.3g}.

''' + kept_section(args.out.read_text() if args.out.is_file() else ''))
    print(args.out.read_text())
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
