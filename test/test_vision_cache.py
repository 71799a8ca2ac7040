"""The vision-embedding cache on the tiny random-weight GRMs (CPU, fp32, offline).

Random weights make decoded text meaningless, so equality is asserted on what the model computes:
the processor tensors and the logits of every generated position, with and without the cache.
Every test that loads a model runs on both architectures; on Qwen3-VL the cache also holds the
tower's deepstack features, which the logits equality covers.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip('torch')
pytest.importorskip('transformers')

from robo_dopamine_ros.backends.distinct_images import DistinctImages  # noqa: E402
from robo_dopamine_ros.backends.processor import load_processor  # noqa: E402
from robo_dopamine_ros.backends.transformers_backend import TransformersBackend  # noqa: E402
from robo_dopamine_ros.backends.transformers_config import TransformersConfig  # noqa: E402
from robo_dopamine_ros.backends.vllm_backend import build_requests  # noqa: E402
from robo_dopamine_ros.core.engine import EngineConfig, EpisodeEngine, Sample  # noqa: E402
from robo_dopamine_ros.core.errors import ConfigError  # noqa: E402
from robo_dopamine_ros.core.profiles import geometry, resolve_profile  # noqa: E402
from robo_dopamine_ros.core.types import ImageKey, KeyedImage, Mode, Query  # noqa: E402

VISION_START, VISION_START_ID = '<|vision_start|>', 151652
#: Shared prefix of the fused_step() prompts in tokens: system, prompt head, REF START, REF END.
PREFIX_TOKENS = 179

#: Logits of the same inputs, tower run per distinct image vs once on the whole batch (fp32).
ATOL = 1e-5


@pytest.fixture(scope='module', autouse=True)
def _one_torch_thread():
    """Steady timings on small shared machines (see test_transformers_backend)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


#: Pixel rows of a fused step's 24 images (18 of 112x140, 6 goals of 168x140): 14 px patches
#: give 80 and 120 rows; Qwen3-VL resizes them to 128x128 and 160x128 (16 px patches: 64, 80).
FUSED_ROWS = {'qwen2_5_vl': 18 * 80 + 6 * 120, 'qwen3_vl': 18 * 64 + 6 * 80}


@pytest.fixture(scope='module')
def plain(tiny_arch_dir: Path, tiny_arch: str) -> TransformersBackend:
    b = TransformersBackend(TransformersConfig(model=str(tiny_arch_dir), device='cpu',
                                               vision_cache=False,
                                               pixel_limits=geometry(tiny_arch)))
    yield b
    b.close()


@pytest.fixture
def cached(tiny_arch_backend: TransformersBackend) -> TransformersBackend:
    """The shared backend (cache on) with an empty cache and zero counts."""
    tiny_arch_backend.reset_cache()
    tiny_arch_backend.vision_cache.hits = tiny_arch_backend.vision_cache.misses = 0
    return tiny_arch_backend


def image(episode: str, role: str, stamp: int, size: tuple[int, int] = (112, 140),
          seed: int | None = None) -> KeyedImage:
    rng = np.random.default_rng(zlib.crc32(f'{role}{stamp}'.encode()) if seed is None else seed)
    return KeyedImage(ImageKey(episode, role, stamp), rng.integers(0, 256, (*size, 3), np.uint8))


def fused_step(episode: str = 'ep') -> list[Query]:
    """A fused step's three queries sharing REF START, goal and AFTER; the backward query's
    BEFORE (the goal) is larger, so its row is longer and the other two are left padded."""
    start, goal = image(episode, 'front', 1), image(episode, 'goal', 0, (168, 140))
    prev = (image(episode, 'front', 2), image(episode, 'left', 2), image(episode, 'right', 2))
    first = (start, image(episode, 'left', 1), image(episode, 'right', 1))
    after = (image(episode, 'front', 3), image(episode, 'left', 3), image(episode, 'right', 3))
    return [Query('open the drawer', (start, goal, *before, *after), mode)
            for mode, before in ((Mode.INCREMENTAL, prev), (Mode.FORWARD, first),
                                 (Mode.BACKWARD, (goal, goal, goal)))]


def step_logits(backend: TransformersBackend, queries: list[Query]) -> torch.Tensor:
    """Raw logits of 4 greedy positions for every row: [positions, rows, vocab]."""
    enc = backend.build_inputs(queries)
    with torch.inference_mode():
        out = backend.model.generate(**enc, max_new_tokens=4, min_new_tokens=4, do_sample=False,
                                     output_logits=True, return_dict_in_generate=True,
                                     pad_token_id=backend.processor.tokenizer.pad_token_id)
    return torch.stack(out.logits)


# -- equality ----------------------------------------------------------------------------------

