"""Step 1 (hop labels, bins, quotas, records) and step 2 (merge, shuffle, anchor swap)."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from robo_dopamine_ros.core.errors import ConfigError
from robo_dopamine_ros.core.parsing import format_score
from robo_dopamine_ros.core.prompt import PromptVariant, render_prompt
from robo_dopamine_ros.training.generate import (
    ZERO_LABEL,
    GenerateConfig,
    candidate_pairs,
    episode_rng,
    episode_samples,
    gap_bin,
    gap_quotas,
    generate,
    hop_percent,
    score_bin,
    score_label,
    score_quotas,
    select_pairs,
)
from robo_dopamine_ros.training.keyframes import zero_hop_afters
from robo_dopamine_ros.training.postprocess import PostprocessConfig, postprocess, swap_anchors

# Every ordered pair of 5 positions and its hop (docs/upstream.md §5.1): forward (j-i)/(4-i), back
# (j-i)/i.
HOPS_5 = {(0, 1): 25.0, (0, 2): 50.0, (0, 3): 75.0, (0, 4): 100.0, (1, 2): 100 / 3,
          (1, 3): 200 / 3, (1, 4): 100.0, (2, 3): 50.0, (2, 4): 100.0, (3, 4): 100.0,
          (1, 0): -100.0, (2, 0): -100.0, (2, 1): -50.0, (3, 0): -100.0, (3, 1): -200 / 3,
          (3, 2): -100 / 3, (4, 0): -100.0, (4, 1): -75.0, (4, 2): -50.0, (4, 3): -25.0}


def test_hop_percent_all_pairs_of_five_positions() -> None:
    for (i, j), want in HOPS_5.items():
        assert hop_percent(i, j, 5) == pytest.approx(want), (i, j)
    assert hop_percent(2, 2, 5) == 0.0


def test_score_label_format_and_upstream_rounding() -> None:
    assert score_label(hop_percent(1, 3, 5)) == '<score>+66.7%</score>'
    assert score_label(hop_percent(3, 1, 5)) == '<score>-66.7%</score>'
    assert score_label(hop_percent(0, 4, 5)) == '<score>+100.0%</score>'
    # 100*23/80 = 28.75 exactly -> '+28.8'; the fraction route (core's format_score) gives +28.7.
    assert score_label(hop_percent(0, 23, 81)) == '<score>+28.8%</score>'
    assert format_score(23 / 80) == '<score>+28.7%</score>'


def test_score_bin_edges() -> None:
    assert [score_bin(p, 25) for p in (-100.0, -92.1, -92.0, -4.0, 0.0, 3.99, 4.0, 99.9, 100.0)] \
        == [0, 0, 1, 12, 12, 12, 13, 24, 24]
    assert score_bin(-150.0, 25) == 0
    assert score_bin(150.0, 25) == 24


def test_gap_bin_edges() -> None:
    # n = 65 -> max_gap 63 split in 4 bins of 15.75; the full span 64 joins the last bin.
    assert [gap_bin(g, 63, 4) for g in (1, 16, 17, 32, 33, 48, 49, 63, 64)] \
        == [0, 0, 1, 1, 2, 2, 3, 3, 3]


def test_score_quotas_remainder_goes_to_the_centre() -> None:
    assert score_quotas(950, 25) == [38] * 25
    quotas = score_quotas(10, 25)
    assert [k for k, q in enumerate(quotas) if q] == [7, 8, 9, 10, 11, 12, 13, 14, 15, 16]
    assert score_quotas(27, 25) == [1] * 11 + [2, 2] + [1] * 12
    assert score_quotas(7, 5) == [1, 2, 2, 1, 1]


def test_gap_quotas_remainder_goes_to_the_fullest_bins() -> None:
    assert gap_quotas(5, [1, 4, 4, 2]) == [1, 2, 1, 1]
    assert gap_quotas(6, [1, 4, 4, 2]) == [1, 2, 2, 1]
    assert gap_quotas(3, [0, 0, 0, 0]) == [1, 1, 1, 0]


def test_candidate_pairs_all_pairs_when_the_episode_is_small() -> None:
    pairs = candidate_pairs(5, 10, 100, np.random.default_rng(0))
    assert sorted(pairs) == sorted(HOPS_5)


def test_candidate_pairs_distinct_sample_when_the_pool_is_capped() -> None:
    pairs = candidate_pairs(50, 3, 10, np.random.default_rng(0))  # target 30 of 2450
    assert len(pairs) == len(set(pairs)) == 30
    assert all(i != j and 0 <= i < 50 and 0 <= j < 50 for i, j in pairs)


def hist(pairs: list[tuple[int, int]], n: int, bins: int) -> list[int]:
    counts = Counter(score_bin(hop_percent(i, j, n), bins) for i, j in pairs)
    return [counts[k] for k in range(bins)]


def test_select_pairs_quotas_and_centre_first_deficit_one_gap_bin() -> None:
    # 5 score bins of 40 % over the 20 pairs of HOPS_5: sizes [6, 4, 0, 4, 6]. Quota 2 each;
    # bin 2 is empty, so its 2 go to the nearest bin with candidates left, bin 1.
    pool = candidate_pairs(5, 10, 100, np.random.default_rng(1))
    chosen = select_pairs(pool, 5, 10, 5, 1, np.random.default_rng(2))
    assert len(chosen) == len(set(chosen)) == 10
    assert hist(chosen, 5, 5) == [2, 4, 0, 2, 2]


def test_select_pairs_quotas_with_gap_bins() -> None:
    # Quota 3 per score bin, 1 per gap bin (gaps 1 / 2 / 3-4). Gap sizes per score bin:
    # bin0 [1,2,3] -> 3; bin1 [3,1,0] -> 2; bin2 empty; bin3 [3,1,0] -> 2; bin4 [1,2,3] -> 3.
    # Deficit 5, centre first: bin2 none, bin1 its 2 left, bin3 its 2 left, bin0 one more.
    pool = candidate_pairs(5, 15, 100, np.random.default_rng(3))
    chosen = select_pairs(pool, 5, 15, 5, 3, np.random.default_rng(4))
    assert hist(chosen, 5, 5) == [4, 4, 0, 4, 3]


def test_episode_rng_is_stable_across_processes() -> None:
    # crc32 of the name, never Python's per-process salted hash().
    assert int(episode_rng(1234, 'episode_001').integers(1_000_000)) == 107641


def test_episode_samples_upstream_record_format() -> None:
    ids = [8, 50, 100, 147]
    config = GenerateConfig(max_sample_num=8, zero_ratio=0.25)
    samples = episode_samples('episode_001', ids, ['clean the table'], config, 'train_data')
    records = samples.records
    assert len(records) == 8 and samples.zero_count == 2 and len(samples.pairs) == 6
    assert list(records[0]) == ['id', 'image', 'task', 'conversations']
    labels = {(8, 50): '+33.3', (8, 100): '+66.7', (8, 147): '+100.0', (50, 100): '+50.0',
              (50, 147): '+100.0', (100, 147): '+100.0', (50, 8): '-100.0', (100, 8): '-100.0',
              (100, 50): '-50.0', (147, 8): '-100.0', (147, 50): '-66.7', (147, 100): '-33.3'}
    zero_afters = dict(zip(ids, zero_hop_afters(ids), strict=True))
    for k, record in enumerate(records):
        m = re.fullmatch(r'train_data_episode_001-train-bf_(\d{6})-af_(\d{6})-'
                         r'(plus|minus|zero_extra)-(\d{7})', record['id'])
        assert m, record['id']
        before, after, tag = int(m[1]), int(m[2]), m[3]
        assert int(m[4]) == k
        human, gpt = record['conversations']
        assert list(human) == ['value', 'from'] and human['from'] == 'human'
        assert human['value'] == render_prompt('clean the table', PromptVariant.TRAINING)
        assert gpt['from'] == 'gpt'
        if tag == 'zero_extra':
            assert gpt['value'] == ZERO_LABEL
            assert after in zero_afters[before]
        else:
            assert gpt['value'] == f'<score>{labels[before, after]}%</score>'
            assert tag == ('plus' if labels[before, after][0] == '+' else 'minus')
        assert record['image'] == [
            'train_data/episode_001/cam_high/frame_000008.jpg',
            'train_data/episode_001/cam_high/frame_000147.jpg',
            *(f'train_data/episode_001/{cam}/frame_{before:06d}.jpg'
              for cam in ('cam_high', 'cam_left_wrist', 'cam_right_wrist')),
            *(f'train_data/episode_001/{cam}/frame_{after:06d}.jpg'
              for cam in ('cam_high', 'cam_left_wrist', 'cam_right_wrist'))]
    assert [r['id'].split('-')[-2] for r in records[-2:]] == ['zero_extra', 'zero_extra']


def make_converted(base: Path, episodes: dict[str, list[int]]) -> Path:
    """A converted dataset with only what step 1 reads (no images)."""
    for name, ids in episodes.items():
        (base / name).mkdir(parents=True)
        (base / name / 'sample_frames.json').write_text(json.dumps([f'{i:06d}' for i in ids]))
    (base / 'task_instruction.json').write_text('["clean the table", "organize the table"]')
    return base


EPISODES = {'episode_001': list(range(0, 650, 10)), 'episode_002': list(range(5, 400, 9)),
            'episode_003': [0, 30]}


def test_generate_same_seed_identical_files_any_worker_count(tmp_path: Path) -> None:
    a = make_converted(tmp_path / 'a' / 'train_data', EPISODES)
    b = tmp_path / 'b' / 'train_data'
    shutil.copytree(a, b)
    config = GenerateConfig(max_sample_num=200, seed=7, progress=False)
    counts = generate(a, GenerateConfig(**{**config.__dict__, 'workers': 1}),
                      output=tmp_path / 'a.json')
    assert counts == {'episode_001': 200, 'episode_002': 200, 'episode_003': 0}
    generate(b, GenerateConfig(**{**config.__dict__, 'workers': 2}), output=tmp_path / 'b.json')
    for name in ('episode_001/train.json', 'episode_001/info.txt', 'episode_002/train.json'):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (tmp_path / 'a.json').read_bytes() == (tmp_path / 'b.json').read_bytes()
    assert not (a / 'episode_003' / 'train.json').exists()  # 2 frames: skipped
    info = (a / 'episode_001' / 'info.txt').read_text().splitlines()
    assert info[:3] == ['Episode: episode_001', 'Frames (id_list) count: 65',
                        'Samples: non-zero=190, zero=10, total=200']


def test_generate_other_seed_other_samples(tmp_path: Path) -> None:
    base = make_converted(tmp_path / 'train_data', {'episode_001': list(range(0, 650, 10))})
    generate(base, GenerateConfig(max_sample_num=50, seed=1, workers=1, progress=False))
    first = (base / 'episode_001' / 'train.json').read_bytes()
    generate(base, GenerateConfig(max_sample_num=50, seed=2, workers=1, progress=False))
    assert (base / 'episode_001' / 'train.json').read_bytes() != first


def test_generate_real_sized_episode_fills_every_quota(tmp_path: Path) -> None:
    # 65 ids as in the example episode: 950 non-zero samples, 38 in each outer score bin.
    base = make_converted(tmp_path / 'train_data', {'episode_001': list(range(0, 650, 10))})
    generate(base, GenerateConfig(workers=1, progress=False))
    records = json.loads((base / 'episode_001' / 'train.json').read_text())
    assert len(records) == 1000 and len({r['id'] for r in records}) == 1000
    labels = [float(r['conversations'][1]['value'][7:-9]) for r in records]
    assert sum(r['id'].endswith(f'-zero_extra-{k:07d}') for k, r in enumerate(records)) == 50
    score_hist = Counter(score_bin(p, 25) for p in labels[:950])
    assert score_hist[0] == score_hist[24] == 38


@pytest.mark.parametrize('kwargs, message', [
    ({'max_sample_num': 0}, 'max_sample_num'),
    ({'zero_ratio': 1.5}, 'zero_ratio'),
    ({'seed': -1}, 'seed'),
    ({'score_bins': 0}, 'score_bins'),
])
def test_generate_config_rejects_bad_values(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        GenerateConfig(**kwargs)


def test_generate_malformed_sample_frames_is_a_clear_error(tmp_path: Path) -> None:
    base = make_converted(tmp_path / 'train_data', {'episode_001': [0, 5, 10]})
    (base / 'episode_001' / 'sample_frames.json').write_text('["000010", "000005", "000020"]')
    with pytest.raises(ConfigError, match='must strictly increase'):
        generate(base, GenerateConfig(workers=1, progress=False))


def item(name: str, anchors: tuple[str, str]) -> dict[str, object]:
    return {'id': name, 'image': [*anchors, *(f'{name}/{k}' for k in range(6))]}


def test_swap_anchors_probability_one_always_borrows_from_another_sample() -> None:
    items = [item(f's{k}', (f'start{k}', f'end{k}')) for k in range(6)]
    out, eligible, replaced = swap_anchors(items, 1.0, np.random.default_rng(0))
    assert (eligible, replaced) == (6, 6)
    for original, new in zip(items, out, strict=True):
        assert new['image'][:2] != original['image'][:2]
        assert new['image'][:2] in [i['image'][:2] for i in items]
        assert new['image'][2:] == original['image'][2:]
    assert items[0]['image'][:2] == ['start0', 'end0']  # the input is not modified


def test_swap_anchors_probability_zero_and_ineligible_items() -> None:
    items = [item('a', ('s', 'e')), {'id': 'b', 'image': ['only-one']}, item('c', ('s2', 'e2'))]
    out, eligible, replaced = swap_anchors(items, 0.0, np.random.default_rng(0))
    assert (eligible, replaced) == (2, 0) and out == items


def test_postprocess_merges_shuffles_and_is_deterministic(tmp_path: Path) -> None:
    base = make_converted(tmp_path / 'train_data', {'episode_001': list(range(0, 100, 10)),
                                                    'episode_002': list(range(0, 90, 10))})
    generate(base, GenerateConfig(max_sample_num=20, workers=1, progress=False))
    stats = postprocess(base, PostprocessConfig(seed=3))
    assert (stats.total, stats.eligible) == (40, 40)
    merged = json.loads(stats.merged_json.read_text())
    final = json.loads(stats.final_json.read_text())
    assert stats.final_json == base / 'train_jsons' / 'finetune_data_final.json'
    assert sorted(r['id'] for r in merged) == sorted(
        r['id'] for ep in ('episode_001', 'episode_002')
        for r in json.loads((base / ep / 'train.json').read_text()))
    assert [r['id'] for r in final] == [r['id'] for r in merged]
    assert 0 < stats.changed <= stats.replaced
    assert stats.changed == sum(a['image'][:2] != b['image'][:2]
                                for a, b in zip(merged, final, strict=True))
    again = tmp_path / 'again.json'
    postprocess(base, PostprocessConfig(seed=3, final_json=again))
    assert again.read_bytes() == stats.final_json.read_bytes()


def test_postprocess_without_samples_is_a_clear_error(tmp_path: Path) -> None:
    base = make_converted(tmp_path / 'train_data', {'episode_001': [0, 5, 10]})
    with pytest.raises(ConfigError, match='no samples'):
        postprocess(base, PostprocessConfig())
