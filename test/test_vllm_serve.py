"""The image geometry reaches the real engine: through the session's ``vllm serve``
(``served_grm``) and our ``openai`` backend, a query's prompt costs exactly the tokens the
checkpoint profile prices each view at (``visual_tokens``, the profile's pixel bounds), so neither
the server's processor nor its defaults resize the views the engine prepared.

The engine's own count is ``usage.prompt_tokens``: the chat template's text tokens (counted with
the checkpoint's tokenizer, one ``<|image_pad|>`` per image before expansion) plus each view's
image tokens. Three geometries: the bounds' both ends and a size between them.
"""

from __future__ import annotations

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


def views(sizes: list[tuple[int, int]], limits: Any) -> tuple[KeyedImage, ...]:
    """Eight random frames of ``sizes`` resized as the engine does."""
    rng = np.random.default_rng(0)
    return tuple(KeyedImage(ImageKey('geometry', f'slot{i}', i),
                            prepare(rng.integers(0, 256, (*hw, 3), dtype=np.uint8), limits))
                 for i, hw in enumerate(sizes))


def test_served_engine_spends_the_profiles_image_tokens_per_view(served_grm: ServedGrm) -> None:
    from robo_dopamine_ros.backends.openai_backend import OpenAIBackend, OpenAIConfig
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