def test_vision_cache_keeps_inputs_and_logits(plain: TransformersBackend,
                                              cached: TransformersBackend) -> None:
    queries = fused_step()
    enc_plain, enc_cached = plain.build_inputs(queries), cached.build_inputs(queries)
    assert sorted(enc_plain) == sorted(enc_cached)
    for name in enc_plain:
        assert torch.equal(enc_plain[name], enc_cached[name]), name
    assert enc_plain['attention_mask'][:, 0].tolist() == [0, 0, 1]  # left padding exercised
    reference = step_logits(plain, queries)
    cold = step_logits(cached, queries)               # the 10 distinct images encoded
    warm = step_logits(cached, queries)               # all 24 from the cache
    assert reference.shape == (4, 3, plain.model.config.text_config.vocab_size)
    assert reference.abs().max() > 0.1
    assert (cold - reference).abs().max().item() <= ATOL
    assert (warm - reference).abs().max().item() <= ATOL
    cache = cached.vision_cache
    assert (cache.misses, cache.hits, len(cache)) == (10, 38, 10)


def test_images_are_preprocessed_once_with_the_same_tensors(
        plain: TransformersBackend, tiny_arch_dir: Path, tiny_arch: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The backend preprocesses each distinct image of a batch once; the tensors are those of
    the bare processor given every image separately."""
    from PIL import Image

    queries = fused_step()
    bare = load_processor(tiny_arch_dir)
    expected = bare(text=[plain.render_text(q) for q in queries],
                    images=[Image.fromarray(im.pixels) for q in queries for im in q.images],
                    padding=True, return_tensors='pt')
    seen: list[int] = []
    assert isinstance(plain.processor.image_processor, DistinctImages)
    cls = type(plain.processor.image_processor.inner)
    call = cls.__call__
    monkeypatch.setattr(cls, '__call__',
                        lambda self, images, **kw: seen.append(len(images)) or call(self, images,
                                                                                    **kw))
    enc = plain.build_inputs(queries)
    assert seen == [10]
    assert sorted(enc) == sorted(expected)
    for name in expected:
        assert torch.equal(enc[name], expected[name]), name
    assert enc['pixel_values'].shape[0] == FUSED_ROWS[tiny_arch]


def test_vision_cache_direct_forward_matches(plain: TransformersBackend,
                                             cached: TransformersBackend) -> None:
    enc = plain.build_inputs(fused_step())
    with torch.inference_mode():
        reference = plain.model(**enc, logits_to_keep=1).logits
        cached.model(**enc, logits_to_keep=1)
        warm = cached.model(**enc, logits_to_keep=1).logits
    assert reference.shape == (3, 1, plain.model.config.text_config.vocab_size)
    assert (warm - reference).abs().max().item() <= ATOL
    assert cached.vision_cache.misses == 10


def test_vision_cache_returns_qwen3_deepstack_features_per_image(
        tiny_grm_qwen3_dir: Path) -> None:
    """A Qwen3-VL tower's deepstack levels come back per level and per image, equal to the
    uncached method's, whether encoded now or served from the cache."""
    backend = TransformersBackend(TransformersConfig(model=str(tiny_grm_qwen3_dir), device='cpu',
                                                     pixel_limits=geometry('qwen3_vl')))
    try:
        enc = backend.build_inputs(fused_step()[:1])
        inner = backend.model.model
        with torch.inference_mode():
            reference = type(inner).get_image_features(inner, enc['pixel_values'],
                                                       enc['image_grid_thw'])
            cold = inner.get_image_features(enc['pixel_values'], enc['image_grid_thw'])
            warm = inner.get_image_features(enc['pixel_values'], enc['image_grid_thw'])
        assert len(reference.deepstack_features) == 2                      # levels [0, 1]
        for out in (cold, warm):
            assert len(out.pooler_output) == 8
            for got, want in zip(out.pooler_output, reference.pooler_output, strict=True):
                assert torch.equal(got, want)
            for level, want_level in zip(out.deepstack_features, reference.deepstack_features,
                                         strict=True):
                assert len(level) == 8
                for got, want in zip(level, want_level, strict=True):
                    assert torch.equal(got, want)
        assert (backend.vision_cache.misses, backend.vision_cache.hits) == (8, 8)
    finally:
        backend.close()


def test_vision_cache_never_trusts_a_reused_key(plain: TransformersBackend,
                                                cached: TransformersBackend) -> None:
    first = fused_step()
    cached.generate(first)
    # Same keys, other pixels in the AFTER slots: the digest differs, so they are encoded.
    swapped = [Query(q.task, (*q.images[:5], *(image('ep', im.key.role, im.key.stamp_ns,
                                                        seed=99 + i)
                                                  for i, im in enumerate(q.images[5:]))),
                     q.mode) for q in first]
    before = cached.vision_cache.misses
    assert (step_logits(cached, swapped) - step_logits(plain, swapped)).abs().max() <= ATOL
    assert cached.vision_cache.misses - before == 3


def test_vision_cache_serves_a_call_that_carries_the_language_models_use_cache(
        cached: TransformersBackend) -> None:
    """transformers 5.17 passes the forward's ``use_cache`` to ``get_image_features``: the
    cache still serves it (it used to hand such a call to the tower, never hitting)."""
    enc = cached.build_inputs(fused_step()[:1])
    inner = cached.model.model
    with torch.inference_mode():
        inner.get_image_features(enc['pixel_values'], enc['image_grid_thw'])
        hits = cached.vision_cache.hits
        inner.get_image_features(enc['pixel_values'], enc['image_grid_thw'], use_cache=True)
    assert cached.vision_cache.hits - hits == 8


def test_vision_cache_shares_identical_pixels_across_keys(cached: TransformersBackend) -> None:
    q = fused_step()[0]
    twin = Query(q.task, tuple(KeyedImage(ImageKey('ep', f'twin{i}', 7), im.pixels.copy())
                               for i, im in enumerate(q.images)), q.mode)
    cached.generate([q])
    cached.generate([twin])
    assert (cached.vision_cache.misses, cached.vision_cache.hits) == (8, 8)


# -- through the engine: each image once per episode -------------------------------------------

def test_vision_cache_encodes_three_new_views_per_fused_step(cached: TransformersBackend,
                                                            tiny_arch: str) -> None:
    engine = EpisodeEngine(cached, EngineConfig(), resolve_profile('', architecture=tiny_arch))
    rng = np.random.default_rng(0)
    views = [tuple(rng.integers(0, 256, (112, 140, 3), np.uint8) for _ in range(3))
             for _ in range(4)]
    engine.start('open the drawer', rng.integers(0, 256, (112, 140, 3), np.uint8))
    misses = []
    for i, (front, left, right) in enumerate(views):
        before = cached.vision_cache.misses
        engine.step(Sample(i + 1, front, left, right))
        misses.append(cached.vision_cache.misses - before)
    # START: no query; step 1: START's 3 views, goal and 3 new; then the 3 new views only.
    assert misses == [0, 7, 3, 3]
    assert len(cached.vision_cache) == 13
    engine.reset()                                       # a new episode clears the cache
    engine.step(Sample(10, *views[0]))
    engine.step(Sample(11, *views[1]))
    assert len(cached.vision_cache) == 7


def test_vision_cache_lru_cap_bounds_memory(plain: TransformersBackend, tiny_arch_dir: Path,
                                            tiny_arch: str) -> None:
    small = TransformersBackend(TransformersConfig(model=str(tiny_arch_dir), device='cpu',
                                                   vision_cache_entries=4,
                                                   pixel_limits=geometry(tiny_arch)))
    try:
        queries = fused_step()
        assert (step_logits(small, queries) - step_logits(plain, queries)).abs().max() <= ATOL
        assert len(small.vision_cache) == 4
        step_logits(small, queries)
        assert small.vision_cache.misses == 16  # the 4 kept hit, the other 6 are encoded again
    finally:
        small.close()


def test_vision_cache_reset_cache_empties_it(cached: TransformersBackend) -> None:
    cached.generate(fused_step()[:1])
    assert len(cached.vision_cache) == 8
    cached.reset_cache()
    assert len(cached.vision_cache) == 0


# -- configuration -----------------------------------------------------------------------------

def test_vision_cache_is_on_by_default_and_can_be_disabled(plain: TransformersBackend,
                                                           cached: TransformersBackend) -> None:
    assert TransformersConfig().vision_cache is True
    assert 'get_image_features' in vars(cached.model.model)
    assert plain.vision_cache is None
    assert 'get_image_features' not in vars(plain.model.model)
    plain.reset_cache()  # a no-op without a cache


@pytest.mark.parametrize('entries', [0, -1, 2.5])
def test_vision_cache_rejects_bad_cap(entries: object) -> None:
    with pytest.raises(ConfigError, match='vision_cache_entries'):
        TransformersConfig(vision_cache_entries=entries)


# -- prompt arrangement for prefix caching (vLLM; the same text as the transformers backend) ----

def test_fused_queries_share_the_prefix_up_to_the_first_before_image(
        tiny_backend: TransformersBackend) -> None:
    plain = tiny_backend                          # prompt text and token ids only (Qwen2.5-VL)
    queries = fused_step()
    requests = build_requests(queries, plain.render_text)
    # The mode is in the images only: one text, so the prompts part at their first BEFORE image.
    assert len({r['prompt'] for r in requests}) == 1
    text = requests[0]['prompt']
    shared = text[:text.index(VISION_START, text.index(VISION_START, text.index(VISION_START)
                                                         + 1) + 1)]
    assert shared.startswith('<|im_start|>system\nYou are a helpful assistant.<|im_end|>')
    assert shared.endswith('<|vision_end|>\n</Task>\n\nBEFORE Robot Front Image: ')
    pixels = [[im.tobytes() for im in r['multi_modal_data']['image'][:3]] for r in requests]
    assert pixels[0][:2] == pixels[1][:2] == pixels[2][:2]       # same REF START and REF END
    assert len({p[2] for p in pixels}) == 3                      # three different BEFOREs
    # In tokens: everything before the third <|vision_start|> (the backward row is unpadded).
    ids = plain.build_inputs(queries)['input_ids'][2].tolist()
    third = [i for i, t in enumerate(ids) if t == VISION_START_ID][2]
    assert (third, len(ids)) == (PREFIX_TOKENS, 922)
