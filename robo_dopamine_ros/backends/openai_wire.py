"""The OpenAI chat-completions wire format of a GRM query: the request body, the answer's text.

The prompt is split around the 8 images exactly as :func:`core.prompt.user_content` builds it,
images as base64 data URLs (JPEG like upstream's ``eval/evaluation_api.py``, or lossless PNG),
one user turn and no system message (the server's chat template adds its default one), and
``stop: ['</score>']`` with a small ``max_tokens`` so runaway answers end early.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from typing import Any

from PIL import Image

from ..core.prompt import user_content
from ..core.types import KeyedImage, Query
from .decoding import STOP_STRING


class MalformedResponseError(ValueError):
    """The response body is not a chat completion with a text answer."""


def image_data_url(image: KeyedImage, image_format: str = 'jpeg', quality: int = 95) -> str:
    """Encode an RGB image as a ``data:`` URL (the pixels the engine prepared, unchanged size)."""
    buf = io.BytesIO()
    pil = Image.fromarray(image.pixels)
    if image_format == 'jpeg':
        pil.save(buf, format='JPEG', quality=quality)
    else:
        pil.save(buf, format='PNG')
    return f'data:image/{image_format};base64,{base64.b64encode(buf.getvalue()).decode()}'


def request_body(query: Query, *, model: str, temperature: float, max_tokens: int,
                 encode: Callable[[KeyedImage], str]) -> dict[str, Any]:
    """The JSON body of one chat-completions request for ``query``; ``encode`` turns an image
    into its data URL (the backend passes its cache of recently encoded images).

    Raises:
        ConfigError: The task is empty or holds a reserved marker.
    """
    urls = [encode(im) for im in query.images]
    content = [item if item['type'] == 'text'
               else {'type': 'image_url', 'image_url': {'url': item['image']}}
               for item in user_content(query.task, urls, query.variant)]
    return {'model': model, 'messages': [{'role': 'user', 'content': content}],
            'temperature': temperature, 'max_tokens': max_tokens, 'stop': [STOP_STRING]}


def answer_text(body: bytes) -> tuple[str, dict[str, float]]:
    """The answer text (``</score>`` re-appended when the server stopped on it) and usage.

    OpenAI servers drop the stop string from the text; vLLM says which one matched in
    ``stop_reason``, others only report ``finish_reason == 'stop'``, so an open ``<score>`` tag
    at a ``stop`` finish is taken as a stop on ``</score>``.

    Raises:
        MalformedResponseError: The body is not a chat completion with a text answer.
    """
    try:
        data = json.loads(body)
        choice = data['choices'][0]
        text = choice['message']['content']
        if not isinstance(text, str):
            raise TypeError(f'content is {type(text).__name__}, not text')
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise MalformedResponseError(f'malformed response ({type(exc).__name__}: {exc}): '
                                f'{body[:120]!r}') from exc
    open_tag = text.rfind('<score>') > text.rfind(STOP_STRING)
    stopped = choice.get('stop_reason') == STOP_STRING or (choice.get('finish_reason') == 'stop'
                                                            and open_tag)
    if stopped and not text.endswith(STOP_STRING):
        text += STOP_STRING
    usage = data.get('usage') or {}
    meta = {k: float(usage[k]) for k in ('prompt_tokens', 'completion_tokens')
            if isinstance(usage.get(k), (int, float))}
    return text, meta
