"""The transformers backend end to end on the tiny random-weight GRMs (CPU, offline).

prompt -> processor tensors -> generate -> decode -> parse. The weights are random, so the tests
check plumbing (slot order, token counts, padding, stop handling, errors), not scores. Every test
that loads a model runs on both architectures (Qwen2.5-VL and Qwen3-VL, ``tiny_arch``).
"""

from __future__ import annotations

import functools
import json
import threading
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip('torch')
pytest.importorskip('transformers')

from robo_dopamine_ros.backends.processor import load_processor  # noqa: E402
from robo_dopamine_ros.backends.torch_device import resolve_dtype  # noqa: E402
from robo_dopamine_ros.backends.transformers_backend import TransformersBackend  # noqa: E402
from robo_dopamine_ros.backends.transformers_config import TransformersConfig  # noqa: E402
from robo_dopamine_ros.backends.weights_size import weights_bytes  # noqa: E402
from robo_dopamine_ros.core.errors import (  # noqa: E402
    BackendError,
    BackendStoppedError,
    ConfigError,
    ModelLoadError,
)
from robo_dopamine_ros.core.images import PixelLimits, smart_resize  # noqa: E402
from robo_dopamine_ros.core.profiles import geometry  # noqa: E402
from robo_dopamine_ros.core.prompt import prompt_segments  # noqa: E402
from robo_dopamine_ros.core.types import (  # noqa: E402
    GrmBackend,
    ImageKey,
    KeyedImage,
    Mode,
    Query,
)
from robo_dopamine_ros.models.tiny_grm import SERVABLE_HEAD_SIZES, build_tiny_grm  # noqa: E402
from robo_dopamine_ros.models.tokenizer import QWEN_SPECIAL_TOKENS  # noqa: E402

#: 8 distinct smart_resize fixed points in slot order, in visual tokens (H, W): times the
#: architecture's factor they are pixel sizes, so the order is visible in the grids.
TOKEN_SIZES = ((4, 4), (4, 5), (5, 4), (6, 4), (4, 6), (7, 4), (4, 7), (8, 8))
SIZES = tuple((28 * h, 28 * w) for h, w in TOKEN_SIZES)      # Qwen2.5-VL (factor 28)
IMAGE_PAD, VISION_START, VISION_END, ENDOFTEXT = 151655, 151652, 151653, 151643
ASSISTANT_PROMPT_IDS = [151644, 77091, 198]  # '<|im_start|>assistant\n'


def sizes_of(backend: TransformersBackend) -> tuple[tuple[int, int], ...]:
    """:data:`TOKEN_SIZES` in pixels at the backend's resize factor."""
    factor = backend.config.pixel_limits.factor
    return tuple((factor * h, factor * w) for h, w in TOKEN_SIZES)


def make_query(task: str, seed: int = 0, sizes: tuple[tuple[int, int], ...] = SIZES) -> Query:
    rng = np.random.default_rng(seed)
    images = tuple(
        KeyedImage(ImageKey('ep', f'slot{i}', i + 1), rng.integers(0, 256, (h, w, 3), np.uint8))
        for i, (h, w) in enumerate(sizes))
    return Query(task=task, images=images, mode=Mode.INCREMENTAL)


