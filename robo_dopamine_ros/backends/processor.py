"""Loading the Qwen2.5-VL processor, with or without torchvision.

``AutoProcessor`` insists on a video processor, which needs torchvision; the CPU CI environment has
none (the only available wheels are CUDA builds that fail to import). The GRM never sends video, so
the fallback is the same processor minus its video half (``docs/tiny-grm.md`` §3).
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

from ..core.images import PixelLimits
from ..core.prompt import chat_messages
from ..core.types import Query

logger = logging.getLogger(__name__)

#: The GRM's upstream limits (frozen, so one shared default is safe).
DEFAULT_PIXEL_LIMITS = PixelLimits()

_NO_VIDEO_CLASS: type | None = None


def no_video_processor_class() -> type:
    """``Qwen2_5_VLProcessor`` without a video processor (built lazily: imports transformers).

    transformers 4.57 reads the ``attributes`` class list; 5.x reads ``__init__``'s signature, so
    the subclass sets both to image processor + tokenizer.
    """
    global _NO_VIDEO_CLASS
    if _NO_VIDEO_CLASS is None:
        from transformers import Qwen2_5_VLProcessor
        from transformers.processing_utils import ProcessorMixin

        class NoVideoQwen2_5_VLProcessor(Qwen2_5_VLProcessor):  # noqa: N801 (upstream naming)
            """Qwen2.5-VL processor for images only; works without torchvision."""

            attributes = ['image_processor', 'tokenizer']  # noqa: RUF012 (transformers API)

            def __init__(self, image_processor: Any = None, tokenizer: Any = None,
                         chat_template: str | None = None, **kwargs: Any) -> None:
                ProcessorMixin.__init__(self, image_processor, tokenizer,
                                        chat_template=chat_template)
                self.image_token = '<|image_pad|>'
                self.video_token = '<|video_pad|>'
                self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
                self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)

        _NO_VIDEO_CLASS = NoVideoQwen2_5_VLProcessor
    return _NO_VIDEO_CLASS


def load_processor(path: str | Path, *, pixel_limits: PixelLimits | None = DEFAULT_PIXEL_LIMITS,
                   local_files_only: bool = True, trust_remote_code: bool = False) -> Any:
    """Load the checkpoint's processor and pin its pixel limits.

    Args:
        path: Model directory or hub id.
        pixel_limits: Limits to enforce on the image processor, whatever the checkpoint's
            ``preprocessor_config.json`` says, so the processor never resizes the engine's
            pre-resized images differently. ``None`` keeps the checkpoint's values.
        local_files_only: Never touch the network.
        trust_remote_code: Forwarded to ``AutoProcessor``.

    Returns:
        A ``Qwen2_5_VLProcessor`` (or the no-video subclass) with ``padding_side='left'``.

    Raises:
        OSError, ValueError: from transformers, when the files are missing or broken (the backend
            turns them into ``ModelLoadError``).
    """
    from transformers import AutoProcessor

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
        proc = no_video_processor_class().from_pretrained(
            str(path), local_files_only=local_files_only)
    if pixel_limits is not None:
        apply_pixel_limits(proc.image_processor, pixel_limits)
    proc.tokenizer.padding_side = 'left'  # generation appends at the right end of every row
    return proc


def apply_pixel_limits(image_processor: Any, limits: PixelLimits) -> None:
    """Set min/max pixels in the form each transformers version reads.

    5.x resizes by ``size={'shortest_edge': min, 'longest_edge': max}`` (the legacy attributes
    are deprecated there); 4.57 reads ``min_pixels``/``max_pixels`` as well as ``size``.
    """
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
