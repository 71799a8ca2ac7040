"""Fine-tuning: answer-only labels, record checks, LoRA and full training on the tiny GRM, and
the saved checkpoint scoring an episode through the engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robo_dopamine_ros.core.errors import ConfigError
from robo_dopamine_ros.core.images import PixelLimits
from robo_dopamine_ros.core.prompt import PromptVariant

torch = pytest.importorskip('torch')
pytest.importorskip('transformers')
pytest.importorskip('peft')
pytest.importorskip('cv2')

from robo_dopamine_ros.backends.processor import load_processor  # noqa: E402
from robo_dopamine_ros.training.dataset import (  # noqa: E402
    IGNORE_INDEX,
    Collator,
    Encoder,
    load_samples,
)
from robo_dopamine_ros.training.finetune import (  # noqa: E402
    FinetuneConfig,
    finetune,
    training_arguments,
)
from robo_dopamine_ros.training.part_lrs import model_part, param_groups  # noqa: E402

#: Small images keep the CPU training steps fast: the demo frames become 84x112 (12 tokens).
SMALL = PixelLimits(3136, 12544)


def final_json(dataset: Path) -> Path:
    return dataset / 'train_jsons' / 'finetune_data_final.json'


def test_encoder_unmasks_exactly_the_answer_tokens(demo_dataset: Path,
                                                   tiny_grm_dir: Path) -> None:
    processor = load_processor(tiny_grm_dir)
    tok = processor.tokenizer
    samples = load_samples(final_json(demo_dataset))
    sample = next(s for s in samples if s.answer.startswith('<score>-'))
    row = Encoder(processor).encode(sample)
    ids, labels = row['input_ids'].tolist(), row['labels'].tolist()
    start = next(k for k, v in enumerate(labels) if v != IGNORE_INDEX)
    answer_ids = tok(sample.answer + '<|im_end|>\n', add_special_tokens=False).input_ids
    assert labels[start:] == ids[start:] == answer_ids
    assert tok.decode(ids[start:]) == sample.answer + '<|im_end|>\n'
    assert set(labels[:start]) == {IGNORE_INDEX}
    # Masked: the system turn (real Qwen ids), the user turn, and the assistant header.
    assert ids[:10] == [151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645]
    assert tok.convert_ids_to_tokens(ids[start - 5:start]) == [
        '<|im_end|>', 'Ċ', '<|im_start|>', 'assistant', 'Ċ']
    # The training prompt (task without backticks) and 8 demo frames of 88 visual tokens each.
    assert f'<Task>\n{sample.task}\n' in tok.decode(ids[:start])
    inference = Encoder(processor, variant=PromptVariant.INFERENCE).encode(sample)['input_ids']
    assert f'<Task>\n`{sample.task}`\n' in tok.decode(inference)
    assert ids.count(tok.convert_tokens_to_ids('<|image_pad|>')) == 8 * 88
    assert row['image_grid_thw'].tolist() == [[1, 16, 22]] * 8


def test_collator_pads_right_and_concatenates_images(demo_dataset: Path,
                                                     tiny_grm_synthetic_dir: Path) -> None:
    processor = load_processor(tiny_grm_synthetic_dir, pixel_limits=SMALL)
    encoder = Encoder(processor, SMALL)
    samples = load_samples(final_json(demo_dataset))
    rows = sorted((encoder.encode(s) for s in samples[:4]), key=lambda r: len(r['input_ids']))
    short, long = rows[0], rows[-1]
    assert len(short['input_ids']) < len(long['input_ids'])
    batch = Collator(pad_token_id=processor.tokenizer.pad_token_id)([short, long])
    n = len(short['input_ids'])
    assert batch['input_ids'].shape == batch['labels'].shape == (2, len(long['input_ids']))
    assert batch['input_ids'][0, n:].eq(processor.tokenizer.pad_token_id).all()
    assert batch['labels'][0, n:].eq(IGNORE_INDEX).all()
    assert batch['attention_mask'][0].sum() == n and batch['attention_mask'][1].all()
    assert batch['labels'][0, :n].tolist() == short['labels'].tolist()
    assert batch['image_grid_thw'].shape == (16, 3)
    assert batch['pixel_values'].shape[0] == 16 * 48  # 16 images of 6x8 patches


def edit_records(dataset: Path, tmp_path: Path, edit: object) -> Path:
    records = json.loads(final_json(dataset).read_text())
    edit(records[1])  # type: ignore[operator]
    path = tmp_path / 'train_data' / 'train_jsons' / 'edited.json'
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(records))
    return path


@pytest.mark.parametrize('edit, message', [
    (lambda r: r['conversations'][0].update(value=r['conversations'][0]['value'].replace(
        '<Task>\n' + r['task'], '<Task>\n`' + r['task'] + '`!')), 'is not the GRM prompt'),
    (lambda r: r['conversations'][1].update(value='about +40%'), 'is not a <score>'),
    (lambda r: r['image'].pop(), 'must have 8 images'),
    (lambda r: r.pop('task'), 'is not a training record'),
])
def test_load_samples_rejects_malformed_records(demo_dataset: Path, tmp_path: Path,
                                                edit: object, message: str) -> None:
    path = edit_records(demo_dataset, tmp_path, edit)
    with pytest.raises(ConfigError, match=f'record 1.*{message}'):
        load_samples(path, image_root=demo_dataset.parent)


def test_load_samples_finds_the_image_root_or_says_what_is_missing(demo_dataset: Path,
                                                                    tmp_path: Path) -> None:
    samples = load_samples(final_json(demo_dataset))
    assert samples[0].images[0].is_relative_to(demo_dataset.parent)
    with pytest.raises(ConfigError, match=r'cannot find .* under any parent'):
        load_samples(edit_records(demo_dataset, tmp_path, lambda r: None))
    with pytest.raises(ConfigError, match=r'image files of .* are missing under'):
        load_samples(final_json(demo_dataset), image_root=tmp_path)


def batch_loss(model_dir: Path, batch: dict[str, torch.Tensor]) -> float:
    from transformers import Qwen2_5_VLForConditionalGeneration

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(model_dir, local_files_only=True)
    with torch.no_grad():
        return float(model.eval()(**batch).loss)


def test_lora_finetune_lowers_the_loss_and_the_checkpoint_scores_an_episode(
        demo_dataset: Path, tiny_grm_synthetic_dir: Path, tmp_path: Path) -> None:
    from safetensors import safe_open

    from robo_dopamine_ros.backends.transformers_backend import TransformersBackend
    from robo_dopamine_ros.backends.transformers_config import TransformersConfig
    from robo_dopamine_ros.core.engine import EngineConfig, EpisodeEngine, Sample
    from robo_dopamine_ros.files.frames import demo_episode_dir, open_frames

    data = final_json(demo_dataset)
    processor = load_processor(tiny_grm_synthetic_dir, pixel_limits=SMALL)
    encoder = Encoder(processor, SMALL)
    samples = load_samples(data)
    batch = Collator(processor.tokenizer.pad_token_id)([encoder.encode(s) for s in samples[:4]])
    before = batch_loss(tiny_grm_synthetic_dir, batch)

    out = finetune(FinetuneConfig(
        data=data, output_dir=tmp_path / 'grm-ft', model=str(tiny_grm_synthetic_dir),
        precision='fp32', max_steps=6, batch_size=2, grad_accum=1, lr=1e-2, warmup_ratio=0.0,
        logging_steps=1, pixel_limits=SMALL, dataloader_workers=0, progress=False))
    after = batch_loss(out, batch)
    assert after < before - 0.3, (before, after)  # measured 7.03 -> 6.24

    # A plain checkpoint: merged weights, no adapter files, the source's processor files.
    with safe_open(str(out / 'model.safetensors'), 'pt') as weights:
        assert not [k for k in weights.keys() if 'lora' in k]  # noqa: SIM118 (not a dict)
    assert not (out / 'adapter_config.json').exists()
    assert (out / 'tokenizer.json').read_bytes() == (
        tiny_grm_synthetic_dir / 'tokenizer.json').read_bytes()
    log = json.loads((out / 'finetune.json').read_text())
    assert log['config']['method'] == 'lora'
    assert len([h for h in log['log_history'] if 'loss' in h]) == 6

    backend = TransformersBackend(TransformersConfig(model=str(out), device='cpu'))
    engine = EpisodeEngine(backend, EngineConfig())
    episode = demo_episode_dir()
    sources = [open_frames(episode / f'{cam}.mp4')
               for cam in ('cam_high', 'cam_left_wrist', 'cam_right_wrist')]
    engine.start('organize the table', sources[0].read(85), episode_id='ft')
    results = [engine.step(Sample(i * 500_000_000, *(s.read(i) for s in sources)))
               for i in (0, 20, 40)]
    for source in sources:
        source.close()
    assert [r.step for r in results] == [0, 1, 2]
    assert results[-1].model_id == str(out)
    assert not any('backend failed' in r.reason for r in results)


def test_full_finetune_from_config_with_upstream_part_learning_rates(
        demo_dataset: Path, tiny_grm_synthetic_dir: Path, tmp_path: Path) -> None:
    from transformers import Qwen2_5_VLForConditionalGeneration

    from robo_dopamine_ros.backends.transformers_backend import TransformersBackend
    from robo_dopamine_ros.backends.transformers_config import TransformersConfig

    assert [model_part(n) for n in (
        'model.visual.blocks.0.attn.qkv.weight', 'model.visual.merger.mlp.0.weight',
        'base_model.model.model.visual.patch_embed.proj.weight',
        'model.language_model.layers.0.mlp.up_proj.weight', 'lm_head.weight')] == [
        'vision', 'merger', 'vision', 'llm', 'llm']
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_grm_synthetic_dir)
    lrs = {'llm': 1e-5, 'merger': 2e-5, 'vision': 5e-7}
    decay = {n for n, _ in model.named_parameters() if n.endswith('weight') and 'norm' not in n}
    groups = param_groups(model, decay, lrs, 0.01)
    group_of = {id(p): g for g in groups for p in g['params']}
    for name, param in model.named_parameters():
        group = group_of[id(param)]
        assert group['lr'] == lrs[model_part(name)], name
        assert group['weight_decay'] == (0.01 if name in decay else 0.0), name
    assert sum(len(g['params']) for g in groups) == len(list(model.parameters()))

    out = finetune(FinetuneConfig(
        data=final_json(demo_dataset), output_dir=tmp_path / 'scratch',
        from_config=tiny_grm_synthetic_dir / 'config.json', tokenizer=str(tiny_grm_synthetic_dir),
        method='full', precision='fp32', max_steps=2, batch_size=2, grad_accum=1,
        pixel_limits=SMALL, dataloader_workers=0, progress=False))
    backend = TransformersBackend(TransformersConfig(model=str(out), device='cpu'))
    assert backend.model.dtype == torch.float32


@pytest.mark.parametrize('kwargs, message', [
    ({}, 'exactly one of model'),
    ({'model': 'm', 'from_config': Path('c')}, 'exactly one of model'),
    ({'from_config': Path('c')}, 'needs a tokenizer'),
    ({'model': 'm', 'method': 'qlora'}, 'method must be one of'),
    ({'model': 'm', 'precision': 'fp16'}, 'precision must be one of'),
    ({'model': 'm', 'batch_size': 0}, 'batch_size must be a positive integer'),
    ({'model': 'm', 'warmup_ratio': 1.0}, r'warmup_ratio must be in \[0, 1\)'),
])
def test_finetune_config_rejects_bad_settings(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        FinetuneConfig(data=Path('d.json'), output_dir=Path('o'), **kwargs)


def test_training_arguments_upstream_schedule() -> None:
    from transformers import TrainingArguments

    config = FinetuneConfig(data=Path('d.json'), output_dir=Path('o'), model='m', method='full')
    assert config.learning_rate == 1e-5
    args = TrainingArguments(**training_arguments(config))
    assert args.per_device_train_batch_size * args.gradient_accumulation_steps == 32
    assert (args.lr_scheduler_type, args.weight_decay, args.num_train_epochs) == (
        'cosine', 0.01, 2.0)
    assert args.bf16 and not args.remove_unused_columns
    assert args.get_warmup_steps(100) == 3 and args.gradient_checkpointing
    assert FinetuneConfig(data=Path('d.json'), output_dir=Path('o'),
                          model='m').learning_rate == 1e-4


def test_lora_finetune_from_config_on_qwen3_vl(demo_dataset: Path,
                                               tiny_grm_qwen3_synthetic_dir: Path,
                                               tmp_path: Path) -> None:
    """The Qwen3-VL path: LoRA on random weights from a Qwen3-VL config, images resized at
    factor 32 (the configured bounds keep their pixel counts), the result loads and answers."""
    from robo_dopamine_ros.backends.transformers_backend import TransformersBackend
    from robo_dopamine_ros.backends.transformers_config import TransformersConfig
    from robo_dopamine_ros.core.profiles import geometry

    assert model_part('model.visual.deepstack_merger_list.0.linear_fc1.weight') == 'merger'
    out = finetune(FinetuneConfig(
        data=final_json(demo_dataset), output_dir=tmp_path / 'qwen3-lora',
        from_config=tiny_grm_qwen3_synthetic_dir / 'config.json',
        tokenizer=str(tiny_grm_qwen3_synthetic_dir), method='lora', precision='fp32',
        max_steps=2, batch_size=2, grad_accum=1, logging_steps=1, pixel_limits=SMALL,
        dataloader_workers=0, progress=False))
    log = json.loads((out / 'finetune.json').read_text())
    assert len([h for h in log['log_history'] if 'loss' in h]) == 2
    backend = TransformersBackend(TransformersConfig(
        model=str(out), device='cpu', pixel_limits=geometry('qwen3_vl', 3136, 12544)))
    try:
        assert backend.architecture == 'qwen3_vl'
        assert type(backend.model).__name__ == 'Qwen3VLForConditionalGeneration'
    finally:
        backend.close()
