"""Dopamine-RL in miniature (issue 26): the long-horizon env, the GRM answer cache, farming and a
small learning test, with the committed demo GRM on one held-out scene (seed 1).

* Farming: fixed back-and-forth cycle policies and standing still, under GRM PBRS with the default
  paper fusion and with the learners' setting (``LEARNING_ENGINE``, ``read_start``). The engine's
  reward telescopes over any episode, ``Σ γ^t r_t = γ^T·Φ_T - Φ_0`` (+ r_gold once), whatever path
  the fused progress took, so a policy can only gain where the potential it returns to exceeds the
  one it left. Two sources of that: (1) the START sample has progress 0 by definition while the GRM
  reads the start state later at up to 0.05 (measured): a one-off offset worth γ^40·0.05 = 0.033,
  bounded here by a tenth of what reaching the goal earns (``read_start`` removes it: then whole
  episodes of cycles stay within the tolerance too); (2) drift of the path-dependent fused progress
  over repeated cycles, the farming: the **steady** return, from the first return to the start on,
  must stay <= ``FARM_TOLERANCE`` = 0.01 = 1 - γ (what standing still at full progress loses per
  step under exact PBRS: a cycle within it cannot beat moving on by more than one step's discount).
  Measured: <= 0.0005 (bench/results/rl_learning.md). True PBRS: exactly <= 0. Negative control: a
  blind test double whose incremental reading is +10 % for every query makes progress climb with
  every move, and its cycles pay.
* Learning: Q-learning with the tuned, frozen hyperparameters (rl/qlearning.py) on GRM PBRS (the
  learners' setting) beats the sparse reward and the shuffled-reward control by ``LEARN_MARGIN`` in
  greedy success over the last 10 of ``EPISODES`` episodes (mean of ``SEEDS`` seeds).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

gym = pytest.importorskip('gymnasium')
pytest.importorskip('cv2')

from robo_dopamine_ros.backends.scripted import ScriptedBackend  # noqa: E402
from robo_dopamine_ros.core.engine import EngineConfig  # noqa: E402
from robo_dopamine_ros.core.errors import ConfigError  # noqa: E402
from robo_dopamine_ros.core.progress import FusionConfig  # noqa: E402
from robo_dopamine_ros.core.types import Mode  # noqa: E402
from robo_dopamine_ros.rl import LEARNING_ENGINE  # noqa: E402
from robo_dopamine_ros.rl.grm_cache import CachedBackend  # noqa: E402
from robo_dopamine_ros.rl.long_horizon import LongHorizonPickPlaceEnv  # noqa: E402
from robo_dopamine_ros.rl.sources import (  # noqa: E402
    RunConfig,
    Source,
    fixed_policy_return,
    make_env,
    random_policy,
    random_success,
    run_episode,
    train,
)

SCENE = 1
RUN = RunConfig()
CYCLES = (0, 1, 2, 4, 5, 10)          # all divide the 40 steps: each ends where it started
FARM_TOLERANCE = 0.01
LEARN_MARGIN = 0.3
EPISODES, SEEDS = 60, 3
INCREMENTAL = EngineConfig(fusion=FusionConfig(modes=(Mode.INCREMENTAL,)))
LEARNING = RunConfig(engine=LEARNING_ENGINE, read_start=True)    # the reward for learners


@pytest.fixture(scope='module')
def grm(demo_grm_backend) -> CachedBackend:
    """The demo GRM behind the answer cache, shared by the module's tests."""
    return CachedBackend(demo_grm_backend)


def test_env_is_long_horizon_reproducible_and_on_held_out_scenes() -> None:
    env = LongHorizonPickPlaceEnv((SCENE,))
    obs, info = env.reset(seed=3)
    assert obs['position'] == 0 and info['scene_seed'] == SCENE
    again = LongHorizonPickPlaceEnv((SCENE,))
    assert np.array_equal(again.reset(seed=9)[0]['front'], obs['front'])
    env.step(2)
    obs2, *_ = env.step(0)                          # back at the start: the same pixels
    assert np.array_equal(obs2['front'], obs['front'])
    assert random_success(SCENE, RUN, 300, seed=0) <= 0.02     # random actions almost never win
    with pytest.raises(ConfigError, match='10000'):
        LongHorizonPickPlaceEnv((10_000,))