@pytest.fixture(scope='module', autouse=True)
def _one_torch_thread():
    """The tiny model gains nothing from threads, and on 2-core VMs 2 OpenMP threads made a
    3-query generate swing between 0.2 and 3.5 s; 1 thread is a steady 0.2 s."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def backend(tiny_arch_backend: TransformersBackend) -> TransformersBackend:
    return tiny_arch_backend


@pytest.fixture
def fresh_backend(tiny_arch_synthetic_dir: Path, tiny_arch: str) -> TransformersBackend:
    """A backend of its own (stop requests are sticky); the synthetic vocabulary loads fast."""
    b = TransformersBackend(TransformersConfig(model=str(tiny_arch_synthetic_dir), device='cpu',
                                               pixel_limits=geometry(tiny_arch)))
    yield b
    b.close()


def test_weights_bytes_counts_floats_at_the_load_dtype_and_refuses_a_bad_header(
        tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    save_file({'w': np.zeros((3, 4), np.float16), 'ids': np.zeros(5, np.int64),
               'mask': np.zeros(7, np.uint8)}, str(tmp_path / 'model.safetensors'))
    assert weights_bytes(tmp_path, 2) == 12 * 2 + 5 * 8 + 7
    assert weights_bytes(tmp_path, 4) == 12 * 4 + 5 * 8 + 7
    (tmp_path / 'model-2.safetensors').write_bytes(b'\x10' + b'\x00' * 7 + b'{not json}xxxxxx')
    with pytest.raises(ModelLoadError, match=r'cannot read the safetensors header of .*model-2'):
        weights_bytes(tmp_path, 4)
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ModelLoadError, match=r'no \*\.safetensors weights'):
        weights_bytes(tmp_path / 'empty', 4)


def test_transformers_backend_refuses_weights_above_the_memory_cap(
        tiny_grm_synthetic_dir: Path) -> None:
    from safetensors import safe_open

    exact = 0
    for file in tiny_grm_synthetic_dir.glob('*.safetensors'):
        with safe_open(file, 'pt') as f:
            exact += sum(f.get_tensor(k).numel() for k in f.keys())  # noqa: SIM118 - not a dict
    need = weights_bytes(tiny_grm_synthetic_dir, 4)
    assert need == 4 * exact                    # fp32 on CPU: every tensor here is floating
    tiny_cap = need / 2**30 / 2
    with pytest.raises(ModelLoadError, match=rf'need {need / 2**30:.3f} GiB as float32, above '
                                             rf'model.max_gpu_memory_gib = {tiny_cap:g} GiB'):
        TransformersBackend(TransformersConfig(model=str(tiny_grm_synthetic_dir), device='cpu',
                                               max_gpu_memory_gib=tiny_cap))
    fits = TransformersBackend(TransformersConfig(model=str(tiny_grm_synthetic_dir),
                                                  device='cpu', max_gpu_memory_gib=2 * tiny_cap))
    fits.close()


class ForcedTokens:
    """A logits processor that makes row r emit ``scripts[r]`` token by token."""

    def __init__(self, scripts: list[list[int]]) -> None:
        self.scripts = scripts
        self.prompt_len: int | None = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.prompt_len is None:
            self.prompt_len = input_ids.shape[1]
        step = input_ids.shape[1] - self.prompt_len
        forced = torch.full_like(scores, float('-inf'))
        for row, script in enumerate(self.scripts):
            forced[row, script[min(step, len(script) - 1)]] = 0.0
        return forced


# -- the tiny model directory ------------------------------------------------------------------

def test_tiny_grm_dir_has_the_released_layout(tiny_grm_dir: Path) -> None:
    names = {p.name for p in tiny_grm_dir.iterdir()}
    assert {'config.json', 'model.safetensors', 'generation_config.json', 'tokenizer.json',
            'tokenizer_config.json', 'preprocessor_config.json', 'chat_template.json'} <= names
    assert not any(n.startswith('.') for n in names)
    cfg = json.loads((tiny_grm_dir / 'config.json').read_text())
    assert cfg['model_type'] == 'qwen2_5_vl'
    assert 'text_config' not in cfg and cfg['hidden_size'] == 64
    assert cfg['vision_config']['out_hidden_size'] == 64
    assert cfg['rope_scaling'] == {'type': 'mrope', 'mrope_section': [4, 6, 6]}
    assert cfg['image_token_id'] == IMAGE_PAD and cfg['vision_start_token_id'] == VISION_START
    pre = json.loads((tiny_grm_dir / 'preprocessor_config.json').read_text())
    assert pre['processor_class'] == 'Qwen2_5_VLProcessor'
    assert (pre['min_pixels'], pre['max_pixels']) == (12544, 76800)


def test_tiny_grm_qwen_vocab_gives_the_real_ids(backend: TransformersBackend) -> None:
    tok = backend.processor.tokenizer
    assert tok.convert_tokens_to_ids(list(QWEN_SPECIAL_TOKENS)) == list(range(151643, 151657))
    ids = tok.encode('<|im_start|>system\nYou are a helpful assistant.<|im_end|>')
    assert ids == [151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645]


def test_tiny_grm_qwen3_dir_has_the_released_layout(tiny_grm_qwen3_dir: Path) -> None:
    cfg = json.loads((tiny_grm_qwen3_dir / 'config.json').read_text())
    assert cfg['model_type'] == 'qwen3_vl'
    assert cfg['architectures'] == ['Qwen3VLForConditionalGeneration']
    assert cfg['text_config']['hidden_size'] == 64 and 'hidden_size' not in cfg
    assert cfg['text_config']['rope_scaling']['mrope_section'] == [8, 4, 4]
    vision = cfg['vision_config']
    assert (vision['patch_size'], vision['spatial_merge_size']) == (16, 2)
    assert vision['deepstack_visual_indexes'] == [0, 1]
    assert cfg['image_token_id'] == IMAGE_PAD and cfg['vision_start_token_id'] == VISION_START
    pre = json.loads((tiny_grm_qwen3_dir / 'preprocessor_config.json').read_text())
    assert pre['processor_class'] == 'Qwen3VLProcessor'
    assert (pre['patch_size'], pre['image_mean']) == (16, [0.5, 0.5, 0.5])
    assert pre['size'] == {'shortest_edge': 12544, 'longest_edge': 76800}


def test_tiny_grm_same_seed_same_weights(tmp_path: Path, tiny_arch_synthetic_dir: Path,
                                         tiny_arch: str) -> None:
    again = build_tiny_grm(tmp_path / 'again', vocab='synthetic', seed=0, architecture=tiny_arch)
    assert ((again / 'model.safetensors').read_bytes()
            == (tiny_arch_synthetic_dir / 'model.safetensors').read_bytes())


def test_tiny_grm_text_head_size_is_servable(tiny_arch_synthetic_dir: Path, tmp_path: Path,
                                             tiny_arch: str) -> None:
    """vLLM's CPU attention runs head sizes >= 32 only: a head of 16 loads, then fails its first
    request. The builder's default is servable, and an unservable head is refused up front."""
    cfg = json.loads((tiny_arch_synthetic_dir / 'config.json').read_text())
    text = cfg.get('text_config', cfg)
    head = text.get('head_dim') or text['hidden_size'] // text['num_attention_heads']
    assert head == 32 and head in SERVABLE_HEAD_SIZES
    with pytest.raises(ConfigError, match='head_dim 16 is not one vLLM can serve'):
        build_tiny_grm(tmp_path, vocab='synthetic', architecture=tiny_arch, heads=4, kv_heads=2)


