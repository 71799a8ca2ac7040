"""Episode annotations: keyframe validation, step 0's frame sampling, zero-hop neighbours,
task instructions, and raw-episode discovery errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robo_dopamine_ros.core.errors import ConfigError
from robo_dopamine_ros.training.keyframes import (
    DEFAULT_INSTRUCTION,
    Segment,
    load_instructions,
    load_keyframes,
    parse_keyframes,
    sample_frame_ids,
    zero_hop_afters,
)
from robo_dopamine_ros.training.sources import discover


def seg(start: int, end: int, name: str = 's') -> dict[str, object]:
    return {'anotation': name, 'start_frame_id': start, 'end_frame_id': end}


def test_keyframes_parse_upstream_records_sharing_boundaries() -> None:
    segments = parse_keyframes([seg(8, 147, 'a'), seg(147, 211, 'b')], 1277, 'kf.json')
    assert segments == [Segment(8, 147, 'a'), Segment(147, 211, 'b')]
    assert segments[0].to_json() == {'anotation': 'a', 'start_frame_id': 8, 'end_frame_id': 147}


def test_keyframes_overlap_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"kf.json: segment 2 \('s', frames 140..211\) "
                                          r"overlaps segment 1 \('s', frames 8..147\)"):
        parse_keyframes([seg(8, 147), seg(140, 211)], 1277, 'kf.json')


def test_keyframes_out_of_order_is_an_overlap() -> None:
    with pytest.raises(ConfigError, match='overlaps segment 1'):
        parse_keyframes([seg(100, 200), seg(0, 100)], 1277, 'kf.json')


def test_keyframes_end_past_the_video_is_out_of_range() -> None:
    with pytest.raises(ConfigError, match=r'segment 2 .* out of range: the video has 1277 '
                                          r'frames, so frame ids must lie in \[0, 1276\]'):
        parse_keyframes([seg(8, 147), seg(147, 1277)], 1277, 'kf.json')


def test_keyframes_negative_start_is_out_of_range() -> None:
    with pytest.raises(ConfigError, match='out of range'):
        parse_keyframes([seg(-1, 10)], 100, 'kf.json')


@pytest.mark.parametrize('data, message', [
    ([], 'non-empty JSON list'),
    ({'start_frame_id': 0}, 'non-empty JSON list'),
    ([seg(10, 10)], 'empty or reversed'),
    ([seg(20, 10)], 'empty or reversed'),
    ([{'start_frame_id': '0', 'end_frame_id': 10}], 'integer start_frame_id'),
    ([{'start_frame_id': True, 'end_frame_id': 10}], 'integer start_frame_id'),
    (['0-10'], 'must be an object'),
])
def test_keyframes_malformed_records_are_rejected(data: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_keyframes(data, 100, 'kf.json')


def test_keyframes_missing_file_is_one_segment_over_all_frames(tmp_path: Path) -> None:
    assert load_keyframes(tmp_path / 'none.json', 50) == [Segment(0, 49, 'default_task')]


def test_keyframes_broken_json_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / 'annotated_keyframes.json'
    path.write_text('[{"start_frame_id": 1,')
    with pytest.raises(ConfigError, match=r'annotated_keyframes\.json.* is not valid JSON'):
        load_keyframes(path, 50)


def test_sample_frame_ids_evenly_spaced_per_segment() -> None:
    # total 20 / factor 5 = 4 points, / 2 segments -> m = 2: 3 points per segment, shared ends.
    assert sample_frame_ids([Segment(0, 10), Segment(10, 20)], 5) == [0, 5, 10, 15, 20]


def test_sample_frame_ids_upstream_example_count() -> None:
    # docs/upstream.md §8.2: 1255 annotated frames / 20 / 16 segments -> m = 4 -> 65 ids.
    segments = [Segment(8 + 78 * k, 8 + 78 * (k + 1)) for k in range(15)] + [Segment(1178, 1263)]
    ids = sample_frame_ids(segments, 20)
    assert len(ids) == 65
    assert ids[:6] == [8, 28, 47, 66, 86, 106]  # linspace(8, 86, 5) rounded half to even
    assert ids[-1] == 1263


def test_sample_frame_ids_short_segments_keep_their_boundaries() -> None:
    # m rounds to 0 -> at least 2 points: the boundaries.
    assert sample_frame_ids([Segment(0, 3), Segment(3, 9)], 100) == [0, 3, 9]


def test_zero_hop_afters_hand_computed() -> None:
    # delta = max(1, floor(0.075 * (next - previous))), clamped to [first, last].
    assert zero_hop_afters([0, 10, 20, 30]) == [(0, 1), (9, 11), (19, 21), (29, 30)]
    assert zero_hop_afters([0, 100, 200, 300]) == [(0, 7), (85, 115), (185, 215), (293, 300)]


def test_instructions_list_and_dict_forms(tmp_path: Path) -> None:
    path = tmp_path / 'task_instruction.json'
    path.write_text(json.dumps(['clean the table', 'organize the table']))
    assert load_instructions([path]) == ['clean the table', 'organize the table']
    path.write_text(json.dumps({'instructions': ['fold it']}))
    assert load_instructions([path]) == ['fold it']
    path.write_text(json.dumps({'instruction': 'open the drawer'}))
    assert load_instructions([path]) == ['open the drawer']


def test_instructions_most_specific_file_wins(tmp_path: Path) -> None:
    (tmp_path / 'shared.json').write_text('["shared task"]')
    (tmp_path / 'own.json').write_text('["own task"]')
    assert load_instructions([tmp_path / 'own.json', tmp_path / 'shared.json']) == ['own task']
    assert load_instructions([tmp_path / 'no.json', tmp_path / 'shared.json']) == ['shared task']
    assert load_instructions([tmp_path / 'no.json']) == [DEFAULT_INSTRUCTION]


@pytest.mark.parametrize('data, message', [
    ([], 'non-empty list of instruction strings'),
    ([1, 2], 'non-empty list of instruction strings'),
    ({'task': 'x'}, 'non-empty list of instruction strings'),
    (['pick <image> up'], 'reserved marker'),
    (['  '], 'non-empty string'),
])
def test_instructions_malformed_are_rejected(tmp_path: Path, data: object, message: str) -> None:
    path = tmp_path / 'task_instruction.json'
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=message):
        load_instructions([path])


def test_discover_episode_missing_a_video_is_a_clear_error(tmp_path: Path) -> None:
    episode = tmp_path / 'raw' / 'episode_001'
    episode.mkdir(parents=True)
    (episode / 'cam_high.mp4').write_bytes(b'')
    (episode / 'cam_right_wrist.mp4').write_bytes(b'')
    with pytest.raises(ConfigError, match=r'episode_001.* has no cam_left_wrist.mp4 video'):
        discover(tmp_path / 'raw')


def test_discover_empty_or_missing_raw_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match='holds neither episode_'):
        discover(tmp_path)
    with pytest.raises(ConfigError, match='does not exist'):
        discover(tmp_path / 'nowhere')


def test_discover_single_episode_directory_and_layout(tmp_path: Path) -> None:
    raw = tmp_path / 'raw'
    for name in ('episode_002', 'episode_001', 'other'):
        (raw / name).mkdir(parents=True)
        for cam in ('cam_high.mp4', 'cam_left_wrist.mp4'):
            (raw / name / cam).write_bytes(b'')
        (raw / name / 'cam_right_wrist').mkdir()  # a folder of frames works too
    episodes = discover(raw)
    assert [e.name for e in episodes] == ['episode_001', 'episode_002']
    assert episodes[0].instructions == (raw / 'episode_001' / 'task_instruction.json',
                                        raw / 'task_instruction.json')
    assert episodes[0].cameras[2] == raw / 'episode_001' / 'cam_right_wrist'
    single = discover(raw / 'other')
    assert [e.name for e in single] == ['episode_other']
    assert single[0].keyframes == raw / 'other' / 'annotated_keyframes.json'
