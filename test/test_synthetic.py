"""Synthetic episodes: determinism, progress shapes per outcome, the scene shows the progress."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from robo_dopamine_ros.core.errors import ConfigError
from robo_dopamine_ros.core.names import CAMERAS
from robo_dopamine_ros.synthetic.episode import render_episode
from robo_dopamine_ros.synthetic.spec import (
    DEFAULT_START_NS,
    EpisodeSpec,
    Outcome,
    SyntheticEpisode,
)

pytest.importorskip('cv2')

SMALL = {'num_frames': 60, 'size': (160, 120), 'seed': 7}


@pytest.fixture(scope='module')
def episodes() -> dict[str, SyntheticEpisode]:
    return {o.value: render_episode(EpisodeSpec(outcome=o, **SMALL)) for o in Outcome}


def mad(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute pixel difference."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_render_episode_same_seed_gives_identical_pixels() -> None:
    a = render_episode(EpisodeSpec(seed=11, num_frames=20, size=(96, 72)))
    b = render_episode(EpisodeSpec(seed=11, num_frames=20, size=(96, 72)))
    for cam in CAMERAS:
        assert np.array_equal(a.frames[cam], b.frames[cam])
    assert np.array_equal(a.goal, b.goal)
    assert a.progress == b.progress and a.keyframes == b.keyframes and a.task == b.task


def test_render_episode_other_seed_changes_the_scene() -> None:
    a = render_episode(EpisodeSpec(seed=11, num_frames=20, size=(96, 72)))
    b = render_episode(EpisodeSpec(seed=12, num_frames=20, size=(96, 72)))
    assert mad(a.frames['front'][0], b.frames['front'][0]) > 5.0


def test_render_episode_shapes_stamps_and_task(episodes: dict[str, SyntheticEpisode]) -> None:
    ep = episodes['success']
    assert len(ep) == 60
    for cam in CAMERAS:
        assert ep.frames[cam].shape == (60, 120, 160, 3)
        assert ep.frames[cam].dtype == np.uint8
    assert ep.goal.shape == (120, 160, 3)
    assert ep.stamps_ns[0] == DEFAULT_START_NS
    assert ep.stamps_ns[1] - ep.stamps_ns[0] == 66_666_667   # 15 fps
    assert ep.stamps_ns[-1] - ep.stamps_ns[0] == 3_933_333_333
    assert ep.task == 'put the orange block on the yellow square'


def test_success_progress_rises_monotonically_to_one(
        episodes: dict[str, SyntheticEpisode]) -> None:
    p = np.array(episodes['success'].progress)
    assert p[0] == 0.0
    assert np.all(np.diff(p) >= 0.0)
    assert p[-1] == 1.0
    assert int(np.argmax(p >= 1.0)) == 48


def test_fail_progress_stays_low_and_falls_back(episodes: dict[str, SyntheticEpisode]) -> None:
    p = np.array(episodes['fail'].progress)
    assert p.max() == 0.25     # the reach counts, the missed grasp does not
    assert p[-1] == 0.1


def test_stall_progress_plateaus(episodes: dict[str, SyntheticEpisode]) -> None:
    p = np.array(episodes['stall'].progress)
    assert np.all(np.diff(p[:28]) > 0.0)
    assert np.all(p[27:] == p[27])
    assert p[27] == 0.536954


def test_regress_progress_rises_then_falls(episodes: dict[str, SyntheticEpisode]) -> None:
    p = np.array(episodes['regress'].progress)
    assert int(np.argmax(p)) == 30 and p.max() == 0.7
    assert np.all(np.diff(p[:31]) > 0.0) and np.all(np.diff(p[30:54]) < 0.0)
    assert p[-1] == 0.2


def test_keyframes_are_contiguous_upstream_segments(
        episodes: dict[str, SyntheticEpisode]) -> None:
    assert [(k['anotation'], k['start_frame_id'], k['end_frame_id'])
            for k in episodes['success'].keyframes] == [
        ('reach the orange block', 0, 13), ('grasp the orange block', 13, 21),
        ('lift the orange block', 21, 25), ('carry it to the yellow square', 25, 37),
        ('place it on the yellow square', 37, 41), ('release it', 41, 45), ('retreat', 45, 59)]
    assert [k['anotation'] for k in episodes['regress'].keyframes][-1] == 'carry the block back'
    for ep in episodes.values():
        segs = ep.keyframes
        assert all(set(s) == {'anotation', 'start_frame_id', 'end_frame_id'} for s in segs)
        assert segs[0]['start_frame_id'] == 0 and segs[-1]['end_frame_id'] == len(ep) - 1
        assert all(a['end_frame_id'] == b['start_frame_id'] for a, b in itertools.pairwise(segs))


def test_wrist_views_show_only_the_fingers_closing_during_the_grasp() -> None:
    # During the grasp the gripper holds still and only the finger gap changes; without sensor
    # noise the wrist views then differ in the finger band (bottom) and nowhere above it.
    ep = render_episode(EpisodeSpec(noise_std=0.0, **SMALL))
    grasp = next(k for k in ep.keyframes if k['anotation'].startswith('grasp'))
    opened, closed = grasp['start_frame_id'], grasp['end_frame_id'] - 1
    assert ep.progress[opened] < ep.progress[closed]
    for cam in ('left', 'right'):
        a, b = ep.frames[cam][opened], ep.frames[cam][closed]
        assert np.array_equal(a[:60], b[:60])
        assert mad(a[62:], b[62:]) > 10.0


def test_frames_change_with_progress_and_not_without(
        episodes: dict[str, SyntheticEpisode]) -> None:
    front = episodes['success'].frames['front']
    assert mad(front[0], front[30]) > 5.0
    plateau = episodes['stall'].frames
    for cam in CAMERAS:  # frozen scene: only sensor noise (std 2) differs
        assert 0.5 < mad(plateau[cam][40], plateau[cam][50]) < 3.0
        assert mad(plateau[cam][10], plateau[cam][40]) > 3.0


def test_goal_image_is_the_success_end_state(episodes: dict[str, SyntheticEpisode]) -> None:
    ep = episodes['success']
    assert mad(ep.goal, ep.frames['front'][-1]) < 2.0
    assert mad(ep.goal, ep.frames['front'][0]) > 5.0
    assert np.array_equal(episodes['fail'].goal, ep.goal)   # same seed, same scene


def test_ground_truth_is_json_serialisable(episodes: dict[str, SyntheticEpisode]) -> None:
    gt = json.loads(json.dumps(episodes['stall'].ground_truth()))
    assert gt['outcome'] == 'stall' and gt['seed'] == 7 and gt['size'] == [160, 120]
    assert gt['progress'] == list(episodes['stall'].progress)
    assert len(gt['stamps_ns']) == 60


@pytest.mark.parametrize(('kwargs', 'match'), [
    ({'outcome': 'win'}, "outcome must be one of .*'win'"),
    ({'num_frames': 1}, 'num_frames must be >= 2, got 1'),
    ({'fps': 0.0}, 'fps must be > 0, got 0.0'),
    ({'size': (16, 16)}, r'size must be at least \(32, 24\), got \(16, 16\)'),
    ({'start_ns': 0}, 'start_ns must be > 0'),
    ({'noise_std': -1.0}, 'noise_std must be >= 0, got -1.0'),
])
def test_episode_spec_rejects_bad_values(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        EpisodeSpec(**kwargs)
