"""The real-dimension benchmarks' model directories (bench/random_grm.py), without running a model.

``bench/real_dims.py`` compares the memory of a random model against the memory cap's sizing read
from a *header-only* ``model.safetensors``: that header must size exactly what ``save_pretrained``
writes for the same configuration (tied embeddings once, no non-persistent buffers), and a depth
truncation must keep the attention pattern of the real towers valid.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip('torch')
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'bench'))

from random_grm import depths, truncated_config, write_header_only  # noqa: E402

from robo_dopamine_ros.backends.weights_size import weights_bytes  # noqa: E402
from robo_dopamine_ros.core.profiles import SUPPORTED_ARCHITECTURES  # noqa: E402
from robo_dopamine_ros.models.real_dimensions import real_dimensions_config  # noqa: E402
from robo_dopamine_ros.models.tiny_grm import build_tiny_grm  # noqa: E402


@pytest.mark.parametrize('arch', SUPPORTED_ARCHITECTURES)
def test_header_only_weights_size_as_the_saved_checkpoint(arch: str, tmp_path: Path) -> None:
    saved = build_tiny_grm(tmp_path / 'saved', vocab='synthetic', architecture=arch)
    config = json.loads((saved / 'config.json').read_text())
    header = tmp_path / 'header'
    header.mkdir()
    write_header_only(config, header / 'model.safetensors', torch.float32)
    assert weights_bytes(header, 2) == weights_bytes(saved, 2) > 0


@pytest.mark.parametrize('arch', SUPPORTED_ARCHITECTURES)
def test_full_depth_keeps_the_released_attention_pattern(arch: str) -> None:
    assert truncated_config(arch) == real_dimensions_config(arch)


def test_truncation_keeps_every_shape_and_a_valid_pattern() -> None:
    qwen25 = truncated_config('qwen2_5_vl', 4, 8)
    assert depths(qwen25) == (4, 8)
    assert qwen25['vision_config']['fullatt_block_indexes'] == [7]
    assert truncated_config('qwen2_5_vl', 2, 3)['vision_config']['fullatt_block_indexes'] == [2]
    qwen3 = truncated_config('qwen3_vl', 4, 8)
    assert depths(qwen3) == (4, 8)
    assert qwen3['vision_config']['deepstack_visual_indexes'] == [1, 3, 5]
    full = real_dimensions_config('qwen3_vl')
    for key in ('hidden_size', 'intermediate_size', 'num_attention_heads', 'num_key_value_heads'):
        assert qwen3['text_config'][key] == full['text_config'][key]
    with pytest.raises(ValueError, match='deepstack'):
        truncated_config('qwen3_vl', 2, 8)
    with pytest.raises(ValueError, match='depths'):
        truncated_config('qwen2_5_vl', 37, 8)


def test_real_dims_measures_a_fused_step_with_the_forced_answer(tmp_path: Path) -> None:
    """The benchmark's measurement on a tiny model: the forced answer decodes as many steps as
    the real answer's tokens need (without prefill: all but the first; with it: up to the early
    stop after the number) and every phase is counted once."""
    import argparse

    from real_dims import ANSWER, measure_arch
    from transformers import AutoTokenizer

    from robo_dopamine_ros.backends.prefill import first_after_number, head_ids

    path = build_tiny_grm(tmp_path / 'tiny', vocab='synthetic', architecture='qwen3_vl')
    opts = argparse.Namespace(device='cpu', dtype='float32', steps=1, warmup=0,
                              threads=torch.get_num_threads())
    result = measure_arch(opts, 'qwen3_vl', path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    ids = tokenizer.encode(ANSWER, add_special_tokens=False)
    stop = first_after_number([tokenizer.decode([i]) for i in ids])
    assert stop is not None
    want = {False: len(ids) - 1, True: stop - len(head_ids(tokenizer))}
    assert {on: split['decode_steps'] for on, split in result['split'].items()} == want
    assert result['answers'] == [ANSWER]
    assert result['view_tokens'] == result['profile_view_tokens'] == 70
    for split in result['split'].values():
        assert min(split[p] for p in ('vision', 'prefill', 'decode', 'generate_loop')) >= 0
        assert 0 < split['layers_prefill'] <= split['prefill']
    assert result['truncated'] and result['tensor_gib'] > 0
