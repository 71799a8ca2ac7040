"""The episode engine: anchors, batching, validity, done latch, episode rules — with the
ScriptedBackend test double standing in for the GRM."""

from __future__ import annotations

import json

import numpy as np
import pytest

from robo_dopamine_ros.backends.scripted import ScriptedBackend, digest_script
from robo_dopamine_ros.core.engine import EngineConfig, EpisodeEngine, Sample
from robo_dopamine_ros.core.errors import ConfigError, StampError
from robo_dopamine_ros.core.profiles import GRM_2_4B, GRM_3B
from robo_dopamine_ros.core.progress import FusionConfig, StepStatus
from robo_dopamine_ros.core.sampling import SamplerKind, SamplingConfig
from robo_dopamine_ros.core.shaping import ShapingConfig
from robo_dopamine_ros.core.types import ImageKey, Mode, Query

SEC = 1_000_000_000


def frame(value: int, shape: tuple[int, int] = (240, 320)) -> np.ndarray:
    img = np.zeros((*shape, 3), np.uint8)
    img[..., 0] = value
    img[..., 1] = 255 - value
    return img


def sample(t: int, v: int | None = None, wrists: bool = True) -> Sample:
    v = t * 10 if v is None else v
    return Sample(t * SEC, frame(v), frame(v + 1) if wrists else None,
                  frame(v + 2) if wrists else None)


def by_mode(answers: dict[Mode, list[str]]):
    its = {m: iter(a) for m, a in answers.items()}

    def script(q: Query) -> str:
        return next(its[q.mode])
    return script


def make(script=digest_script, config: EngineConfig | None = None, profile=GRM_3B,
         goal: np.ndarray | None = None, **start) -> tuple[EpisodeEngine, ScriptedBackend]:
    backend = ScriptedBackend(script)
    engine = EpisodeEngine(backend, config, profile)
    engine.start('put the cup on the plate', frame(250) if goal is None else goal, **start)
    return engine, backend


def test_engine_start_sample_has_zero_progress_and_no_query() -> None:
    engine, backend = make(episode_id='ep-a')
    r = engine.step(sample(1))
    assert (r.step, r.progress, r.valid, r.reward, r.done) == (0, 0.0, True, None, False)
    assert r.is_start and r.stamp_before_ns is None and r.episode_id == 'ep-a'
    assert not backend.batches


def test_engine_sends_one_batch_per_step_with_the_spec_anchors() -> None:
    engine, backend = make(episode_id='ep')
    engine.step(sample(1))
    engine.step(sample(2))
    engine.step(sample(3))
    assert len(backend.batches) == 2
    first, second = backend.batches
    # right after START incremental and forward are the same question: asked once
    assert [q.mode for q in first] == [Mode.INCREMENTAL, Mode.BACKWARD]
    assert [q.mode for q in second] == [Mode.INCREMENTAL, Mode.FORWARD, Mode.BACKWARD]
    keys = {q.mode: [img.key for img in q.images] for q in second}
    start = [ImageKey('ep', r, SEC) for r in ('front', 'left', 'right')]
    prev = [ImageKey('ep', r, 2 * SEC) for r in ('front', 'left', 'right')]
    after = [ImageKey('ep', r, 3 * SEC) for r in ('front', 'left', 'right')]
    goal = ImageKey('ep', 'goal', 0)
    assert keys[Mode.INCREMENTAL] == [start[0], goal, *prev, *after]
    assert keys[Mode.FORWARD] == [start[0], goal, *start, *after]
    assert keys[Mode.BACKWARD] == [start[0], goal, goal, goal, goal, *after]


def test_engine_resizes_images_to_the_profile_limits() -> None:
    engine, backend = make()
    engine.step(Sample(SEC, frame(1, (480, 640))))
    engine.step(Sample(2 * SEC, frame(2, (480, 640))))
    assert {q.images[5].pixels.shape for q in backend.batches[0]} == {(224, 308, 3)}


def test_engine_fused_progress_and_reward_match_hand_computation() -> None:
    script = by_mode({Mode.INCREMENTAL: ['<score>+20%</score>', '<score>+10%</score>'],
                      Mode.BACKWARD: ['<score>-70%</score>', '<score>-60%</score>'],
                      Mode.FORWARD: ['<score>+40%</score>']})
    cfg = EngineConfig(shaping=ShapingConfig(gamma=0.99, control_period_s=0.1))
    engine, _ = make(script, cfg)
    engine.step(sample(1))
    r1 = engine.step(sample(2))
    # step 1: incremental == forward (deduplicated): both read +20 %, backward 0.3
    assert r1.progress == pytest.approx((0.2 + 0.2 + 0.3) / 3)
    assert r1.reading(Mode.FORWARD).score.text == '<score>+20%</score>'
    r2 = engine.step(sample(3))
    inc = r1.progress + (1 - r1.progress) * 0.1
    assert r2.progress == pytest.approx((inc + 0.4 + 0.4) / 3)
    gamma = 0.99 ** 10                     # 1 s between samples, 0.1 s control period
    assert r2.reward is not None and r2.reward.gamma == pytest.approx(gamma)
    assert r2.reward.reward == pytest.approx(gamma * r2.progress - r1.progress)
    assert (r2.stamp_before_ns, r2.stamp_after_ns) == (2 * SEC, 3 * SEC)
    assert r2.valid and r2.status is StepStatus.OK


