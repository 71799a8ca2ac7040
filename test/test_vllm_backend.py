"""The vLLM backend without vLLM: the requests it builds, its settings, its missing-vLLM error;
and the backend factory."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np
import pytest

from robo_dopamine_ros.backends.factory import BACKEND_NAMES, config_class, make_backend
from robo_dopamine_ros.backends.openai_backend import OpenAIBackend
from robo_dopamine_ros.backends.prefill import ANSWER_HEAD
from robo_dopamine_ros.backends.processor import load_processor, render_query_text
from robo_dopamine_ros.backends.vllm_backend import (
    VllmBackend,
    VllmConfig,
    answer_of,
    build_requests,
)
from robo_dopamine_ros.backends.vllm_engine import (
    cached_tokens,
    check_device,
    engine_shutdown,
    memory_kwargs,
    pixel_kwargs,
)
from robo_dopamine_ros.core.errors import ConfigError, ModelLoadError
from robo_dopamine_ros.core.images import PixelLimits
from robo_dopamine_ros.core.prompt import render_prompt
from robo_dopamine_ros.core.types import ImageKey, KeyedImage, Mode, Query

VISION = '<|vision_start|><|image_pad|><|vision_end|>'


def query(task: str = 'fold the towel') -> Query:
    images = tuple(KeyedImage(ImageKey('ep', f's{i}', 0), np.full((56, 56, 3), i * 30, np.uint8))
                   for i in range(8))
    return Query(task, images, Mode.FORWARD)


@pytest.fixture
def no_vllm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, 'vllm', None)      # `import vllm` raises ImportError


def test_vllm_requests_carry_the_prompt_text_and_8_images_in_slot_order() -> None:
    q = query()
    [request] = build_requests([q], lambda qq: f'PROMPT:{qq.task}')
    assert request['prompt'] == 'PROMPT:fold the towel'
    images = request['multi_modal_data']['image']
    assert [im.mode for im in images] == ['RGB'] * 8
    assert [int(np.asarray(im)[0, 0, 0]) for im in images] == [i * 30 for i in range(8)]


def test_vllm_prompt_is_the_chat_template_with_8_image_placeholders(
        tiny_arch_synthetic_dir) -> None:
    processor = load_processor(tiny_arch_synthetic_dir)
    [request] = build_requests([query()], lambda q: render_query_text(processor, q))
    text = request['prompt']
    segments = render_prompt('fold the towel').split('<image>')
    assert text == ('<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n'
                    '<|im_start|>user\n' + VISION.join(segments)
                    + '<|im_end|>\n<|im_start|>assistant\n')


def test_vllm_prefill_appends_the_head_and_reads_the_whole_answer() -> None:
    """The head goes after the prompt text (test_prefill: it tokenises to the ids the model
    writes); a completion cut at '%' (kept, include_stop_str_in_output) is whole again."""
    [request] = build_requests([query()], lambda q: 'PROMPT\n', ANSWER_HEAD)
    assert request['prompt'] == 'PROMPT\n<score'
    meta = {'stop_string': 0.0, 'new_tokens': 6.0}
    answer = answer_of('>+37.0%', meta, ANSWER_HEAD)
    assert answer.text == '<score>+37.0%</score>' and answer.meta['early_stop'] == 1.0
    assert answer_of('>+37.0%', meta, '').text == '>+37.0%'      # prefill off: untouched


def test_vllm_settings_follow_upstream_with_a_bounded_answer() -> None:
    cfg = VllmConfig(model='/models/grm', pixel_limits=PixelLimits(12544, 50176))
    llm = cfg.llm_kwargs(platform='cuda', processor_kwargs={'min_pixels': 12544})   # no cap
    assert (llm['enable_prefix_caching'], llm['limit_mm_per_prompt']) == (True, {'image': 8})
    assert (llm['max_model_len'], llm['mm_processor_kwargs']) == (8192, {'min_pixels': 12544})
    assert 'gpu_memory_utilization' not in llm and 'kv_cache_memory_bytes' not in llm
    assert 'block_size' not in llm          # the build's default
    custom = VllmConfig(prefix_caching=False, block_size=32).llm_kwargs(
        platform='cuda', processor_kwargs={})
    assert (custom['enable_prefix_caching'], custom['block_size']) == (False, 32)
    with pytest.raises(ConfigError, match='block_size must be an integer >= 1'):
        VllmConfig(block_size=0)
    assert cfg.sampling_kwargs() == {'max_tokens': 16, 'stop': ['</score>'],
                                     'include_stop_str_in_output': True, 'temperature': 0.0}
    assert cfg.sampling_kwargs(prefill=True)['stop'] == ['</score>', '%', '</']
    upstream = VllmConfig(upstream_sampling=True).sampling_kwargs()
    assert {k: upstream[k] for k in ('temperature', 'top_p', 'top_k')} == {
        'temperature': 0.1, 'top_p': 0.9, 'top_k': 50}


def test_vllm_memory_cap_maps_to_the_kv_cache_on_cpu_and_a_gpu_share_on_cuda() -> None:
    assert memory_kwargs(0.5, 'cpu', environ={}) == {'kv_cache_memory_bytes': 1 << 29}
    # vLLM's own CPU default (90 % of the RAM) is never taken; its environment variable is.
    with pytest.raises(ConfigError, match='needs a KV-cache size'):
        memory_kwargs(None, 'cpu', environ={})
    assert memory_kwargs(None, 'cpu', environ={'VLLM_CPU_KVCACHE_SPACE': '1'}) == {}
    with pytest.raises(ConfigError, match='VLLM_CPU_KVCACHE_SPACE=1 overrides it'):
        memory_kwargs(0.5, 'cpu', environ={'VLLM_CPU_KVCACHE_SPACE': '1'})
    assert memory_kwargs(None, 'cuda') == {}
    # CUDA: unverified here (no GPU in CI); the cap as a share of the device's total memory.
    assert memory_kwargs(6.0, 'cuda', device_total_gib=24.0) == {'gpu_memory_utilization': 0.25}
    with pytest.raises(ConfigError, match='exceeds the GPU'):
        memory_kwargs(30.0, 'cuda', device_total_gib=24.0)
    with pytest.raises(ConfigError, match='GPU size'):
        memory_kwargs(6.0, 'cuda')
    with pytest.raises(ConfigError, match='not mapped'):
        memory_kwargs(6.0, 'tpu')
    with pytest.raises(ConfigError, match='max_memory_gib must be > 0'):
        VllmConfig(max_memory_gib=0.0)


def test_vllm_device_is_checked_against_the_vllm_build() -> None:
    for device in ('auto', 'cpu'):
        check_device(device, 'cpu')
    for device in ('auto', 'cuda', 'cuda:0'):
        check_device(device, 'cuda')
    with pytest.raises(ConfigError, match="'cuda:0' cannot be honoured: this vLLM is a cpu"):
        VllmConfig(device='cuda:0').llm_kwargs(platform='cpu', processor_kwargs={})
    with pytest.raises(ConfigError, match="'cpu' cannot be honoured: this vLLM is a cuda"):
        check_device('cpu', 'cuda')
    with pytest.raises(ConfigError, match='CUDA_VISIBLE_DEVICES=1'):
        check_device('cuda:1', 'cuda')
    with pytest.raises(ConfigError, match='device must be'):
        VllmConfig(device='gpu')


def test_vllm_pixel_bounds_take_the_form_the_processor_reads(tiny_arch_synthetic_dir) -> None:
    current = load_processor(tiny_arch_synthetic_dir).image_processor
    assert pixel_kwargs(current, 12544, 50176) == {
        'size': {'shortest_edge': 12544, 'longest_edge': 50176}}
    older = SimpleNamespace(size={'height': 1}, min_pixels=1, max_pixels=2)
    assert pixel_kwargs(older, 12544, 50176) == {'min_pixels': 12544, 'max_pixels': 50176}
    with pytest.raises(ConfigError, match='takes no pixel bounds'):
        pixel_kwargs(SimpleNamespace(size={'height': 1}), 1, 2)
    with pytest.raises(ConfigError, match="factor 28 is not the 'qwen3_vl' factor"):
        VllmConfig(architecture='qwen3_vl')
    with pytest.raises(ConfigError, match=r"'llava'.*supported: \['qwen2_5_vl', 'qwen3_vl'\]"):
        VllmConfig(architecture='llava')


def test_vllm_engine_shutdown_is_found_per_version() -> None:
    def stop() -> None:
        pass

    assert engine_shutdown(SimpleNamespace(shutdown=stop)) is stop            # LLM.shutdown
    v032 = SimpleNamespace(llm_engine=SimpleNamespace(engine_core=SimpleNamespace(shutdown=stop)))
    assert engine_shutdown(v032) is stop
    assert engine_shutdown(SimpleNamespace(llm_engine=None)) is None


def test_vllm_prefix_cache_count_is_read_where_the_version_reports_it() -> None:
    assert cached_tokens(SimpleNamespace(num_cached_tokens=96)) == 96      # vLLM 0.32
    assert cached_tokens(SimpleNamespace(num_cached_tokens=None)) is None
    assert cached_tokens(SimpleNamespace()) is None


def test_vllm_missing_is_a_clear_model_load_error(no_vllm: None) -> None:
    with pytest.raises(ModelLoadError, match='pip install vllm'):
        VllmBackend(VllmConfig(model='/models/grm'))


def test_factory_builds_product_backends_by_name(no_vllm: None) -> None:
    assert BACKEND_NAMES == ('transformers', 'openai', 'vllm')
    assert config_class('vllm') is VllmConfig
    backend = make_backend('openai', model='grm', base_url='http://127.0.0.1:9/v1')
    assert isinstance(backend, OpenAIBackend) and backend.model_id == 'grm'
    backend.close()
    with pytest.raises(ModelLoadError, match='vLLM'):
        make_backend('vllm', model='/models/grm')
    with pytest.raises(ModelLoadError, match='does not exist'):
        make_backend('transformers', model='/nonexistent/grm', device='cpu')


def test_factory_rejects_unknown_names_and_options() -> None:
    with pytest.raises(ConfigError, match='unknown backend'):
        make_backend('scripted')                  # the test double is not a product
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['temperature'\]"):
        make_backend('openai', model='m', temperature=0.5)
    with pytest.raises(ConfigError, match='model'):
        make_backend('openai')
