"""Released ``config.json`` files of real dimensions, for random-weight benchmarks.

A random model built from one of these (``build_tiny_grm(..., config=...)``) costs what the real
GRM costs in memory and time, without downloading it; the tiny builder also starts from them so
its files keep the released layout.
"""

from __future__ import annotations

from typing import Any

from ..core.profiles import check_architecture


def real_dimensions_config(architecture: str = 'qwen2_5_vl') -> dict[str, Any]:
    """A released ``config.json`` of real dimensions, for random-weight benchmarks.

    ``'qwen2_5_vl'``: Qwen2.5-VL-3B (flat layout); the GRM-3B (via RoboBrain2.0-3B) keeps these
    dimensions, so a random model built from it costs what the real one costs in memory and
    time. ``'qwen3_vl'``: the assumed Qwen3-VL-4B dimensions of GRM-2.0-4B (unverified: no
    GRM-2.0 config was reachable). Pass it as ``build_tiny_grm(..., config=..., vocab='qwen')``;
    its token ids are the real Qwen ids.
    """
    if check_architecture(architecture) == 'qwen3_vl':
        return _qwen3_vl_4b_config()
    return {
        'architectures': ['Qwen2_5_VLForConditionalGeneration'],
        'model_type': 'qwen2_5_vl',
        'attention_dropout': 0.0,
        'bos_token_id': 151643,
        'eos_token_id': 151645,
        'vision_start_token_id': 151652,
        'vision_end_token_id': 151653,
        'vision_token_id': 151654,
        'image_token_id': 151655,
        'video_token_id': 151656,
        'hidden_act': 'silu',
        'hidden_size': 2048,
        'initializer_range': 0.02,
        'intermediate_size': 11008,
        'max_position_embeddings': 128000,
        'max_window_layers': 70,
        'num_attention_heads': 16,
        'num_hidden_layers': 36,
        'num_key_value_heads': 2,
        'rms_norm_eps': 1e-06,
        'rope_theta': 1000000.0,
        'sliding_window': 32768,
        'tie_word_embeddings': True,
        'torch_dtype': 'bfloat16',
        'use_cache': True,
        'use_sliding_window': False,
        'vocab_size': 151936,
        'rope_scaling': {'type': 'mrope', 'mrope_section': [16, 24, 24]},
        'vision_config': {
            'depth': 32,
            'hidden_act': 'silu',
            'hidden_size': 1280,
            'intermediate_size': 3420,
            'num_heads': 16,
            'in_chans': 3,
            'out_hidden_size': 2048,
            'patch_size': 14,
            'spatial_merge_size': 2,
            'spatial_patch_size': 14,
            'window_size': 112,
            'fullatt_block_indexes': [7, 15, 23, 31],
            'tokens_per_second': 2,
            'temporal_patch_size': 2,
        },
    }


def _qwen3_vl_4b_config() -> dict[str, Any]:
    """Qwen3-VL-4B-Instruct's ``config.json`` (nested layout, as released by Qwen)."""
    return {
        'architectures': ['Qwen3VLForConditionalGeneration'],
        'model_type': 'qwen3_vl',
        'image_token_id': 151655,
        'video_token_id': 151656,
        'vision_start_token_id': 151652,
        'vision_end_token_id': 151653,
        'tie_word_embeddings': True,
        'text_config': {
            'model_type': 'qwen3_vl_text',
            'attention_bias': False,
            'attention_dropout': 0.0,
            'bos_token_id': 151643,
            'eos_token_id': 151645,
            'head_dim': 128,
            'hidden_act': 'silu',
            'hidden_size': 2560,
            'initializer_range': 0.02,
            'intermediate_size': 9728,
            'max_position_embeddings': 262144,
            'num_attention_heads': 32,
            'num_hidden_layers': 36,
            'num_key_value_heads': 8,
            'rms_norm_eps': 1e-06,
            'rope_scaling': {'mrope_interleaved': True, 'mrope_section': [24, 20, 20],
                             'rope_type': 'default'},
            'rope_theta': 5000000,
            'tie_word_embeddings': True,
            'use_cache': True,
            'vocab_size': 151936,
        },
        'vision_config': {
            'model_type': 'qwen3_vl',
            'deepstack_visual_indexes': [5, 11, 17],
            'depth': 24,
            'hidden_act': 'gelu_pytorch_tanh',
            'hidden_size': 1024,
            'in_channels': 3,
            'initializer_range': 0.02,
            'intermediate_size': 4096,
            'num_heads': 16,
            'num_position_embeddings': 2304,
            'out_hidden_size': 2560,
            'patch_size': 16,
            'spatial_merge_size': 2,
            'temporal_patch_size': 2,
        },
    }

