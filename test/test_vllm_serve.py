"""The served model is the in-process one, and the image geometry reaches the real engine.

Through the session's ``vllm serve`` (``served_grm``): the first answer token's log-probabilities
equal the transformers backend's on the same views (what a random tiny model's texts, alike for
any image, cannot show); and with our ``openai`` backend a query's prompt costs exactly the
tokens the checkpoint profile prices each view at (``visual_tokens``, the profile's pixel
bounds), so neither the server's processor nor its defaults resize the views the engine
prepared. The engine's own count is ``usage.prompt_tokens``: the chat template's text tokens
(counted with the checkpoint's tokenizer, one ``<|image_pad|>`` per image before expansion) plus
each view's image tokens. Three geometries: the bounds' both ends and a size between them.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import numpy as np
import pytest
from vllm_serve import ServedGrm

from robo_dopamine_ros.core.images import prepare, visual_tokens
from robo_dopamine_ros.core.prompt import PromptVariant
from robo_dopamine_ros.core.types import ImageKey, KeyedImage, Mode, Query

pytestmark = [pytest.mark.ros, pytest.mark.slow]
TASK = 'put the cup on the plate'
#: Camera frame sizes (height, width): above the max bound, between the bounds, below the min.
FRAMES = ((480, 640), (120, 160), (40, 60))
#: float32 on both sides: ~1e-6 apart measured; other views move them by ~5e-3 (tiny model).
LOGPROB_TOL = 1e-4


def views(sizes: list[tuple[int, int]], limits: Any, seed: int = 0) -> tuple[KeyedImage, ...]:
    """Eight random frames of ``sizes`` resized as the engine does."""
    rng = np.random.default_rng(seed)
    return tuple(KeyedImage(ImageKey('geometry', f'slot{i}', i),
                            prepare(rng.integers(0, 256, (*hw, 3), dtype=np.uint8), limits))
                 for i, hw in enumerate(sizes))


def test_served_engine_spends_the_profiles_image_tokens_per_view(served_grm: ServedGrm) -> None:
    from robo_dopamine_ros.backends.openai_backend import OpenAIBackend
    from robo_dopamine_ros.backends.openai_config import OpenAIConfig
    from robo_dopamine_ros.backends.processor import load_processor, render_query_text

    limits = served_grm.profile.pixel_limits
    processor = load_processor(served_grm.model, pixel_limits=limits,
                               architecture=served_grm.profile.architecture)
    backend = OpenAIBackend(OpenAIConfig(model=served_grm.server.served_name,
                                         base_url=served_grm.server.url, image_format='png',
                                         timeout_s=300.0, max_retries=1))
    rows = []
    try:
        for k in range(len(FRAMES)):
            sizes = [FRAMES[(k + i) % len(FRAMES)] for i in range(8)]
            query = Query(TASK, views(sizes, limits), Mode.INCREMENTAL, PromptVariant.INFERENCE)
            [answer] = backend.generate([query])
            assert answer.error is None, (answer.error, served_grm.server.tail())
            text = len(processor.tokenizer(render_query_text(processor, query))['input_ids'])
            rows.append({'views': [im.pixels.shape[:2] for im in query.images],
                         'image_tokens': [visual_tokens(*hw, limits) for hw in sizes],
                         'text_tokens': text - 8, 'prompt_tokens': answer.meta['prompt_tokens']})
    finally:
        backend.close()
    print('geometry', served_grm.profile.architecture, rows)
    assert all(r['prompt_tokens'] == r['text_tokens'] + sum(r['image_tokens']) for r in rows), rows


def served_top_logprobs(served: ServedGrm, query: Query) -> dict[int, float]:
    """The first answer token's top-5 log-probabilities from the server (raw, pre-sampling),
    by token id."""
    from robo_dopamine_ros.backends.openai_wire import (
        image_data_url,
        image_part,
        request_payload,
        sampling_fields,
    )

    body = json.loads(request_payload(
        query, model=served.server.served_name, max_tokens=1,
        sampling=sampling_fields(upstream=False, vllm=True),
        part=lambda im: image_part(image_data_url(im, 'png'))))
    request = urllib.request.Request(
        f'{served.server.url}/chat/completions', headers={'Content-Type': 'application/json'},
        data=json.dumps({**body, 'logprobs': True, 'top_logprobs': 5,
                         'return_tokens_as_token_ids': True}).encode())
    with urllib.request.urlopen(request, timeout=300) as r:
        [first] = json.loads(r.read())['choices'][0]['logprobs']['content']
    return {int(t['token'].removeprefix('token_id:')): t['logprob'] for t in first['top_logprobs']}


def test_served_model_computes_the_in_process_models_distribution(served_grm: ServedGrm) -> None:
    """The first answer token's distribution through the server equals the transformers
    backend's on the same views (a random tiny model answers alike for any image, so this
    compares what its texts cannot)."""
    import torch

    from robo_dopamine_ros.backends.transformers_backend import TransformersBackend
    from robo_dopamine_ros.backends.transformers_config import TransformersConfig

    limits = served_grm.profile.pixel_limits
    backend = TransformersBackend(TransformersConfig(model=str(served_grm.model), device='cpu',
                                                     pixel_limits=limits))
    rows = []
    try:
        for k in range(len(FRAMES)):
            sizes = [FRAMES[(k + i) % len(FRAMES)] for i in range(8)]
            query = Query(TASK, views(sizes, limits, seed=k), Mode.INCREMENTAL,
                          PromptVariant.INFERENCE)
            served = served_top_logprobs(served_grm, query)
            with torch.inference_mode():
                logits = backend.model(**backend.build_inputs([query])).logits[0, -1]
            local = torch.log_softmax(logits.float(), dim=-1)
            rows.append({'served': served,
                         'in_process': {i: round(float(local[i]), 6) for i in served}})
    finally:
        backend.close()
    print('first-token logprobs', rows)
    assert all(abs(v - row['in_process'][i]) <= LOGPROB_TOL
               for row in rows for i, v in row['served'].items()), rows
    # The views reach the model: other images, another distribution (by more than the bound;
    # other top-5 tokens, or a token whose log-probability moved).
    common = set.intersection(*(set(row['served']) for row in rows))
    assert len(common) < 5 or any(
        max(r['served'][i] for r in rows) - min(r['served'][i] for r in rows) > LOGPROB_TOL
        for i in common), rows