def test_engine_held_step_keeps_the_incremental_before_sample() -> None:
    def script(q: Query) -> str:
        if q.images[5].key.stamp_ns == 3 * SEC:
            raise RuntimeError('model hiccup')
        return '<score>+10%</score>'
    engine, backend = make(script, EngineConfig(fusion=FusionConfig(modes=(Mode.INCREMENTAL,))))
    engine.step(sample(1))
    r1 = engine.step(sample(2))
    r2 = engine.step(sample(3))
    assert r2.status is StepStatus.HELD and not r2.valid and r2.progress == r1.progress
    assert 'model hiccup' in r2.reading(Mode.INCREMENTAL).score.reason
    r3 = engine.step(sample(4))
    assert r3.valid and r3.stamp_before_ns == 2 * SEC
    assert backend.batches[-1][0].images[2].key.stamp_ns == 2 * SEC


def test_engine_backend_exception_is_flagged_not_raised() -> None:
    class Exploding(ScriptedBackend):
        def generate(self, queries):  # type: ignore[override]
            raise RuntimeError('CUDA out of memory')
    engine = EpisodeEngine(Exploding(), profile=GRM_3B)
    engine.start('t', frame(9))
    engine.step(sample(1))
    r = engine.step(sample(2))
    assert not r.valid and r.status is StepStatus.HELD
    assert r.reason.startswith('backend failed: CUDA out of memory')


def test_engine_wrong_answer_count_is_flagged() -> None:
    class Short(ScriptedBackend):
        def generate(self, queries):  # type: ignore[override]
            return super().generate(queries)[:1]
    engine = EpisodeEngine(Short(), profile=GRM_3B)
    engine.start('t', frame(200))        # a goal unlike the start: all three modes are asked
    engine.step(sample(1))
    assert 'answers for' in engine.step(sample(2)).reason


def test_engine_done_latches_and_terminal_fires_once() -> None:
    script = by_mode({Mode.INCREMENTAL: ['<score>+97%</score>', '<score>-50%</score>']})
    engine, _ = make(script, EngineConfig(fusion=FusionConfig(modes=(Mode.INCREMENTAL,))))
    engine.step(sample(1))
    r1 = engine.step(sample(2))
    assert r1.done and r1.terminal and r1.reward is not None
    assert r1.reward.reward == pytest.approx(1.0 - 0.0)     # r_gold + γ·0 - Φ(s)
    r2 = engine.step(sample(3))
    assert r2.done and not r2.terminal and r2.progress == pytest.approx(0.485)
    assert r2.reward is not None and (r2.reward.reward, r2.reward.r_gold) == (0.0, 0.0)
    engine.reset()
    assert not engine.step(sample(4)).done


def test_engine_task_or_goal_change_starts_a_new_episode() -> None:
    engine, _ = make(episode_id='one')
    engine.step(sample(1))
    engine.step(sample(2))
    new = engine.set_task('stack the blocks', episode_id='two')
    assert new == 'two' == engine.episode_id
    r = engine.step(sample(3))
    assert r.is_start and r.task == 'stack the blocks' and r.episode_id == 'two'
    third = engine.set_goal(frame(77))
    assert engine.step(sample(4)).is_start and engine.episode_id == third != 'two'


def test_engine_rejects_bad_stamps() -> None:
    engine, _ = make()
    with pytest.raises(StampError, match='>= 0'):
        engine.step(Sample(-1, frame(1)))
    assert engine.step(Sample(0, frame(1))).is_start       # offline time starts at 0
    engine.step(sample(2))
    with pytest.raises(StampError, match='does not increase'):
        engine.step(sample(2))
    with pytest.raises(StampError):
        engine.step(sample(1))


def test_engine_goal_rules_follow_the_checkpoint_profile() -> None:
    backend = ScriptedBackend()
    refusing = EpisodeEngine(backend, profile=GRM_3B)
    with pytest.raises(ConfigError, match='needs a goal image'):
        refusing.start('t')
    assert refusing.start('t', frame(5)) == 'episode-0001'     # the refusal used no id
    blank = EpisodeEngine(backend, EngineConfig(missing_goal='blank'), GRM_3B)
    blank.start('t')
    assert blank.active_modes == (Mode.INCREMENTAL, Mode.FORWARD)
    native = EpisodeEngine(backend, profile=GRM_2_4B)
    native.start('t')
    native.step(sample(1))
    native.step(sample(2))
    goal_img = backend.batches[-1][0].images[1]
    assert goal_img.key.role == 'blank' and int(goal_img.pixels.mean()) == 128
    assert {q.mode for q in backend.batches[-1]} == {Mode.INCREMENTAL}


