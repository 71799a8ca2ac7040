"""scripts/widen_demo_grm.py: a Qwen2.5-VL GRM with head size 16 becomes a servable head-32 one
that computes the same function; the committed demo GRMs have servable head sizes.

The widened model's logits over a prompt with an image (so the M-RoPE height and width axes are
exercised, not only time) equal the original's to float rounding; a deliberately wrong rotary
placement (old dimensions kept in place instead of moved to their frequency) does not.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from script_loader import load_script

torch = pytest.importorskip('torch')
pytest.importorskip('transformers')

from robo_dopamine_ros.backends.architectures import model_class  # noqa: E402
from robo_dopamine_ros.models.tiny_grm import SERVABLE_HEAD_SIZES, build_tiny_grm  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _head_size(model_dir: Path) -> int:
    config = json.loads((model_dir / 'config.json').read_text())
    text = config.get('text_config', config)
    return text.get('head_dim') or text['hidden_size'] // text['num_attention_heads']


@pytest.mark.parametrize('name', ['demo_grm', 'demo_grm_qwen3'])
def test_committed_demo_grms_have_a_servable_head_size(name: str) -> None:
    assert _head_size(ROOT / 'robo_dopamine_ros' / 'models' / name) in SERVABLE_HEAD_SIZES


@pytest.fixture(scope='module')
def head16(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen2.5-VL with the first demo GRM's text heads: 4 of 16 (2 key/value)."""
    base = build_tiny_grm(tmp_path_factory.mktemp('base'), vocab='synthetic', seed=3)
    config = json.loads((base / 'config.json').read_text())
    config.update(num_attention_heads=4, num_key_value_heads=2)      # the released flat layout
    config['rope_scaling']['mrope_section'] = [2, 3, 3]
    return build_tiny_grm(tmp_path_factory.mktemp('head16'), vocab='synthetic', seed=3,
                          config=config)


def _logits(model_dir: Path) -> torch.Tensor:
    config = json.loads((model_dir / 'config.json').read_text())
    model = model_class('qwen2_5_vl').from_pretrained(str(model_dir), dtype=torch.float32).eval()
    vision = config['vision_config']
    grid = torch.tensor([[1, 8, 6]])                 # 48 patches -> 12 image tokens
    patch = 3 * vision['temporal_patch_size'] * vision['patch_size'] ** 2
    pixels = torch.randn(48, patch, generator=torch.Generator().manual_seed(0))
    ids = [5, 6, config['vision_start_token_id'], *[config['image_token_id']] * 12,
           config['vision_end_token_id'], 7, 8, 9, 10]
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids]), pixel_values=pixels,
                     image_grid_thw=grid).logits


def test_widening_keeps_the_function(head16: Path, tmp_path: Path) -> None:
    widen = load_script('widen_demo_grm')
    wide = widen.widen(head16, tmp_path / 'wide')
    assert _head_size(head16) == 16 and _head_size(wide) == 32
    before, after = _logits(head16), _logits(wide)
    assert torch.allclose(before, after, atol=1e-5), (before - after).abs().max()


def test_a_wrong_rotary_placement_changes_the_function(head16: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    widen = load_script('widen_demo_grm')
    monkeypatch.setattr(widen, 'head_rows', lambda head: list(range(head)))
    wrong = widen.widen(head16, tmp_path / 'wrong')
    assert not torch.allclose(_logits(head16), _logits(wrong), atol=1e-4)


def test_a_model_it_cannot_widen_exactly_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    """Qwen3-VL interleaves its M-RoPE axes: refused with the reason, no output directory."""
    widen = load_script('widen_demo_grm')
    qwen3 = ROOT / 'robo_dopamine_ros' / 'models' / 'demo_grm_qwen3'
    with pytest.raises(SystemExit, match=r'only Qwen2\.5-VL can be widened exactly'):
        widen.widen(qwen3, tmp_path / 'out')
    assert not (tmp_path / 'out').exists()
