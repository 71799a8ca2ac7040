"""Checkpoint profiles own the image geometry; config.json decides the architecture."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from robo_dopamine_ros.backends.architectures import backend_profile, served_profile
from robo_dopamine_ros.core.errors import ConfigError, ModelLoadError
from robo_dopamine_ros.core.images import PixelLimits, prepare
from robo_dopamine_ros.core.profiles import (
    GENERIC,
    GENERIC_QWEN3,
    GRM_2_4B,
    GRM_2_8B,
    GRM_3B,
    resolve_profile,
)


def test_profiles_geometry_and_tokens_of_a_vga_frame() -> None:
    assert (GRM_3B.architecture, GRM_3B.pixel_limits) == ('qwen2_5_vl', PixelLimits(12544, 76800))
    assert GRM_3B.vga_tokens == 88                       # 224x308 at factor 28
    for grm2 in (GRM_2_4B, GRM_2_8B):
        assert grm2.architecture == 'qwen3_vl'
        assert grm2.pixel_limits == PixelLimits(12544, 76800, 32)
        assert grm2.vga_tokens == 70                     # 224x320 at factor 32
        assert any('unverified' in a or '16.7M' in a for a in grm2.assumed)
    import numpy as np

    frame = np.zeros((480, 640, 3), np.uint8)
    assert prepare(frame, GRM_3B.pixel_limits).shape == (224, 308, 3)
    assert prepare(frame, GRM_2_4B.pixel_limits).shape == (224, 320, 3)


def test_profiles_pixel_bounds_are_overridable_and_keep_the_factor() -> None:
    p = resolve_profile('tanhuajie2001/Robo-Dopamine-GRM-2.0-4B-Preview', max_pixels=200_000)
    assert p.pixel_limits == PixelLimits(12544, 200_000, 32)
    assert p.vga_tokens == 12 * 16                       # 384x512
    low = GRM_3B.with_pixels(max_pixels=9408)
    assert low.pixel_limits == PixelLimits(9408, 9408, 28)
    with pytest.raises(ConfigError, match='min_pixels <= max_pixels'):
        GRM_3B.with_pixels(min_pixels=90_000)


def test_profiles_the_checkpoint_architecture_beats_the_profile() -> None:
    p = resolve_profile('/m/Robo-Dopamine-GRM-2.0-4B-Preview', architecture='qwen2_5_vl')
    assert (p.name, p.architecture, p.pixel_limits.factor) == ('GRM-2.0-4B-Preview',
                                                               'qwen2_5_vl', 28)
    assert 'read from config.json' in p.assumed[-1]
    assert resolve_profile('/m/my-finetune', architecture='qwen3_vl') is GENERIC_QWEN3
    assert resolve_profile('/m/my-finetune') is GENERIC
    with pytest.raises(ConfigError, match=r"'llava'.*supported: \['qwen2_5_vl', 'qwen3_vl'\]"):
        resolve_profile('/m/x', architecture='llava')


def _checkpoint(path: Path, model_type: str, patch: int = 16) -> Path:
    path.mkdir()
    (path / 'config.json').write_text(json.dumps(
        {'model_type': model_type, 'vision_config': {'patch_size': patch,
                                                     'spatial_merge_size': 2}}))
    return path


def test_profiles_local_checkpoints_are_read(tmp_path: Path) -> None:
    qwen3 = _checkpoint(tmp_path / 'grm2', 'qwen3_vl')
    assert backend_profile('transformers', str(qwen3)) is GENERIC_QWEN3
    with pytest.raises(ConfigError, match="architecture 'qwen2_5_vl' given, but the config"):
        backend_profile('vllm', str(qwen3), architecture='qwen2_5_vl')
    other = _checkpoint(tmp_path / 'llama', 'llama')
    with pytest.raises(ModelLoadError, match="model_type 'llama', which is not a supported GRM "
                                             r"architecture; supported: \['qwen2_5_vl', "
                                             r"'qwen3_vl'\]"):
        backend_profile('transformers', str(other))
    odd = _checkpoint(tmp_path / 'odd', 'qwen3_vl', patch=14)
    with pytest.raises(ModelLoadError, match='patch_size x spatial_merge_size = 28'):
        backend_profile('transformers', str(odd))


def test_profiles_a_served_model_needs_a_profile_or_an_architecture() -> None:
    with pytest.raises(ConfigError, match=r"served model 'grm' is not a known GRM checkpoint.*"
                                          r'model.profile / --profile.*model.architecture'):
        served_profile('grm')
    assert served_profile('grm', 'GRM-2.0-4B-Preview') is GRM_2_4B
    assert served_profile('grm', architecture='qwen3_vl') is GENERIC_QWEN3
    assert served_profile('tanhuajie2001/Robo-Dopamine-GRM-3B') is GRM_3B
    assert backend_profile('openai', 'grm', architecture='qwen3_vl') is GENERIC_QWEN3


def test_profiles_command_prints_geometry_and_assumptions() -> None:
    out = subprocess.run(['robo-dopamine', 'profiles'], capture_output=True, text=True,
                         check=True).stdout
    block = out[out.index('GRM-2.0-4B-Preview'):].split('\n')[:6]
    assert block[1] == ('  architecture qwen3_vl, factor 32, pixels 12544..76800, 70 tokens per '
                        '640x480 image')
    assert block[2] == '  single view True, goal-less True, prompt inference'
    assert block[4].startswith('  assumed: architecture qwen3_vl')


def test_profiles_served_model_command_refuses_without_geometry(tmp_path: Path) -> None:
    from robo_dopamine_ros.files.frames import demo_episode_dir

    front = demo_episode_dir() / 'cam_high.mp4'
    run = subprocess.run(['robo-dopamine', 'episode', '--backend', 'openai', '--model', 'grm',
                          '--front', str(front), '--task', 'fold',
                          '--out-root', str(tmp_path / 'o')], capture_output=True, text=True)
    assert run.returncode != 0
    assert 'is not a known GRM checkpoint' in run.stderr