def test_cached_readings_give_the_live_rewards(grm, demo_grm_backend) -> None:
    rewards = []
    for backend in (CachedBackend(demo_grm_backend), grm, grm):   # live, fill, from the cache
        env = make_env(Source.GRM_PBRS, SCENE, RUN, backend)
        rng = np.random.default_rng(5)
        transitions, *_ = run_episode(env, Source.GRM_PBRS, random_policy(rng),
                                      RunConfig(max_steps=10), rng)
        rewards.append([t.reward for t in transitions])
    assert grm.hits > 0
    assert rewards[0] == rewards[1] == rewards[2]


@pytest.mark.parametrize('length', CYCLES)
def test_cycles_earn_nothing_under_true_pbrs(length: int) -> None:
    result = fixed_policy_return(Source.TRUE_PBRS, SCENE, length, RUN)
    assert result.discounted <= 1e-12 and result.total <= 1e-12


@pytest.mark.parametrize('run', [RUN, LEARNING], ids=['paper', 'anchored-start-read'])
def test_cycles_earn_nothing_beyond_the_tolerance_under_grm_pbrs(grm, run) -> None:
    forward = fixed_policy_return(Source.GRM_PBRS, SCENE, RUN.num_moves, run, grm).discounted
    cycles = {n: fixed_policy_return(Source.GRM_PBRS, SCENE, n, run, grm) for n in CYCLES}
    assert forward > 0.5
    assert {n: r.steady for n, r in cycles.items() if r.steady > FARM_TOLERANCE} == {}
    # The START offset (module docstring) is bounded; with read_start it is gone.
    bound = FARM_TOLERANCE if run.read_start else forward / 10
    assert {n: r.discounted for n, r in cycles.items() if r.discounted > bound} == {}


def test_read_start_makes_the_first_potential_the_reading_of_the_reset_observation() -> None:
    def script(query) -> str:
        return '<score>+20%</score>' if query.mode is Mode.FORWARD else '<score>-80%</score>'

    for read_start, start, first in ((False, 0.0, RUN.q.gamma * 0.2),
                                     (True, 0.2, RUN.q.gamma * 0.2 - 0.2)):
        env = make_env(Source.GRM_PBRS, SCENE, replace(LEARNING, read_start=read_start),
                       ScriptedBackend(script))
        _, info = env.reset()
        _, reward, *_ = env.step(1)
        assert info['progress'] == pytest.approx(start) and reward == pytest.approx(first)


def test_farming_check_sees_a_blind_reward() -> None:
    """Negative control: an incremental reading of +10 % whatever the images: every step adds
    progress along any path, cycles pay (up to the success bonus)."""
    blind = ScriptedBackend(lambda _q: '<score>+10%</score>')
    for n in (1, 4):
        result = fixed_policy_return(Source.GRM_PBRS, SCENE, n, RunConfig(engine=INCREMENTAL),
                                     blind)
        assert result.steady > FARM_TOLERANCE and result.discounted > 0.5 / 10


def test_grm_pbrs_teaches_better_than_sparse_and_shuffled(grm) -> None:
    run = RunConfig(episodes=EPISODES)

    def final(source: Source) -> float:
        curves = [train(source, SCENE, seed, run, grm) for seed in range(SEEDS)]
        return float(np.mean([c.success[-10:].mean() for c in curves]))

    shaped, sparse, shuffled = (final(s) for s in (Source.GRM_PBRS, Source.SPARSE,
                                                    Source.SHUFFLED))
    assert shaped >= sparse + LEARN_MARGIN, (shaped, sparse)
    assert shaped >= shuffled + LEARN_MARGIN, (shaped, shuffled)


def test_wrapper_pays_a_step_after_a_held_one_with_one_steps_discount() -> None:
    """The held-span finding: the engine's transition after a held sample spans two steps (γ²);
    a one-step learner discounts the first step itself, so the wrapper pays γ·Φ' - Φ."""
    answers = iter(['<score>+50%</score>', 'no score', '<score>+40%</score>'])
    env = make_env(Source.GRM_PBRS, SCENE, RunConfig(engine=INCREMENTAL),
                   ScriptedBackend(lambda _q: next(answers)))
    env.reset()
    rewards, infos = [], []
    for _ in range(3):
        _, reward, *_, info = env.step(2)
        rewards.append(reward)
        infos.append(info)
    assert [i['valid'] for i in infos] == [True, False, True]
    gamma, phi_a, phi_c = RUN.q.gamma, 0.5, 0.5 + 0.5 * 0.4
    assert rewards[:2] == [pytest.approx(gamma * phi_a), 0.0]
    assert rewards[2] == pytest.approx(gamma * phi_c - phi_a)      # not γ²·Φ' - Φ
