"""The learner-side reward link (robo_dopamine_ros/learner/link.py): rewards joined to a learner's
transitions by stamps, with late, missing, out-of-order, duplicated, invalid (held) and
other-episode rewards, spans, episode events and the shared terminal rule.

Records come from the real episode engine (test double backend answering fixed hops), turned
into ``RewardRecord`` as the node's ``Reward`` message would carry them."""

from __future__ import annotations

import numpy as np
import pytest

from robo_dopamine_ros.backends.scripted import ScriptedBackend, sequence_script
from robo_dopamine_ros.core.engine import EngineConfig, EpisodeEngine, Sample
from robo_dopamine_ros.core.errors import ConfigError
from robo_dopamine_ros.core.progress import FusionConfig
from robo_dopamine_ros.core.result import StepResult
from robo_dopamine_ros.core.shaping import ShapingConfig
from robo_dopamine_ros.core.types import Mode
from robo_dopamine_ros.learner import LinkStatus, RewardLink, RewardRecord

S = 1_000_000_000
GAMMA = 0.9
TOL, WAIT = 5_000_000, 2 * S


def records(answers: list[str], stamps: list[int] | None = None,
            episode: str = 'e1') -> list[RewardRecord]:
    """The engine's rewards (incremental mode, γ = 0.9 per second) for START + answers."""
    config = EngineConfig(fusion=FusionConfig(modes=(Mode.INCREMENTAL,)),
                          shaping=ShapingConfig(gamma=GAMMA, control_period_s=1.0))
    engine = EpisodeEngine(ScriptedBackend(sequence_script(answers)), config)
    engine.start('put the block on the target', np.zeros((32, 32, 3), np.uint8), episode)
    stamps = stamps or [k * S for k in range(len(answers) + 1)]
    image = np.zeros((32, 32, 3), np.uint8)
    results = [engine.step(Sample(t, image)) for t in stamps]
    return [record(r) for r in results[1:]]


def record(result: StepResult) -> RewardRecord:
    reward = result.reward
    assert reward is not None and result.stamp_before_ns is not None
    return RewardRecord(result.episode_id, result.step, result.stamp_before_ns,
                        result.stamp_after_ns, reward.reward, reward.gamma, result.done,
                        reward.terminal, result.valid, result.reason, reward.potential_before,
                        reward.r_gold)


def link_with(steps: int, episode: str | None = 'e1') -> RewardLink:
    link = RewardLink(TOL, WAIT)
    if episode:
        link.event('RESET', episode)
    link.begin(0, now_ns=0)
    for k in range(1, steps + 1):
        link.step(k * S + 1000, now_ns=k * S)       # learner stamps within the tolerance
    return link


def test_in_order_rewards_resolve_one_step_each_with_the_nodes_gamma() -> None:
    recs = records(['<score>+50%</score>', '<score>+20%</score>'])
    link = link_with(2)
    for r in recs:
        link.add(r)
    out = link.poll(now_ns=2 * S)
    assert [(o.index, o.status, o.span_start) for o in out] == [(1, LinkStatus.REWARD, 0),
                                                                (2, LinkStatus.REWARD, 1)]
    assert [o.reward for o in out] == [r.reward for r in recs]
    assert out[0].step_reward == pytest.approx(out[0].reward) and out[0].gamma == GAMMA
    assert link.poll(now_ns=10 * S) == []            # each transition is answered once


def test_a_late_reward_is_waited_for_and_a_missing_one_times_out_without_blocking() -> None:
    recs = records(['<score>+50%</score>', '<score>+20%</score>', '<score>+10%</score>'])
    link = link_with(3)
    link.add(recs[1])
    link.add(recs[2])
    assert link.poll(now_ns=1 * S + WAIT) == []      # transition 1 still within its wait
    out = link.poll(now_ns=1 * S + WAIT + 1)          # ... now past it: missing, not zero
    assert [(o.index, o.status) for o in out] == [(1, LinkStatus.MISSING), (2, LinkStatus.REWARD),
                                                  (3, LinkStatus.REWARD)]
    late = link_with(1)
    assert late.poll(now_ns=S) == []
    late.add(recs[0])
    assert late.poll(now_ns=S + 1)[0].reward == recs[0].reward


def test_out_of_order_and_duplicated_rewards_are_answered_in_transition_order() -> None:
    recs = records(['<score>+50%</score>', '<score>+20%</score>', '<score>+10%</score>'])
    link = link_with(3)
    for r in (recs[2], recs[0], recs[2], recs[1]):
        link.add(r)
    out = link.poll(now_ns=3 * S)
    assert [o.index for o in out] == [1, 2, 3]
    assert [o.record for o in out] == recs


