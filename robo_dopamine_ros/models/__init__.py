"""Model directories this package can build itself (random weights, no download).

Importing this package is cheap: torch, transformers and the tokenizer sources are imported only
when a model is actually built.
"""

from __future__ import annotations

from .real_dimensions import real_dimensions_config
from .tiny_grm import ARCHITECTURES, build_tiny_grm
from .tokenizer import (
    QWEN2_VL_CHAT_TEMPLATE,
    QWEN3_VL_CHAT_TEMPLATE,
    QWEN_SPECIAL_TOKENS,
    build_tokenizer,
)

__all__ = [
    'ARCHITECTURES',
    'QWEN2_VL_CHAT_TEMPLATE',
    'QWEN3_VL_CHAT_TEMPLATE',
    'QWEN_SPECIAL_TOKENS',
    'build_tiny_grm',
    'build_tokenizer',
    'real_dimensions_config',
]
