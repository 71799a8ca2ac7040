"""The OpenAI chat-completions wire format of a GRM query: the request body, the answer's text.

The prompt is split around the 8 images exactly as :func:`core.prompt.user_content` builds it,
images as base64 data URLs (JPEG like upstream's ``eval/evaluation_api.py``, or lossless PNG),
the system line the in-process runtimes send (:data:`core.prompt.DEFAULT_SYSTEM_PROMPT`; a
Qwen2.5-VL template adds it by itself, a Qwen3-VL one does not) and one user turn, and
``stop: ['</score>']`` with a small ``max_tokens`` so runaway answers end early. Every decoding
setting is in the request (:func:`sampling_fields`): a vLLM server otherwise takes the ones it
leaves out from the checkpoint's ``generation_config.json`` (Qwen's: repetition penalty 1.05,
top-k 1, ...), and the served answers would no longer be the in-process backends' greedy ones.

With answer prefill (:mod:`.prefill`) the request ends with a partial assistant turn holding the
head, continued as vLLM's server does (``continue_final_message``, no generation prompt), and
the early stop's strings kept in the text; a server that ignores those fields answers whole,
which :func:`.prefill.finish_answer` recognises.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable

from PIL import Image

from ..core.prompt import DEFAULT_SYSTEM_PROMPT, user_content
from ..core.types import KeyedImage, Query
from .decoding import STOP_STRING, UPSTREAM_SAMPLING
from .prefill import finish_answer, stop_strings


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


def image_part(url: str) -> bytes:
    """One image content item of the user turn as JSON text."""
    return json.dumps({'type': 'image_url', 'image_url': {'url': url}}).encode()


def sampling_fields(*, upstream: bool, vllm: bool) -> dict[str, float | int]:
    """The decoding settings of every request: greedy, or upstream's sampling (``upstream``).

    ``temperature`` and ``top_p`` are OpenAI's fields; with ``vllm`` also vLLM's own ``top_k``,
    ``min_p`` and ``repetition_penalty`` (APIs that refuse unknown fields take ``vllm=False``).
    """
    fields: dict[str, float | int] = {'temperature': 0.0, 'top_p': 1.0, 'top_k': -1,
                                      'min_p': 0.0, 'repetition_penalty': 1.0}
    if upstream:
        fields.update(UPSTREAM_SAMPLING)
    if not vllm:
        fields = {k: fields[k] for k in ('temperature', 'top_p')}
    return fields


def request_payload(query: Query, *, model: str, sampling: dict[str, float | int],
                    max_tokens: int, part: Callable[[KeyedImage], bytes],
                    head: str = '') -> bytes:
    """The JSON body of one chat-completions request for ``query``.

    ``part`` gives an image's content item already serialised (:func:`image_part` of its data
    URL): the backend keeps them, since serialising a step's ~1 MB of data URLs again for each
    of its three requests took 2.6 ms per request, more than the rest of the client together.
    ``head``: the prefilled answer head (``''``: none).

    Raises:
        ConfigError: The task is empty or holds a reserved marker.
    """
    content = [json.dumps(item).encode() if item['type'] == 'text' else part(item['image'])
               for item in user_content(query.task, query.images, query.variant)]
    fields = {'model': model, **sampling, 'max_tokens': max_tokens,
              'stop': stop_strings(bool(head))}
    system = json.dumps({'role': 'system',
                         'content': [{'type': 'text', 'text': DEFAULT_SYSTEM_PROMPT}]}).encode()
    turns = b''
    if head:
        fields.update(continue_final_message=True, add_generation_prompt=False,
                      include_stop_str_in_output=True)
        turns = b', ' + json.dumps({'role': 'assistant', 'content': head}).encode()
    start = json.dumps(fields).encode()
    return b'%s, "messages": [%s, {"role": "user", "content": [%s]}%s]}' % (
        start[:-1], system, b', '.join(content), turns)


def answer_text(body: bytes, head: str = '') -> tuple[str, dict[str, float]]:
    """The answer text (``</score>`` re-appended when the server stopped on it) and usage.

    OpenAI servers drop the stop string from the text; vLLM says which one matched in
    ``stop_reason``, others only report ``finish_reason == 'stop'``, so an open ``<score>`` tag
    at a ``stop`` finish is taken as a stop on ``</score>``. With a prefilled ``head`` the text
    is the whole answer (:func:`.prefill.finish_answer`).

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
    usage = data.get('usage') or {}
    meta = {k: float(usage[k]) for k in ('prompt_tokens', 'completion_tokens')
            if isinstance(usage.get(k), (int, float))}
    if head:
        text, completed = finish_answer(head, text)
        return text, {**meta, 'early_stop': float(completed)}
    open_tag = text.rfind('<score>') > text.rfind(STOP_STRING)
    stopped = choice.get('stop_reason') == STOP_STRING or (choice.get('finish_reason') == 'stop'
                                                            and open_tag)
    if stopped and not text.endswith(STOP_STRING):
        text += STOP_STRING
    return text, meta