def test_a_held_sample_is_invalid_and_the_next_reward_spans_it_discounted_once() -> None:
    # Step 2's answer is unusable: held (invalid); step 3's transition starts at sample 1.
    recs = records(['<score>+50%</score>', 'no score here', '<score>+40%</score>'])
    assert not recs[1].valid and recs[2].before_ns == 1 * S and recs[2].gamma == GAMMA ** 2
    link = link_with(3)
    for r in recs:
        link.add(r)
    out = link.poll(now_ns=3 * S)
    assert [o.status for o in out] == [LinkStatus.REWARD, LinkStatus.INVALID, LinkStatus.REWARD]
    assert not out[1].learn and out[1].reward == 0.0
    span = out[2]
    assert (span.span_start, span.gamma) == (1, GAMMA ** 2)
    phi_a, phi_c = 0.5, 0.5 + 0.5 * 0.4
    assert span.reward == pytest.approx(GAMMA ** 2 * phi_c - phi_a)          # the SMDP reward
    # One-step learners: the discount of the held step is not applied a second time.
    assert span.step_reward == pytest.approx(GAMMA * phi_c - phi_a, abs=1e-6)
    assert span.step_reward - span.reward == pytest.approx(GAMMA * (1 - GAMMA) * phi_c)


def test_a_node_scoring_every_second_step_leaves_spanned_steps() -> None:
    recs = records(['<score>+50%</score>', '<score>+20%</score>'], stamps=[0, 2 * S, 4 * S])
    link = link_with(4)
    for r in recs:
        link.add(r)
    out = link.poll(now_ns=4 * S)
    assert [(o.status, o.span_start) for o in out] == [
        (LinkStatus.SPANNED, 0), (LinkStatus.REWARD, 0), (LinkStatus.SPANNED, 2),
        (LinkStatus.REWARD, 2)]
    assert out[1].step_reward == pytest.approx(GAMMA * 0.5, abs=1e-6)


def test_terminal_rule_is_the_cores_first_success_only_then_after_success() -> None:
    recs = records(['<score>+50%</score>', '<score>+100%</score>', '<score>+0%</score>'])
    assert recs[1].terminal and recs[2].done and not recs[2].terminal
    link = link_with(3)
    for r in recs:
        link.add(r)
    out = link.poll(now_ns=3 * S)
    assert [(o.status, o.terminal) for o in out] == [
        (LinkStatus.REWARD, False), (LinkStatus.REWARD, True), (LinkStatus.AFTER_SUCCESS, False)]
    assert out[1].reward == pytest.approx(1.0 - 0.5)       # r_gold - Φ(s), terminal Φ = 0
    # The terminal reward lost: a later done reward is still after-success, never learned.
    lost = link_with(3)
    for r in (recs[0], recs[2]):
        lost.add(r)
    statuses = [o.status for o in lost.poll(now_ns=10 * S)]
    assert statuses == [LinkStatus.REWARD, LinkStatus.MISSING, LinkStatus.AFTER_SUCCESS]


def test_rewards_of_another_episode_are_ignored_whenever_they_arrive() -> None:
    old = records(['<score>+90%</score>'], episode='e1')
    new = records(['<score>+10%</score>'], episode='e2')
    link = link_with(1, episode='e1')
    link.add(new[0])                          # the new episode's reward before its RESET event
    assert link.poll(now_ns=S) == []
    link.event('RESET', 'e2')
    link.add(old[0])                          # a late reward of the old episode
    out = link.poll(now_ns=S)
    assert out[0].record == new[0]


def test_done_and_task_status_events_of_the_current_episode_are_kept() -> None:
    link = link_with(0)
    link.event('TASK_STATUS', 'e0', 'stalled: no gain')
    link.event('DONE', 'e0')
    assert (link.task_status, link.done_event) == ('', False)
    link.event('TASK_STATUS', 'e1', 'stalled: no gain over 4 samples')
    link.event('DONE', 'e1')
    assert (link.task_status, link.done_event) == ('stalled', True)
    link.begin(5 * S, now_ns=5 * S)
    assert not link.done_event


def test_bad_use_is_refused() -> None:
    with pytest.raises(ConfigError):
        RewardLink(-1, WAIT)
    link = RewardLink(TOL, WAIT)
    with pytest.raises(ConfigError, match='begin'):
        link.step(S, 0)
    link.begin(S, 0)
    with pytest.raises(ConfigError, match='increase'):
        link.step(S, 0)