def test_engine_single_camera_fills_all_three_slots() -> None:
    engine, backend = make()
    engine.step(sample(1, wrists=False))
    r = engine.step(sample(2, wrists=False))
    q = backend.batches[0][0]
    assert r.view_layout == 'single-view'
    assert [k.key.role for k in q.images[5:]] == ['front', 'front', 'front']


def test_engine_answers_depend_on_slot_order_and_colour() -> None:
    # The digest double answers from the pixels: swapping wrist cameras or colour channels
    # changes the answer, so a slot-order or BGR/RGB bug cannot pass unnoticed.
    def run(s1: Sample, s2: Sample) -> str:
        engine, _ = make()
        engine.step(s1)
        return engine.step(s2).reading(Mode.BACKWARD).score.text
    a, b = sample(1), sample(2)
    base = run(a, b)
    swapped = Sample(b.stamp_ns, b.front, b.right, b.left)
    bgr = Sample(b.stamp_ns, b.front[..., ::-1].copy(), b.left, b.right)
    assert run(a, swapped) != base and run(a, bgr) != base
    assert run(a, b) == base


def test_engine_record_is_json_serialisable() -> None:
    engine, _ = make()
    engine.step(sample(1))
    rec = engine.step(sample(2)).to_record()
    line = json.dumps(rec)
    assert '"incremental_parse": "ok"' in line and rec['model_id'] == 'scripted-test-double'


def test_engine_needs_start_first() -> None:
    with pytest.raises(ConfigError, match='start'):
        EpisodeEngine(ScriptedBackend()).step(sample(1))


def test_engine_names_the_sampler_and_restarts_its_grid_per_episode() -> None:
    cfg = EngineConfig(sampling=SamplingConfig(interval_s=1.0))
    engine, _ = make(config=cfg)
    stamps = [i * SEC // 30 for i in range(1, 70)]
    assert [t for t in stamps if engine.wants(t)] == [stamps[0], stamps[30], stamps[60]]
    engine.reset()
    assert engine.wants(stamps[65]) and not engine.wants(stamps[66])


def test_engine_offline_frame_indices_follow_the_configured_rule() -> None:
    upstream = EngineConfig(sampling=SamplingConfig(SamplerKind.FRAME_INTERVAL, frame_interval=3))
    assert make(config=upstream)[0].frame_indices(11) == [0, 3, 6, 9, 10]
    bench = EngineConfig(sampling=SamplingConfig('evenly_spaced', frame_interval=30))
    assert make(config=bench)[0].frame_indices(91) == [0, 45, 90]
    with pytest.raises(ConfigError, match='by stamp'):
        make()[0].frame_indices(10)
    with pytest.raises(ConfigError, match='kind must be one of'):
        SamplingConfig('random')


def test_engine_time_reversed_pass_uses_ref_start_and_initial_progress() -> None:
    # Benchmark voc- (docs/upstream.md §7.2): fed from the end backwards, REF START is still the
    # episode's first frame and the chain starts at 1.0 with the same incremental rule.
    script = by_mode({Mode.INCREMENTAL: ['<score>-20%</score>', '<score>-50%</score>']})
    cfg = EngineConfig(fusion=FusionConfig(modes=(Mode.INCREMENTAL,)))
    engine, backend = make(script, cfg, episode_id='rev', ref_start=frame(5),
                           initial_progress=1.0)
    start = engine.step(sample(1))
    assert (start.progress, start.progress_raw, start.valid) == (1.0, 1.0, True)
    assert start.reason == 'episode start: initial progress 1 given'
    r1 = engine.step(sample(2))
    r2 = engine.step(sample(3))
    assert (r1.progress, r2.progress) == (pytest.approx(0.8), pytest.approx(0.4))
    assert r1.reward is not None and r1.reward.potential_before == 1.0
    ref = backend.batches[0][0].images[0]
    assert ref.key == ImageKey('rev', 'ref_start', 0)
    assert np.array_equal(ref.pixels[0, 0], frame(5)[0, 0])
    assert [img.key.stamp_ns for img in backend.batches[1][0].images[2:5]] == [2 * SEC] * 3
    engine.reset()
    assert engine.step(sample(4)).progress == 0.0          # options apply to one episode


def test_engine_initial_progress_is_validated() -> None:
    engine, _ = make()
    with pytest.raises(ConfigError, match=r'in \[0, 1\]'):
        engine.start('t', frame(9), initial_progress=1.5)
    upstream = EngineConfig(fusion=FusionConfig(method='upstream'))
    with pytest.raises(ConfigError, match='paper fusion'):
        make(config=upstream, initial_progress=0.5)
