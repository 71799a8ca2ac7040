"""Per-part learning rates: the language model, the vision-language merger and the vision tower.

Upstream fine-tunes the three at different rates (docs/upstream.md §8.5); the stock Trainer has
one. This module sorts parameters into those parts and gives the Trainer an optimiser built from
the resulting groups.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

_MERGER = re.compile(r'(^|\.)visual\.(merger|deepstack_merger_list)\.')  # Qwen3-VL: both
_VISION = re.compile(r'(^|\.)visual\.')


def model_part(name: str) -> str:
    """Which learning-rate group a parameter belongs to: ``vision``, ``merger`` or ``llm``."""
    if _MERGER.search(name):
        return 'merger'
    return 'vision' if _VISION.search(name) else 'llm'


def param_groups(model: Any, decay_names: set[str], part_lrs: dict[str, float],
                 weight_decay: float) -> list[dict[str, Any]]:
    """Optimiser groups of the trainable parameters: per model part (its learning rate) and
    with/without weight decay (none on biases and norms)."""
    groups: dict[tuple[str, bool], dict[str, Any]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        part, decay = model_part(name), name in decay_names
        group = groups.setdefault((part, decay), {
            'params': [], 'lr': part_lrs[part], 'weight_decay': weight_decay if decay else 0.0})
        group['params'].append(param)
    return list(groups.values())


def trainer_class() -> type:
    """The Trainer with per-part learning rates (built lazily: importing Trainer takes ~4 s)."""
    from transformers import Trainer

    class GrmTrainer(Trainer):
        """``Trainer`` whose optimiser gives the vision tower and merger their own rates."""

        def __init__(self, *args: Any, part_lrs: dict[str, float], **kwargs: Any) -> None:
            self.part_lrs = part_lrs
            super().__init__(*args, **kwargs)

        def create_optimizer(self, model: Any = None) -> torch.optim.Optimizer:
            if self.optimizer is None:
                target = self.model if model is None else model
                cls, kwargs = self.get_optimizer_cls_and_kwargs(self.args, target)
                decay = set(self.get_decay_parameter_names(target))
                self.optimizer = cls(param_groups(target, decay, self.part_lrs,
                                                  self.args.weight_decay), **kwargs)
            return self.optimizer

    return GrmTrainer
