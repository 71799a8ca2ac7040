"""Training records -> model tensors, with the loss on the assistant's answer only.

A record (step 1/2 format) becomes the exact token sequence the GRM sees at inference — system
line, user turn with the 8 images in slot order, ``<|im_start|>assistant\\n`` — followed by the
answer and ``<|im_end|>\\n``. Labels are ``-100`` (ignored) up to and including the assistant
header, as upstream's SFT code masks them (system and user turns, then the first 3 tokens of the
assistant turn), so the model learns only to produce ``<score>+37.0%</score><|im_end|>\\n``.

Images go through ``core.images.prepare`` with the spec's pixel limits, the resize the engine
applies at inference, so training and scoring see the same pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ..core.errors import ConfigError
from ..core.images import PixelLimits, prepare
from ..core.parsing import ParseStatus, parse_score
from ..core.prompt import NUM_IMAGES, PromptVariant, chat_messages, check_task, render_prompt
from ..files.frames import read_image
from .keyframes import read_json

DEFAULT_PIXEL_LIMITS = PixelLimits()
#: Label value the loss ignores (torch's CrossEntropyLoss default).
IGNORE_INDEX = -100
ASSISTANT_HEADER = '<|im_start|>assistant\n'
#: What follows the answer in a rendered assistant turn (trained on, as upstream does).
ANSWER_END = '<|im_end|>\n'
#: Tensors laid out one row per sample, padded to the batch's longest sequence.
_SEQUENCE_KEYS = {'input_ids': None, 'attention_mask': 0, 'labels': IGNORE_INDEX,
                  'mm_token_type_ids': 0}
#: Tensors of all samples' images, concatenated (the model splits them by ``image_grid_thw``).
_IMAGE_KEYS = ('pixel_values', 'image_grid_thw')


@dataclass(frozen=True)
class TrainingRecord:
    """One training record: 8 image files in slot order, the task and the target answer."""

    id: str
    images: tuple[Path, ...]
    task: str
    answer: str


def load_samples(path: Path, image_root: Path | None = None) -> list[TrainingRecord]:
    """Read and check a training JSON (step 2's ``finetune_data_final.json`` or any step 1 file).

    Every problem is reported before training starts, not as a crash hours in. The human turn
    must be the GRM prompt for the record's task (either variant); the :class:`Encoder` renders
    the variant being trained from the task.

    Args:
        path: The records.
        image_root: Directory the records' image paths are relative to (upstream's
            ``data_path``); ``None`` finds it (see :func:`find_image_root`).

    Raises:
        ConfigError: Not a non-empty list of records; a record whose human turn is not the GRM
            prompt for its task, whose answer is not a ``<score>`` tag, or whose image files
            are missing.
    """
    records = read_json(path)
    if not isinstance(records, list) or not records:
        raise ConfigError(f'{str(path)!r} must hold a non-empty list of training records')
    root = image_root or find_image_root(path, records[0])
    samples = [_sample(record, k, root, path) for k, record in enumerate(records)]
    missing = [str(p) for s in samples for p in s.images if not p.is_file()]
    if missing:
        raise ConfigError(f'{len(missing)} image files of {str(path)!r} are missing under '
                          f'{str(root)!r}, e.g. {missing[0]!r}; pass the right image root')
    return samples


def find_image_root(path: Path, record: Any) -> Path:
    """The nearest of ``path``'s parent directories that holds the first record's first image.

    Upstream's files sit at ``<root>/train_data/train_jsons/*.json`` with images under
    ``<root>/train_data/...`` and paths relative to ``<root>``.

    Raises:
        ConfigError: No parent directory holds the image.
    """
    images = record.get('image') if isinstance(record, dict) else None
    if not isinstance(images, list) or not images or not isinstance(images[0], str):
        raise ConfigError(f'{str(path)!r}: the first record has no image list')
    for folder in path.resolve().parents:
        if (folder / images[0]).is_file():
            return folder
    raise ConfigError(f'cannot find {images[0]!r} under any parent of {str(path)!r}; pass the '
                      'directory the image paths are relative to (--image-root)')


def _sample(record: Any, k: int, root: Path, path: Path) -> TrainingRecord:
    where = f'{str(path)!r} record {k}'
    try:
        images, task = record['image'], record['task']
        human, gpt = (turn['value'] for turn in record['conversations'])
        check_task(task)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f'{where} is not a training record (needs image, task and a '
                          f'human/gpt conversation): {exc}') from None
    if not isinstance(images, list) or len(images) != NUM_IMAGES:
        raise ConfigError(f'{where} must have {NUM_IMAGES} images, got {images!r:.120}')
    if human not in {render_prompt(task, variant) for variant in PromptVariant}:
        raise ConfigError(f'{where}: the human turn is not the GRM prompt for task {task!r}')
    if parse_score(gpt, lenient=False).status is not ParseStatus.OK:
        raise ConfigError(f'{where}: the answer {gpt!r} is not a <score>…</score> tag')
    return TrainingRecord(str(record.get('id', k)), tuple(root / p for p in images), task, gpt)


class Encoder:
    """Turns a :class:`TrainingRecord` into one row of model inputs with answer-only labels."""

    def __init__(self, processor: Any, pixel_limits: PixelLimits = DEFAULT_PIXEL_LIMITS,
                 variant: PromptVariant = PromptVariant.TRAINING) -> None:
        self.processor = processor
        self.pixel_limits = pixel_limits
        self.variant = PromptVariant(variant)
        tokenizer = processor.tokenizer
        self._im_start = tokenizer.convert_tokens_to_ids('<|im_start|>')
        self._header_len = len(tokenizer(ASSISTANT_HEADER, add_special_tokens=False).input_ids)

    def encode(self, sample: TrainingRecord) -> dict[str, torch.Tensor]:
        """Tokenise and image-process ``sample``; labels unmask the answer and its turn end.

        Raises:
            ConfigError: The answer's tokens would merge with the prompt's (then the mask
                boundary would be wrong).
        """
        images = [Image.fromarray(prepare(read_image(p), self.pixel_limits))
                  for p in sample.images]
        messages = chat_messages(sample.task, [None] * NUM_IMAGES, self.variant)
        prompt = self.processor.apply_chat_template(messages, tokenize=False,
                                                    add_generation_prompt=True)
        enc = self.processor(text=[prompt + sample.answer + ANSWER_END], images=images,
                             return_tensors='pt')
        row = {key: value[0] if key in _SEQUENCE_KEYS else value for key, value in enc.items()}
        ids = row['input_ids']
        start = int((ids == self._im_start).nonzero()[-1]) + self._header_len
        answer = self.processor.tokenizer(sample.answer + ANSWER_END,
                                          add_special_tokens=False).input_ids
        if ids[start:].tolist() != answer:
            raise ConfigError(f'sample {sample.id!r}: the answer {sample.answer!r} does not '
                              'tokenise on its own after the assistant header')
        labels = ids.clone()
        labels[:start] = IGNORE_INDEX
        row['labels'] = labels
        return row


class GrmDataset:
    """A map-style dataset (what the Trainer's DataLoader needs) encoding samples lazily."""

    def __init__(self, samples: Sequence[TrainingRecord], encoder: Encoder) -> None:
        self.samples = list(samples)
        self.encoder = encoder

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.encoder.encode(self.samples[index])


@dataclass(frozen=True)
class Collator:
    """Right-pads the per-sample rows into a batch and concatenates their images."""

    pad_token_id: int

    def __call__(self, rows: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Batch ``rows`` from :meth:`Encoder.encode`."""
        length = max(len(row['input_ids']) for row in rows)
        batch: dict[str, torch.Tensor] = {}
        for key, pad in _SEQUENCE_KEYS.items():
            if key not in rows[0]:
                continue
            fill = self.pad_token_id if pad is None else pad
            out = torch.full((len(rows), length), fill, dtype=rows[0][key].dtype)
            for k, row in enumerate(rows):
                out[k, :len(row[key])] = row[key]
            batch[key] = out
        for key in _IMAGE_KEYS:
            batch[key] = torch.cat([row[key] for row in rows])
        return batch
