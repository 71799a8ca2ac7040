"""Source (c) of issue 26: the wrapper's GRM PBRS rewards through the live reward node.

The env's observations go out on three camera topics with header stamps 1 s apart; the reward
node (``RewardNode`` in-process, real DDS on loopback, its parameters from rl/node_params.py)
scores them; the learner side (ros/live_rewards.py) joins ``~/reward`` to its own transitions by
stamp with ``learner.link.RewardLink``. On identical transitions (one scene, the same seeded
random actions, two episodes so the node's reset is crossed) the rewards equal the in-process
wrapper's within 1e-6 (the messages carry float32), for the learners' setting
(``LEARNING_ENGINE``, ``read_start``) and the package default (paper fusion).

Model: a scripted test double in both, answering a hop from a digest of the 8 images in slot
order, and no score for one AFTER view in five (every mode: a held sample) and one query digest in
seven (one mode: a partial, invalid reading). It is deterministic, cheap enough for whole
40-step episodes in ``make test``, and sensitive to everything the comparison must prove: which
pixels (after the ROS image round trip and the profile's resize) reach which slot, which sample
is START and which is BEFORE, the stamps' γ; the unusable answers make held (invalid) samples,
so the spans after them (the wrapper's and the link's one-step discount rule) are compared too.
The demo GRM over ROS is bench/rl_learning.py ``--over-ros``.

Negative controls: the node's rewards attached one transition late, and the wrapper run with
γ = 0.98 instead of the node's 0.99, both miss the tolerance by far.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip('gymnasium')
pytest.importorskip('cv2')

from node_harness import DOMAIN_ID

from robo_dopamine_ros.backends.factory import TEST_DOUBLE
from robo_dopamine_ros.backends.scripted import ScriptedBackend, digest_hop
from robo_dopamine_ros.core.errors import ConfigError
from robo_dopamine_ros.core.prompt import SLOT_ROLES
from robo_dopamine_ros.core.types import Query
from robo_dopamine_ros.learner.link import LinkedReward, LinkStatus
from robo_dopamine_ros.rl import LEARNING_ENGINE
from robo_dopamine_ros.rl.grm_cache import image_digest
from robo_dopamine_ros.rl.node_params import node_parameters
from robo_dopamine_ros.rl.sources import (
    RunConfig,
    Source,
    make_env,
    random_policy,
    reward_config,
    run_episode,
)
from robo_dopamine_ros.ros.live_rewards import LiveRewards, step_rewards

SCENE, EPISODES, TOLERANCE = 1, 2, 1e-6
AFTER_FRONT = SLOT_ROLES.index('after_front')
SETTINGS = {'learning': RunConfig(engine=LEARNING_ENGINE, read_start=True),
            'paper-default': RunConfig()}


def sometimes_unusable(query: Query) -> str:
    """The digest hop, or no score (module docstring)."""
    after = int.from_bytes(image_digest(query.images[AFTER_FRONT].pixels)[:8], 'big')
    hop = digest_hop(query)
    return 'no score' if after % 5 == 0 or hop % 7 == 0 else f'<score>{hop:+d}%</score>'


def double(_config: object = None) -> ScriptedBackend:
    return ScriptedBackend(sometimes_unusable)


def rewards(run: RunConfig, remote: LiveRewards | None = None) -> list[np.ndarray]:
    """The rewards of ``EPISODES`` random-walk episodes (seeded), in process or over ROS."""
    source = Source.GRM_PBRS if remote is None else Source.NODE
    env = make_env(source, SCENE, run, double())
    if remote is not None:
        remote.open(env.task, env.goal)
    rng = np.random.default_rng(7)
    out = []
    for _ in range(EPISODES):
        transitions, *_ = run_episode(env, source, random_policy(rng), run, rng, remote)
        out.append(np.array([t.reward for t in transitions]))
    return out


def max_difference(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    assert [len(x) for x in a] == [len(x) for x in b]
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize('name', SETTINGS)
def test_node_rewards_equal_the_wrappers_on_identical_transitions(name: str) -> None:
    run = SETTINGS[name]
    scene = make_env(Source.SPARSE, SCENE, run, None)
    params = node_parameters(reward_config(scene, run), {'model.backend': TEST_DOUBLE})
    local = rewards(run)
    with LiveRewards(params, read_start=run.read_start, timeout_s=60.0, backend_factory=double,
                     domain_id=DOMAIN_ID) as remote:
        over_ros = rewards(run, remote)
    assert max_difference(local, over_ros) <= TOLERANCE
    flat = np.concatenate(local)
    assert len(flat) // 2 < np.count_nonzero(flat) < len(flat)      # values, and held steps
    # Negative controls: attached one transition late; the wrong discount.
    late = [np.concatenate([[0.0], r[:-1]]) for r in over_ros]
    assert max_difference(local, late) > 1e-3
    shaping = replace(run.engine.shaping, gamma=0.98)
    gamma = replace(run, engine=replace(run.engine, shaping=shaping), q=replace(run.q, gamma=0.98))
    assert max_difference(rewards(gamma), over_ros) > 1e-3


def test_node_parameters_refuse_what_the_node_cannot_run() -> None:
    scene = make_env(Source.SPARSE, SCENE, RunConfig(), None)
    config = reward_config(scene, RunConfig())
    with pytest.raises(ConfigError, match='upstream_zero'):
        node_parameters(replace(config, engine=replace(config.engine, upstream_zero=True)),
                        {'model.backend': TEST_DOUBLE})
    with pytest.raises(ConfigError, match='score_every_n_steps'):
        node_parameters(replace(config, score_every_n_steps=2), {'model.backend': TEST_DOUBLE})


def test_a_reward_that_never_arrived_is_an_error_never_zero() -> None:
    missing = LinkedReward(3, LinkStatus.MISSING, span_start=2)
    with pytest.raises(ConfigError, match='missing'):
        step_rewards([missing])
    held = LinkedReward(1, LinkStatus.INVALID, reward=0.5, gamma=0.99, span_start=0)
    assert step_rewards([held]) == [0.0]
