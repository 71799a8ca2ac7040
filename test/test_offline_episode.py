"""The offline episode pipeline (upstream run_pipeline use) through the one engine."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from robo_dopamine_ros.backends.scripted import ScriptedBackend, sequence_script
from robo_dopamine_ros.core.errors import ConfigError
from robo_dopamine_ros.core.profiles import GRM_3B
from robo_dopamine_ros.files.frames import demo_episode_dir
from robo_dopamine_ros.offline.episode import EpisodeInputs, EpisodeOptions, run_episode

DEMO = demo_episode_dir()
THREE = EpisodeInputs(DEMO / 'cam_high.mp4', 'organize the table', DEMO / 'cam_left_wrist.mp4',
                      DEMO / 'cam_right_wrist.mp4')


def run(tmp: Path, mode: str, inputs: EpisodeInputs = THREE, script=None, **kw) -> Path:
    backend = ScriptedBackend(script) if script else ScriptedBackend()
    return run_episode(backend, GRM_3B, inputs,
                       EpisodeOptions(out_root=tmp / mode, frame_interval=20, mode=mode, **kw))


def load(run_dir: Path, name: str) -> list[dict]:
    return json.loads((run_dir / name).read_text(encoding='utf-8'))


def test_offline_episode_incremental_reproduces_upstream_numbers(tmp_path: Path) -> None:
    # 86 frames, interval 20 -> samples 0, 20, 40, 60, 80, 85: five transitions
    answers = ['<score>+30%</score>', '<score>-50%</score>', '<score>+60%</score>',
               'garbage', '<score>+10.0%</score>']
    preds = load(run(tmp_path, 'incremental', script=sequence_script(answers)), 'pred_vllm.json')
    assert [round(p['progress'], 6) for p in preds] == [0.3, 0.15, 0.66, 0.66, 0.694]
    assert [p['parse'] for p in preds] == ['ok', 'ok', 'ok', 'failed', 'ok']
    assert preds[1]['id'].endswith('-0001-bf_000020-af_000040')
    assert preds[1]['image'][:2] == ['cam_high.mp4#000000', 'cam_high.mp4#000085']
    assert preds[1]['image'][2:5] == ['cam_high.mp4#000020', 'cam_left_wrist.mp4#000020',
                                      'cam_right_wrist.mp4#000020']


def test_offline_episode_forward_and_backward_hops_are_progress_deltas(tmp_path: Path) -> None:
    fwd = load(run(tmp_path, 'forward', script=sequence_script(
        ['<score>+20%</score>', '<score>+50%</score>'] + ['<score>0%</score>'] * 3)),
        'pred_vllm.json')
    assert [p['hop'] for p in fwd[:2]] == [0.2, pytest.approx(0.3)]
    assert '-start_000000-af_000020' in fwd[0]['id']
    bwd = load(run(tmp_path, 'backward', script=sequence_script(
        ['<score>-80%</score>', '<score>-30%</score>'] + ['<score>0%</score>'] * 3)),
        'pred_vllm.json')
    assert [round(p['progress'], 6) for p in bwd[:2]] == [0.2, 0.7]
    assert bwd[0]['image'][2:5] == ['cam_high.mp4#000085'] * 3       # goal = last front frame


def test_offline_episode_all_modes_in_one_pass_match_single_mode_runs(tmp_path: Path) -> None:
    everything = run(tmp_path, 'all')
    for mode in ('incremental', 'forward', 'backward'):
        single = load(run(tmp_path, mode), 'pred_vllm.json')
        joint = load(everything, f'pred_{mode}.json')
        assert [p['progress'] for p in joint] == pytest.approx([p['progress'] for p in single])
        assert [p['pred'] for p in joint] == [p['pred'] for p in single]
    fused = load(everything, 'pred_fused.json')
    rows = [json.loads(x) for x in (everything / 'results.jsonl').read_text().splitlines()]
    assert [p['progress'] for p in fused] == [r['progress'] for r in rows[1:]]


def test_offline_episode_writes_the_upstream_video_layout(tmp_path: Path) -> None:
    run_dir = run(tmp_path, 'fused', visualize=True)
    cap = cv2.VideoCapture(str(run_dir / 'reward_vis.mp4'))
    try:
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 6          # Start + 5 steps
        assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == \
            (1152, 548)
        assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(4.0)
    finally:
        cap.release()
    assert (run_dir / 'progress.png').is_file() and (run_dir / 'results.csv').is_file()


def test_offline_episode_frame_folders_and_single_camera(tmp_path: Path) -> None:
    folder = tmp_path / 'cam_high'
    folder.mkdir()
    for i in range(7):
        cv2.imwrite(str(folder / f'frame_{i:06d}.png'), np.full((60, 80, 3), 30 * i, np.uint8))
    run_dir = run(tmp_path, 'incremental', EpisodeInputs(folder, 'stack cups'))
    preds = load(run_dir, 'pred_vllm.json')
    assert len(preds) == 1 and preds[0]['image'][5:] == ['frame_000006.png'] * 3


def test_offline_episode_rejects_cameras_of_different_length(tmp_path: Path) -> None:
    short = tmp_path / 'short'
    short.mkdir()
    cv2.imwrite(str(short / 'frame_000000.png'), np.zeros((60, 80, 3), np.uint8))
    with pytest.raises(ConfigError, match='frame counts differ'):
        run(tmp_path, 'fused', EpisodeInputs(DEMO / 'cam_high.mp4', 't', left=short))


def test_offline_episode_plot_starts_at_start_and_video_steps_count_from_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from robo_dopamine_ros.offline import episode

    plotted: list[list[dict]] = []
    labels: list[str] = []
    monkeypatch.setattr(episode, 'plot_results',
                        lambda records, path, title: plotted.append(list(records)))
    monkeypatch.setattr(episode, 'write_reward_video',
                        lambda items, path: labels.extend(i.label for i in items))
    run(tmp_path, 'fused', visualize=True)
    (records,) = plotted
    assert [r['step'] for r in records] == [0, 1, 2, 3, 4, 5]       # START included, as replay
    assert records[0]['frame_index'] == 0
    assert labels[0] == 'Start' and labels[1].startswith('Step=1 ')  # upstream prints i + 1
    assert labels[-1].startswith('Step=5 ')
