"""Gymnasium reward wrappers (robo_dopamine_ros/rl) on the synthetic pick-and-place env.

The quality test scores three scripted policies (succeed, stall halfway, go back) with the
committed demo GRM: the successful one must earn a higher return than the others by a margin.
Its negative control, a test double that answers the same hop whatever the images, misses it.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

gym = pytest.importorskip('gymnasium')
pytest.importorskip('cv2')

from gymnasium.utils.env_checker import check_env  # noqa: E402

from robo_dopamine_ros.backends.scripted import ScriptedBackend  # noqa: E402
from robo_dopamine_ros.core import batch_ask  # noqa: E402
from robo_dopamine_ros.core.engine import EngineConfig  # noqa: E402
from robo_dopamine_ros.core.profiles import DEMO_GRM  # noqa: E402
from robo_dopamine_ros.core.progress import FusionConfig  # noqa: E402
from robo_dopamine_ros.core.types import Mode  # noqa: E402
from robo_dopamine_ros.rl import (  # noqa: E402
    GrmRewardConfig,
    GrmRewardWrapper,
    GrmVectorRewardWrapper,
)
from robo_dopamine_ros.rl.synthetic_env import SyntheticPickPlaceEnv  # noqa: E402

CAMERAS = {'front': 'front', 'left': 'left', 'right': 'right'}
INCREMENTAL = EngineConfig(fusion=FusionConfig(modes=(Mode.INCREMENTAL,)))


def make_env(**kwargs) -> SyntheticPickPlaceEnv:
    env = SyntheticPickPlaceEnv(**kwargs)
    env.reset(seed=0)
    return env


def wrapped(backend, env: SyntheticPickPlaceEnv | None = None, **config) -> GrmRewardWrapper:
    env = env or make_env()
    return GrmRewardWrapper(env, backend, GrmRewardConfig(env.task, env.goal, **config))


def test_env_checker_passes_on_the_env_and_the_wrapped_env(monkeypatch) -> None:
    check_env(SyntheticPickPlaceEnv(), skip_render_check=False)
    # The checker wants identical step infos for a seed; info['latency_s'] is measured time.
    monkeypatch.setattr(batch_ask, 'time', SimpleNamespace(perf_counter=lambda: 0.0))
    check_env(wrapped(ScriptedBackend(), cameras=CAMERAS), skip_render_check=False)


def test_reward_spans_a_macro_transition_with_gamma_per_env_step() -> None:
    env = wrapped(ScriptedBackend(lambda _: '<score>+50%</score>'), score_every_n_steps=2,
                  engine=INCREMENTAL)
    _, info = env.reset(seed=1)
    assert (info['scored'], info['progress'], info['task_status']) == (True, 0.0, 'running')
    _, r1, *_, i1 = env.step(2)
    _, r2, *_, i2 = env.step(2)
    assert (r1, i1['scored'], i1['valid']) == (0.0, False, True)
    assert i2['scored'] and i2['progress'] == 0.5 and i2['readings']['incremental'] == 0.5
    assert r2 == pytest.approx(0.99 ** 2 * 0.5) and i2['grm_reward'] == r2
    assert i2['readings']['forward'] is None and i2['latency_s'] >= 0.0


def test_add_mode_adds_the_env_reward_and_the_last_step_is_always_scored() -> None:
    env = wrapped(ScriptedBackend(lambda _: '<score>+100%</score>'), engine=INCREMENTAL,
                  reward_mode='add', score_every_n_steps=5)
    env.reset(seed=2)
    rewards, infos = [], []
    for _ in range(8):                      # 8 steps of 0.125: terminated at the 8th
        _, reward, terminated, _, info = env.step(2)
        rewards.append(reward)
        infos.append(info)
    assert terminated and infos[-1]['scored'] and [i['scored'] for i in infos].count(True) == 2
    # Step 5 reached 1.0 (the terminal transition, r_gold paid once); step 8 lies after the
    # success: env reward 1 + GRM 0 (no second r_gold; the absorbing state has potential 0).
    assert rewards[4] == pytest.approx(1.0 - 0.0)
    assert rewards[-1] == pytest.approx(1.0)


def test_invalid_step_gives_zero_reward_and_valid_false() -> None:
    def fail(_):
        raise RuntimeError('model down')
    env = wrapped(ScriptedBackend(fail))
    env.reset(seed=3)
    _, reward, *_, info = env.step(2)
    assert reward == 0.0 and info['valid'] is False and 'model down' in info['reason']


def test_per_env_wrapper_works_inside_sync_vector_env() -> None:
    backend = ScriptedBackend()
    envs = gym.vector.SyncVectorEnv([lambda: wrapped(backend, cameras=CAMERAS)] * 2)
    envs.reset(seed=[4, 5])
    _, rewards, _, _, info = envs.step(np.array([2, 2]))
    assert rewards.shape == (2,) and info['scored'].tolist() == [True, True]
    assert info['progress'][0] != info['progress'][1]      # each env its own scene
    envs.close()


def vector_env(n: int) -> gym.vector.SyncVectorEnv:
    return gym.vector.SyncVectorEnv([lambda: SyntheticPickPlaceEnv()] * n)


def test_vector_wrapper_sends_all_envs_queries_in_one_backend_call() -> None:
    backend = ScriptedBackend()
    first = make_env()
    env = GrmVectorRewardWrapper(vector_env(3), backend,
                                 GrmRewardConfig(first.task, first.goal, cameras=CAMERAS))
    env.reset(seed=[0, 1, 2])
    for _ in range(3):
        _, rewards, _, _, info = env.step(np.array([2, 2, 2]))
    assert len(backend.batches) == 3                       # one call per vector step
    assert [len(b) for b in backend.batches] == [6, 9, 9]  # step 1: incremental = forward
    assert info['scored'].tolist() == [True] * 3 and rewards.shape == (3,)
    env.close()


#: Policies: reach the goal; go halfway and stay; go three quarters and come back.
POLICIES = {'success': [2] * 12, 'stall': [2] * 4 + [1] * 8, 'regress': [2] * 6 + [0] * 6}
MARGIN = 0.3


def policy_returns(backend, profile=DEMO_GRM) -> dict[str, float]:
    """Each policy's return over its first episode, its env's scene and goal (seed 7)."""
    scene = make_env()
    scene.reset(seed=7)
    config = GrmRewardConfig(scene.task, scene.goal, cameras=CAMERAS, score_every_n_steps=2,
                             profile=profile)
    env = GrmVectorRewardWrapper(vector_env(3), backend, config)
    env.reset(seed=[7, 7, 7])
    returns = dict.fromkeys(POLICIES, 0.0)
    ended = dict.fromkeys(POLICIES, False)
    for t in range(12):
        actions = np.array([POLICIES[p][t] for p in POLICIES])
        _, rewards, terminated, truncated, _ = env.step(actions)
        for i, p in enumerate(POLICIES):
            if not ended[p]:
                returns[p] += float(rewards[i])
                ended[p] = bool(terminated[i] or truncated[i])
    env.close()
    return returns


def separated(returns: dict[str, float]) -> bool:
    return returns['success'] - max(returns['stall'], returns['regress']) >= MARGIN


def test_demo_grm_gives_success_a_higher_return_by_a_margin(demo_grm_backend) -> None:
    returns = policy_returns(demo_grm_backend)
    assert separated(returns), returns


def test_a_model_blind_to_the_images_misses_the_margin() -> None:
    returns = policy_returns(ScriptedBackend(lambda _: '<score>+10%</score>'))
    assert not separated(returns), returns


@pytest.mark.parametrize(('config', 'error'), [
    ({'cameras': {'left': 'left'}}, 'front .required.'),
    ({'cameras': {'front': 'front', 'top': 'front'}}, 'front .required.'),
    ({'cameras': CAMERAS, 'score_every_n_steps': 0}, 'score_every_n_steps must be >= 1'),
])
def test_bad_wrapper_settings_are_refused_when_configured(config, error) -> None:
    from robo_dopamine_ros.core.errors import ConfigError

    env = make_env()
    with pytest.raises(ConfigError, match=error):
        GrmRewardConfig(env.task, env.goal, **config)


def test_a_camera_key_missing_from_the_observation_is_a_clear_error() -> None:
    from robo_dopamine_ros.core.errors import ConfigError

    backend = ScriptedBackend()
    env = wrapped(backend, cameras={'front': 'no_such_key'}, profile=DEMO_GRM)
    with pytest.raises(ConfigError, match="camera 'front': observation key 'no_such_key'"):
        env.reset(seed=0)
    assert not backend.batches          # nothing was scored
