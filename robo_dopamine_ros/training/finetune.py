"""Fine-tune a Qwen2.5-VL GRM on step 2's records with the transformers Trainer.

Two methods:

* ``lora`` (default): low-rank adapters on the language model's attention and MLP projections;
  the base stays frozen in the compute dtype, so a 3B GRM adapts on one robot-PC GPU. The
  adapters are merged into the weights on save: the output is a plain checkpoint that the
  transformers backend and the node load without peft.
* ``full``: every weight trains, with upstream's per-part learning rates (docs/upstream.md §8.5:
  LLM 1e-5, merger 1e-5, vision tower 5e-7), AdamW, cosine, 3 % warmup, weight decay 0.01,
  effective batch 32 (2 x 16 accumulation on one GPU instead of 2 x 2 x 8 GPUs), 2 epochs.

Trainable weights are always fp32 (``full`` in ``bf16`` keeps fp32 master weights under bf16
autocast, as upstream's DeepSpeed bf16 does: pure-bf16 AdamW rounds most 1e-5 updates away);
frozen weights sit in the compute dtype. The saved checkpoint is in the compute dtype.

``from_config`` starts from a config and a tokenizer instead of pretrained weights (training
from scratch, or a tiny model in tests).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..core.errors import ConfigError, ModelLoadError, coerce_enum
from ..core.images import PixelLimits
from ..core.profiles import geometry
from ..core.prompt import PromptVariant
from .dataset import Collator, Encoder, GrmDataset, load_samples
from .part_lrs import trainer_class

log = logging.getLogger(__name__)

#: LoRA targets: the language model's attention and MLP projections (not the vision tower,
#: whose MLP uses the same layer names).
LORA_TARGETS = (r'.*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|'
                r'down_proj)')
#: Processor files copied into the output checkpoint unchanged, so it tokenises, resizes and
#: templates exactly as its source did.
PROCESSOR_FILES = ('tokenizer.json', 'tokenizer_config.json', 'vocab.json', 'merges.txt',
                   'added_tokens.json', 'special_tokens_map.json', 'preprocessor_config.json',
                   'processor_config.json', 'chat_template.json', 'chat_template.jinja')


class Method(str, enum.Enum):
    """What trains."""

    LORA = 'lora'
    FULL = 'full'


class Precision(str, enum.Enum):
    """The compute dtype (see the module docstring for the master weights)."""

    BF16 = 'bf16'
    FP32 = 'fp32'


#: Learning rate when none is given: a common LoRA rate, upstream's full-tuning rate.
DEFAULT_LR = {Method.LORA: 1e-4, Method.FULL: 1e-5}


@dataclass(frozen=True, kw_only=True)
class FinetuneConfig:
    """What to train, on what, and how.

    Attributes:
        data: Training records (``finetune_data_final.json``).
        output_dir: Where the merged checkpoint goes (Trainer state under ``trainer/``).
        model: Pretrained GRM directory or cached hub id (``None`` with ``from_config``).
        from_config: A ``config.json`` (or its directory): random weights of that architecture.
        tokenizer: With ``from_config``: the directory of the tokenizer and image processor.
        image_root: Directory the records' image paths are relative to (default: found).
        method: ``lora`` or ``full``.
        precision: ``bf16`` or ``fp32`` compute.
        epochs: Passes over the data (upstream 2).
        max_steps: Stop after this many optimiser steps (overrides ``epochs``).
        batch_size: Samples per device step (upstream 2).
        grad_accum: Steps per optimiser step (16: upstream's effective batch 32 on one GPU).
        lr: Learning rate of the language model (default by method, ``DEFAULT_LR``).
        merger_lr: Learning rate of the vision-language merger (upstream mm_projector_lr).
        vision_lr: Learning rate of the vision tower (upstream vision_tower_lr).
        weight_decay: AdamW weight decay (not on biases and norms).
        warmup_ratio: Share of steps with linear warmup before the cosine decay.
        max_grad_norm: Gradient clipping.
        lora_r: LoRA rank.
        lora_alpha: LoRA scale numerator.
        lora_dropout: Dropout on the LoRA path.
        gradient_checkpointing: Recompute activations in the backward pass (less memory).
        pixel_limits: Image size limits (the spec's 12544..76800 px).
        prompt_variant: The prompt trained on: upstream's ``training`` variant, or the
            ``inference`` one the engine sends (docs/upstream.md §3.3).
        attn_implementation: e.g. ``'sdpa'``, ``'flash_attention_2'``; ``None``: default.
        save_steps: Save a Trainer checkpoint every N steps (0: only the final model).
        logging_steps: Log the loss every N steps.
        seed: Seed of the data order, dropout and (``from_config``) the initial weights.
        dataloader_workers: Processes that decode and tokenise samples.
        cpu: Train on the CPU even if a GPU is present.
        progress: Show the Trainer's progress bar.
    """

    data: Path
    output_dir: Path
    model: str | None = None
    from_config: Path | None = None
    tokenizer: str | None = None
    image_root: Path | None = None
    method: Method = Method.LORA
    precision: Precision = Precision.BF16
    epochs: float = 2.0
    max_steps: int | None = None
    batch_size: int = 2
    grad_accum: int = 16
    lr: float | None = None
    merger_lr: float = 1e-5
    vision_lr: float = 5e-7
    weight_decay: float = 0.01
    warmup_ratio: float = 0.03
    max_grad_norm: float = 1.0
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    gradient_checkpointing: bool = True
    pixel_limits: PixelLimits = field(default_factory=PixelLimits)
    prompt_variant: PromptVariant = PromptVariant.TRAINING
    attn_implementation: str | None = None
    save_steps: int = 0
    logging_steps: int = 10
    seed: int = 42
    dataloader_workers: int = 2
    cpu: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        coerce_enum(self, 'method', Method)
        coerce_enum(self, 'precision', Precision)
        coerce_enum(self, 'prompt_variant', PromptVariant)
        if (self.model is None) == (self.from_config is None):
            raise ConfigError('give exactly one of model (a pretrained GRM) and from_config, '
                              f'got model={self.model!r}, from_config={self.from_config!r}')
        if self.from_config is not None and self.tokenizer is None:
            raise ConfigError('from_config needs a tokenizer directory (tokenizer and image '
                              'processor files)')
        for name in ('batch_size', 'grad_accum', 'lora_r', 'lora_alpha', 'logging_steps'):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f'{name} must be a positive integer, got '
                                  f'{getattr(self, name)!r}')
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f'max_steps must be >= 1, got {self.max_steps!r}')
        for name in ('warmup_ratio', 'lora_dropout'):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f'{name} must be in [0, 1), got {getattr(self, name)!r}')

    @property
    def learning_rate(self) -> float:
        """The language model's learning rate (``lr`` or the method's default)."""
        return self.lr if self.lr is not None else DEFAULT_LR[self.method]

    @property
    def compute_dtype(self) -> torch.dtype:
        """The dtype of the forward pass, the frozen LoRA base and the saved checkpoint."""
        return torch.bfloat16 if self.precision is Precision.BF16 else torch.float32


def finetune(config: FinetuneConfig) -> Path:
    """Train and save a merged, plain checkpoint in ``config.output_dir``.

    Also writes ``finetune.json`` there: the settings and the Trainer's loss log.

    Raises:
        ConfigError: Bad records or settings. ModelLoadError: The model cannot be loaded.
    """
    from transformers import TrainingArguments

    samples = load_samples(config.data, config.image_root)
    model, processor, processor_dir = load_model(config)
    encoder = Encoder(processor, limits_for(config, model.config.model_type),
                      config.prompt_variant)
    if config.method is Method.LORA:
        model = add_lora(model, config)
    else:
        model.requires_grad_(True)
    out = config.output_dir
    trainer = trainer_class()(
        model=model,
        args=TrainingArguments(**training_arguments(config)),
        train_dataset=GrmDataset(samples, encoder),
        data_collator=Collator(processor.tokenizer.pad_token_id),
        part_lrs={'llm': config.learning_rate, 'merger': config.merger_lr,
                  'vision': config.vision_lr},
    )
    log.info('training %s (%s, %s) on %d samples', config.model or config.from_config,
             config.method.value, config.precision.value, len(samples))
    trainer.train()
    trained = trainer.model.merge_and_unload() if config.method is Method.LORA else trainer.model
    save_checkpoint(trained, processor_dir, out, config.compute_dtype)
    record = {'config': _jsonable(dataclasses.asdict(config)),
              'log_history': trainer.state.log_history}
    (out / 'finetune.json').write_text(json.dumps(record, indent=2) + '\n', encoding='utf-8')
    return out


def load_model(config: FinetuneConfig) -> tuple[Any, Any, Path]:
    """The model to train (pretrained or fresh from a config), its processor and the directory
    the processor files come from.

    Raises:
        ModelLoadError: A missing checkpoint, config or tokenizer, or an architecture that is
            not a supported GRM one (Qwen2.5-VL, Qwen3-VL).
    """
    from transformers import AutoConfig, set_seed

    from ..backends.architectures import info_from_config, model_class, read_checkpoint
    from ..backends.processor import load_processor

    # Frozen LoRA base weights sit in the compute dtype; trained weights are fp32 masters.
    dtype = config.compute_dtype if config.method is Method.LORA else torch.float32
    kwargs: dict[str, Any] = {}
    if config.attn_implementation is not None:
        kwargs['attn_implementation'] = config.attn_implementation
    set_seed(config.seed)
    if config.from_config is not None:
        try:
            model_config = AutoConfig.from_pretrained(str(config.from_config),
                                                      local_files_only=True, **kwargs)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f'cannot read the model config {str(config.from_config)!r}: '
                                 f'{exc}') from exc
        arch = info_from_config(model_config.to_dict(), str(config.from_config)).model_type
        model = model_class(arch)(model_config).to(dtype)
        processor_dir = local_dir(str(config.tokenizer))
    else:
        model_id = str(config.model)
        arch = read_checkpoint(model_id).model_type
        processor_dir = local_dir(model_id)
        try:
            model = model_class(arch).from_pretrained(
                processor_dir, dtype=dtype, local_files_only=True, **kwargs)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f'cannot load the weights of {model_id!r}: {exc}') from exc
    try:
        processor = load_processor(processor_dir, architecture=arch,
                                   pixel_limits=limits_for(config, arch))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f'cannot load a processor from {str(processor_dir)!r}: '
                             f'{exc}') from exc
    image_pad = processor.tokenizer.convert_tokens_to_ids('<|image_pad|>')
    if model.config.image_token_id != image_pad:
        raise ModelLoadError(f'the model config says image_token_id={model.config.image_token_id}'
                             f' but the tokenizer in {str(processor_dir)!r} has {image_pad}: '
                             'they do not belong together')
    return model, processor, processor_dir


def limits_for(config: FinetuneConfig, architecture: str) -> PixelLimits:
    """The configured pixel bounds at the resize factor of the model's architecture."""
    return geometry(architecture, config.pixel_limits.min_pixels, config.pixel_limits.max_pixels)


def local_dir(model: str) -> Path:
    """A local directory for ``model``: itself, or its snapshot in the Hugging Face cache.

    Raises:
        ModelLoadError: Neither a directory nor a cached hub id.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(model, local_files_only=True))
    except (LocalEntryNotFoundError, ValueError) as exc:
        raise ModelLoadError(f'{model!r} is neither a directory nor in the local Hugging Face '
                             f'cache; download it first ({exc})') from exc


def add_lora(model: Any, config: FinetuneConfig) -> Any:
    """Wrap ``model`` with LoRA adapters on :data:`LORA_TARGETS`; everything else is frozen."""
    from peft import LoraConfig, TaskType, get_peft_model

    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha,
                      lora_dropout=config.lora_dropout, target_modules=LORA_TARGETS,
                      task_type=TaskType.CAUSAL_LM)
    peft_model = get_peft_model(model, lora)
    trainable, total = peft_model.get_nb_trainable_parameters()
    log.info('LoRA r=%d: %d trainable of %d parameters (%.2f %%)', config.lora_r, trainable,
             total, 100.0 * trainable / total)
    return peft_model


def training_arguments(config: FinetuneConfig) -> dict[str, Any]:
    """Keyword arguments of ``TrainingArguments`` for ``config``."""
    from transformers import TrainingArguments

    kwargs: dict[str, Any] = {
        'output_dir': str(config.output_dir / 'trainer'),
        'per_device_train_batch_size': config.batch_size,
        'gradient_accumulation_steps': config.grad_accum,
        'num_train_epochs': config.epochs,
        'max_steps': config.max_steps or -1,
        'learning_rate': config.learning_rate,
        'weight_decay': config.weight_decay,
        'lr_scheduler_type': 'cosine',
        'max_grad_norm': config.max_grad_norm,
        'bf16': config.precision is Precision.BF16,
        'logging_steps': config.logging_steps,
        'save_strategy': 'steps' if config.save_steps else 'no',
        'save_steps': config.save_steps or 500,
        'save_total_limit': 5,
        'report_to': 'none',
        'remove_unused_columns': False,  # the collator's image tensors are not columns
        'label_names': ['labels'],
        'dataloader_num_workers': config.dataloader_workers,
        'dataloader_pin_memory': torch.cuda.is_available() and not config.cpu,
        'seed': config.seed,
        'data_seed': config.seed,
        # Without a GPU the Trainer refuses bf16 unless told it is on the CPU.
        'use_cpu': config.cpu or not torch.cuda.is_available(),
        'disable_tqdm': not config.progress,
    }
    # Names differ across the supported transformers (4.57 .. 5.x): 5.x folded warmup_ratio
    # into warmup_steps (a float < 1 is a ratio) and renamed gradient to activation
    # checkpointing.
    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    kwargs['warmup_ratio' if 'warmup_ratio' in fields else 'warmup_steps'] = config.warmup_ratio
    checkpointing = ('activation_checkpointing' if 'activation_checkpointing' in fields
                     else 'gradient_checkpointing')
    kwargs[checkpointing] = config.gradient_checkpointing
    # Non-reentrant: works with frozen inputs (LoRA) without enable_input_require_grads().
    kwargs[f'{checkpointing}_kwargs'] = {'use_reentrant': False}
    return kwargs


def save_checkpoint(model: Any, processor_dir: Path, out: Path, dtype: torch.dtype) -> Path:
    """Save ``model`` in ``dtype`` with its source's processor files: a plain GRM checkpoint."""
    out.mkdir(parents=True, exist_ok=True)
    model.to(dtype).save_pretrained(out)
    for name in PROCESSOR_FILES:
        if (processor_dir / name).is_file():
            shutil.copyfile(processor_dir / name, out / name)
    log.info('saved the fine-tuned GRM in %s', out)
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, enum.Enum):
        return value.value
    return str(value) if isinstance(value, Path) else value