def test_tiny_grm_rejects_unknown_vocab_and_architecture(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match='vocab'):
        build_tiny_grm(tmp_path, vocab='gpt2')
    with pytest.raises(ConfigError, match=r"'llava'.*supported: \['qwen2_5_vl', 'qwen3_vl'\]"):
        build_tiny_grm(tmp_path, vocab='synthetic', architecture='llava')
    with pytest.raises(ConfigError, match="factor 28 is not the 'qwen3_vl' factor 32"):
        build_tiny_grm(tmp_path, vocab='synthetic', architecture='qwen3_vl',
                       pixel_limits=PixelLimits())


# -- prompt and processor inputs ---------------------------------------------------------------

def test_transformers_backend_renders_the_spec_prompt(backend: TransformersBackend,
                                                     tiny_arch: str) -> None:
    text = backend.render_text(make_query('open the drawer'))
    assert backend.architecture == tiny_arch
    # The system line is in the messages (as upstream sends it), so both templates render it.
    expected = ('<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n'
                + '<|vision_start|><|image_pad|><|vision_end|>'.join(
                    prompt_segments('open the drawer'))
                + '<|im_end|>\n<|im_start|>assistant\n')
    assert text == expected


def test_transformers_backend_inputs_follow_slot_order(backend: TransformersBackend) -> None:
    factor = backend.config.pixel_limits.factor
    patch = factor // 2
    sizes = sizes_of(backend)
    assert all(smart_resize(h, w, factor) == (h, w) for h, w in sizes)
    enc = backend.build_inputs([make_query('open the drawer', sizes=sizes)])
    grids = enc['image_grid_thw'].tolist()
    assert grids == [[1, 2 * h, 2 * w] for h, w in TOKEN_SIZES]
    assert enc['pixel_values'].shape == (4 * sum(h * w for h, w in TOKEN_SIZES),
                                         3 * 2 * patch * patch)
    ids = enc['input_ids'][0].tolist()
    starts = [i for i, t in enumerate(ids) if t == VISION_START]
    ends = [i for i, t in enumerate(ids) if t == VISION_END]
    runs = [e - s - 1 for s, e in zip(starts, ends, strict=True)]
    assert runs == [h * w for h, w in TOKEN_SIZES]
    assert runs == [t * hh * ww // 4 for t, hh, ww in grids]
    assert all(set(ids[s + 1:e]) == {IMAGE_PAD} for s, e in zip(starts, ends, strict=True))
    assert ids.count(IMAGE_PAD) == sum(runs)


def test_transformers_backend_batch_is_left_padded(backend: TransformersBackend) -> None:
    short, long_task = 'open the drawer', 'pick up the red cube and place it in the green bowl'
    sizes = sizes_of(backend)
    enc = backend.build_inputs([make_query(short, sizes=sizes),
                                make_query(long_task, seed=1, sizes=sizes)])
    ids, mask = enc['input_ids'].tolist(), enc['attention_mask'].tolist()
    n_short, n_long = sum(mask[0]), sum(mask[1])
    assert n_short < n_long == len(ids[1])
    pad = len(ids[0]) - n_short
    assert mask[0] == [0] * pad + [1] * n_short
    assert ids[0][:pad] == [ENDOFTEXT] * pad
    assert ids[0][-3:] == ids[1][-3:] == ASSISTANT_PROMPT_IDS
    assert enc['image_grid_thw'].shape == (16, 3)


#: A 640x480 frame's patch grid at 12544..76800 px: 224x308 (factor 28), 224x320 (factor 32).
VGA_GRID = {'qwen2_5_vl': [1, 16, 22], 'qwen3_vl': [1, 14, 20]}


def test_processor_enforces_pixel_limits(tiny_arch_synthetic_dir: Path, tiny_arch: str) -> None:
    from PIL import Image

    frame = Image.fromarray(np.zeros((480, 640, 3), np.uint8))
    proc = load_processor(tiny_arch_synthetic_dir)
    assert proc.tokenizer.padding_side == 'left'
    assert proc.image_processor(images=[frame])['image_grid_thw'].tolist() == [
        VGA_GRID[tiny_arch]]
    limits = geometry(tiny_arch, 12544, 50176)
    small = load_processor(tiny_arch_synthetic_dir, pixel_limits=limits)
    h, w = smart_resize(480, 640, limits.factor, max_pixels=50176)
    patch = limits.factor // 2
    assert small.image_processor(images=[frame])['image_grid_thw'].tolist() == [
        [1, h // patch, w // patch]]
    with pytest.raises(ModelLoadError, match='multiples of'):
        load_processor(tiny_arch_synthetic_dir,
                       pixel_limits=geometry({'qwen2_5_vl': 'qwen3_vl'}.get(tiny_arch,
                                                                            'qwen2_5_vl')))


# -- generation --------------------------------------------------------------------------------

def test_transformers_backend_generate_is_deterministic(backend: TransformersBackend) -> None:
    queries = [make_query('open the drawer', seed=s, sizes=sizes_of(backend)) for s in range(3)]
    first = backend.generate(queries)
    second = backend.generate(queries)
    assert isinstance(backend, GrmBackend)
    assert len(first) == 3
    assert [a.text for a in first] == [a.text for a in second]
    for answer in first:
        assert isinstance(answer.text, str) and answer.error is None
        assert 'rigorous' not in answer.text and '<|' not in answer.text
        assert 1 <= answer.meta['new_tokens'] <= 16
        assert answer.meta['batch_size'] == 3 and answer.meta['latency_s'] > 0
        assert answer.meta['prompt_tokens'] > 8 * 64
    from robo_dopamine_ros.core.parsing import ParseStatus, parse_score

    reading = parse_score(first[0].text)
    assert reading.status is ParseStatus.FAILED and reading.hop is None


def test_transformers_backend_stops_each_row_at_score_tag(
        backend: TransformersBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    tok = backend.processor.tokenizer
    scripts = [tok.encode('<score>+37.0%</score> trailing text that must not appear'),
               tok.encode('<score>-5%</score>' + ' more' * 20)]
    forced = ForcedTokens(scripts)
    seen: dict = {}
    original = backend.model.generate

    def generate(**kwargs):
        seen.update(kwargs)
        return original(**kwargs, logits_processor=[forced])

    monkeypatch.setattr(backend.model, 'generate', generate)
    answers = backend.generate([make_query('open the drawer'), make_query('fold', seed=1)])
    assert [a.text for a in answers] == ['<score>+37.0%</score>', '<score>-5%</score>']
    assert [a.meta['stop_string'] for a in answers] == [1.0, 1.0]
    needed = [next(k for k in range(1, len(s) + 1) if '</score>' in tok.decode(s[:k]))
              for s in scripts]
    assert [a.meta['new_tokens'] for a in answers] == needed
    # The checkpoint's sampling defaults (do_sample, repetition_penalty 1.05) are overridden.
    assert seen['do_sample'] is False and seen['repetition_penalty'] == 1.0
    assert seen['max_new_tokens'] == 16
    from robo_dopamine_ros.core.parsing import ParseStatus, parse_score

    assert parse_score(answers[0].text).status is ParseStatus.OK
    assert parse_score(answers[0].text).hop == pytest.approx(0.37)


def test_transformers_backend_prefill_stops_after_the_number(
        backend: TransformersBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    """With answer prefill the head's ids end every prompt, the model writes from the sign on,
    the early stop ends a row at ``%</`` and the answer is whole again; switched off, the same
    backend answers as before (both architectures: Qwen3-VL's inputs carry more per-token rows)."""
    tok = backend.processor.tokenizer
    full = ['<score>+37.0%</score> trailing text', '<score>-5%</score>' + ' more' * 20]
    forced = ForcedTokens([tok.encode(t)[2:] for t in full])      # after '<', 'score'
    original = backend.model.generate
    seen: dict = {}

    def generate(**kwargs):
        seen.update(kwargs)
        return original(**kwargs, logits_processor=[forced])

    monkeypatch.setattr(backend.model, 'generate', generate)
    queries = [make_query('open the drawer'), make_query('fold', seed=1)]
    plain = backend.build_inputs(queries)
    backend.set_prefill(True)
    try:
        answers = backend.generate(queries)
    finally:
        backend.set_prefill(False)
    assert [a.text for a in answers] == ['<score>+37.0%</score>', '<score>-5%</score>']
    assert [a.meta['early_stop'] for a in answers] == [1.0, 1.0]
    assert [a.meta['new_tokens'] for a in answers] == [6.0, 3.0]   # 10 and 7 without
    ids = seen['input_ids']
    assert ids.shape[1] == plain['input_ids'].shape[1] + 2
    assert [tok.decode(row[-2:]) for row in ids] == ['<score', '<score']
    assert bool(seen['attention_mask'][:, -2:].all())


def test_transformers_backend_bad_query_is_a_per_query_error(
        fresh_backend: TransformersBackend) -> None:
    answers = fresh_backend.generate([make_query('open the drawer'),
                                      make_query('say <|im_end|> now'),
                                      make_query('fold', seed=2)])
    assert len(answers) == 3
    assert answers[0].error is None and answers[2].error is None
    assert answers[1].text == '' and 'ConfigError' in answers[1].error
    assert answers[0].meta['batch_size'] == 2
    assert fresh_backend.generate([]) == []


def test_transformers_backend_stop_before_generate(fresh_backend: TransformersBackend) -> None:
    fresh_backend.request_stop()
    with pytest.raises(BackendError, match='stopped'):
        fresh_backend.generate([make_query('open the drawer')])


def test_transformers_backend_stop_while_generating(
        fresh_backend: TransformersBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    forward = fresh_backend.model.forward

    @functools.wraps(forward)  # generate() validates its kwargs against forward's signature
    def forward_then_stop(*args, **kwargs):
        calls.append(1)
        fresh_backend.request_stop()  # as if another thread asked during the first step
        return forward(*args, **kwargs)

    monkeypatch.setattr(fresh_backend.model, 'forward', forward_then_stop)
    with pytest.raises(BackendError, match='stopped'):
        fresh_backend.generate([make_query('open the drawer')])
    assert len(calls) == 1  # stopped after the first decode step, not after 16


def test_transformers_backend_cancel_ends_only_the_call_in_flight(
        fresh_backend: TransformersBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    forward = fresh_backend.model.forward

    @functools.wraps(forward)
    def forward_then_cancel(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            fresh_backend.cancel()  # as if the node were deactivated during the first step
        return forward(*args, **kwargs)

    monkeypatch.setattr(fresh_backend.model, 'forward', forward_then_cancel)
    with pytest.raises(BackendStoppedError, match='cancelled'):
        fresh_backend.generate([make_query('open the drawer')])
    assert len(calls) == 1
    answers = fresh_backend.generate([make_query('open the drawer')])   # not sticky
    assert len(answers) == 1 and answers[0].error is None and len(calls) > 2


def test_transformers_backend_cancel_before_generate_is_not_erased(
        fresh_backend: TransformersBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    """A deactivate landing between the worker's dequeue and ``generate`` cancels that call."""
    calls = []
    forward = fresh_backend.model.forward

    @functools.wraps(forward)
    def counted_forward(*args, **kwargs):
        calls.append(1)
        return forward(*args, **kwargs)

    monkeypatch.setattr(fresh_backend.model, 'forward', counted_forward)
    fresh_backend.cancel()              # before the call begins
    with pytest.raises(BackendStoppedError, match='cancelled'):
        fresh_backend.generate([make_query('open the drawer')])
    assert calls == []                  # refused before any decode step
    answers = fresh_backend.generate([make_query('open the drawer')])   # consumed: per call
    assert len(answers) == 1 and answers[0].error is None and calls


def test_transformers_backend_stop_from_another_thread(fresh_backend: TransformersBackend,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    in_forward, stop_sent = threading.Event(), threading.Event()
    forward = fresh_backend.model.forward

    @functools.wraps(forward)
    def waiting_forward(*args, **kwargs):
        in_forward.set()
        stop_sent.wait(30)  # hold the first step until the other thread has asked to stop
        return forward(*args, **kwargs)

    monkeypatch.setattr(fresh_backend.model, 'forward', waiting_forward)
    errors: list[Exception] = []

    def run() -> None:
        try:
            fresh_backend.generate([make_query('open the drawer')])
        except BackendError as exc:
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    assert in_forward.wait(30)
    fresh_backend.request_stop()
    stop_sent.set()
    worker.join(30)
    assert not worker.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], BackendError)
    assert str(errors[0]) == 'stopped'


def test_transformers_backend_closed_raises(fresh_backend: TransformersBackend) -> None:
    fresh_backend.close()
    with pytest.raises(BackendError, match='closed'):
        fresh_backend.generate([make_query('open the drawer')])


# -- loading errors and config -----------------------------------------------------------------

def test_transformers_backend_missing_dir_is_model_load_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r'does not exist.*huggingface-cli download'):
        TransformersBackend(TransformersConfig(model=str(tmp_path / 'nope'), device='cpu'))


def test_transformers_backend_dir_without_config_is_model_load_error(tmp_path: Path) -> None:
    (tmp_path / 'model.safetensors').write_bytes(b'')
    with pytest.raises(ModelLoadError, match=r'no config\.json'):
        TransformersBackend(TransformersConfig(model=str(tmp_path), device='cpu'))


def test_transformers_backend_other_model_type_is_model_load_error(tmp_path: Path) -> None:
    (tmp_path / 'config.json').write_text(json.dumps({'model_type': 'llama'}))
    with pytest.raises(ModelLoadError, match=r"model_type 'llama', which is not a supported GRM "
                                             r"architecture; supported: \['qwen2_5_vl', "
                                             r"'qwen3_vl'\]"):
        TransformersBackend(TransformersConfig(model=str(tmp_path), device='cpu'))


def test_transformers_backend_refuses_a_profile_of_the_other_geometry(
        tiny_arch_synthetic_dir: Path, tiny_arch: str) -> None:
    other = geometry('qwen3_vl' if tiny_arch == 'qwen2_5_vl' else 'qwen2_5_vl')
    with pytest.raises(ModelLoadError, match=rf"'{tiny_arch}' checkpoint \(resize factor"):
        TransformersBackend(TransformersConfig(model=str(tiny_arch_synthetic_dir), device='cpu',
                                               pixel_limits=other))


def test_transformers_backend_uncached_hub_id_is_model_load_error() -> None:
    with pytest.raises(ModelLoadError, match=r'not found in the local HF cache.*--local-dir'):
        TransformersBackend(TransformersConfig(model='nobody-xyz/not-a-grm', device='cpu'))


def test_transformers_backend_missing_weights_is_model_load_error(
        tmp_path: Path, tiny_arch_synthetic_dir: Path, tiny_arch: str) -> None:
    for f in tiny_arch_synthetic_dir.iterdir():
        if f.name != 'model.safetensors':
            (tmp_path / f.name).write_bytes(f.read_bytes())
    with pytest.raises(ModelLoadError, match='model weights'):
        TransformersBackend(TransformersConfig(model=str(tmp_path), device='cpu',
                                               pixel_limits=geometry(tiny_arch)))


def test_transformers_backend_dtype_auto_on_cpu_is_float32(backend: TransformersBackend) -> None:
    assert resolve_dtype('auto', 'cpu') is torch.float32
    assert resolve_dtype('bfloat16', 'cpu') is torch.bfloat16
    assert backend.dtype is torch.float32
    assert backend.model.dtype is torch.float32


def test_transformers_config_generation_kwargs() -> None:
    greedy = TransformersConfig().generation_kwargs()
    assert greedy['do_sample'] is False and greedy['max_new_tokens'] == 16
    assert greedy['repetition_penalty'] == 1.0
    upstream = TransformersConfig(upstream_sampling=True, max_new_tokens=32).generation_kwargs()
    assert upstream == {'max_new_tokens': 32, 'repetition_penalty': 1.0, 'do_sample': True,
                        'temperature': 0.1, 'top_p': 0.9, 'top_k': 50}


@pytest.mark.parametrize('kwargs', [{'device': 'gpu'}, {'device': 'cuda:x'}, {'dtype': 'int8'},
                                    {'max_new_tokens': 0}, {'model': ''},
                                    {'max_gpu_memory_gib': 0.0}])
def test_transformers_config_rejects_bad_values(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        TransformersConfig(**kwargs)
