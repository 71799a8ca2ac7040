"""Loading the checkpoint's processor (Qwen2.5-VL or Qwen3-VL), with or without torchvision.

``AutoProcessor`` insists on a video processor, which needs torchvision; the CPU CI environment has
none (the only available wheels are CUDA builds that fail to import). The GRM never sends video, so
the fallback is the same processor minus its video half.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

from ..core.errors import ModelLoadError
from ..core.images import PixelLimits
from ..core.profiles import geometry
from ..core.prompt import chat_messages
from ..core.types import Query
from .architectures import processor_class, read_checkpoint

logger = logging.getLogger(__name__)

_NO_VIDEO_CLASSES: dict[str, type] = {}
#: Token attributes the Qwen processors set from the tokenizer (Qwen3-VL also the vision ones).
_TOKEN_ATTRS = {'image_token': '<|image_pad|>', 'video_token': '<|video_pad|>',
                'vision_start_token': '<|vision_start|>', 'vision_end_token': '<|vision_end|>'}


def no_video_processor_class(architecture: str = 'qwen2_5_vl') -> type:
    """The architecture's processor without a video processor (built lazily: imports
    transformers).

    transformers 4.57 reads the ``attributes`` class list; 5.x reads ``__init__``'s signature, so
    the subclass sets both to image processor + tokenizer.
    """
    if architecture not in _NO_VIDEO_CLASSES:
        from transformers.processing_utils import ProcessorMixin

        base = processor_class(architecture)

        def __init__(self: Any, image_processor: Any = None, tokenizer: Any = None,  # noqa: N807
                     chat_template: str | None = None, **kwargs: Any) -> None:
            ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)
            for name, token in _TOKEN_ATTRS.items():
                setattr(self, name, token)
                setattr(self, f'{name}_id', tokenizer.convert_tokens_to_ids(token))

        _NO_VIDEO_CLASSES[architecture] = type(
            f'NoVideo{base.__name__}', (base,),
            {'attributes': ['image_processor', 'tokenizer'], '__init__': __init__,
             '__doc__': f'{base.__name__} for images only; works without torchvision.',
             '__module__': __name__})
    return _NO_VIDEO_CLASSES[architecture]


def load_processor(path: str | Path, *, pixel_limits: PixelLimits | None = None,
                   local_files_only: bool = True, trust_remote_code: bool = False,
                   architecture: str | None = None) -> Any:
    """Load the checkpoint's processor and pin its pixel limits.

    Args:
        path: Model directory or hub id.
        pixel_limits: Limits to enforce on the image processor, whatever the checkpoint's
            ``preprocessor_config.json`` says, so the processor never resizes the engine's
            pre-resized images differently. ``None``: 12544..76800 px at the architecture's
            factor (a stock Qwen3-VL file allows 16.7M px).
        local_files_only: Never touch the network.
        trust_remote_code: Forwarded to ``AutoProcessor``.
        architecture: The checkpoint's ``model_type``; ``None`` reads it from ``config.json``.

    Returns:
        The architecture's processor (or its no-video subclass) with ``padding_side='left'``.

    Raises:
        ModelLoadError: The checkpoint is missing or of an unsupported architecture.
        OSError, ValueError: from transformers, when the files are missing or broken (the backend
            turns them into ``ModelLoadError``).
    """
    from transformers import AutoProcessor

    if architecture is None:
        architecture = read_checkpoint(str(path), local_files_only=local_files_only,
                                       trust_remote_code=trust_remote_code).model_type
    proc = None
    # Without torchvision AutoProcessor always fails, after loading the tokenizer (~2 s for the
    # Qwen vocabulary), so it is not even tried.
    if importlib.util.find_spec('torchvision') is not None:
        try:
            proc = AutoProcessor.from_pretrained(str(path), local_files_only=local_files_only,
                                                 trust_remote_code=trust_remote_code)
        except (ImportError, RuntimeError) as exc:  # broken torchvision (CUDA wheel, CPU host)
            logger.debug('AutoProcessor failed (%s); using the no-video processor', exc)
    if proc is None:
        proc = no_video_processor_class(architecture).from_pretrained(
            str(path), local_files_only=local_files_only)
    apply_pixel_limits(proc.image_processor, pixel_limits or geometry(architecture))
    proc.tokenizer.padding_side = 'left'  # generation appends at the right end of every row
    return proc


def apply_pixel_limits(image_processor: Any, limits: PixelLimits) -> None:
    """Set min/max pixels in the form each transformers version reads.

    5.x resizes by ``size={'shortest_edge': min, 'longest_edge': max}`` (the legacy attributes
    are deprecated there); 4.57 reads ``min_pixels``/``max_pixels`` as well as ``size``.

    Raises:
        ModelLoadError: The processor's patch grid (patch size x merge size) is not the
            profile's resize factor: the engine would pre-resize to sizes it then resizes again.
    """
    factor = getattr(image_processor, 'patch_size', None), getattr(image_processor, 'merge_size',
                                                                   None)
    if None not in factor and factor[0] * factor[1] != limits.factor:
        raise ModelLoadError(f'the image processor resizes to multiples of '
                             f'{factor[0] * factor[1]!r} px (patch {factor[0]!r} x merge '
                             f'{factor[1]!r}) but the checkpoint profile says {limits.factor!r}')
    image_processor.size = {'shortest_edge': limits.min_pixels, 'longest_edge': limits.max_pixels}
    for name, value in (('min_pixels', limits.min_pixels), ('max_pixels', limits.max_pixels)):
        if name in vars(image_processor):
            setattr(image_processor, name, value)


def render_query_text(processor: Any, query: Query) -> str:
    """The query's chat-template text, before ``<|image_pad|>`` expansion.

    Every local runtime (transformers, vLLM) renders the prompt this one way, so they feed the
    model the same tokens; the template only tests for the ``image`` key, the pixels travel
    separately.

    Raises:
        ConfigError: The task is empty or contains a reserved marker.
    """
    messages = chat_messages(query.task, [None] * len(query.images), query.variant)
    return processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
