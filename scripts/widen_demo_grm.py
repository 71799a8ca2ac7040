#!/usr/bin/env python3
"""Widen a Qwen2.5-VL GRM's text heads to a size vLLM's CPU attention runs, keeping its function.

vLLM's CPU attention runs only some head sizes (``models.tiny_grm.SERVABLE_HEAD_SIZES``, >= 32);
the first demo GRM has 4 heads of 16. Retraining changes the model (a head-32 retrain read better
offline but trapped the RL learner more often, docs/setup.md), so this rewrites the weights into a
wider model that computes the same function, up to float rounding:

* the text residual stream goes from ``H`` to ``2H`` channels; the new channels are zero at the
  embedding and every layer writes zeros into them (zero output rows), so they stay zero;
* RMSNorm then divides by ``sqrt(mean(x^2) + eps)`` over twice the channels: with ``eps`` halved
  that is exactly ``sqrt(2)`` smaller, and the norm weights are divided by ``sqrt(2)``;
* each head grows from ``d`` to ``2d`` dimensions. Rotary frequencies are ``theta^(-2i/d)``, so
  old frequency ``j`` is new frequency ``2j``: old dimension ``j`` (and its rotate-half partner
  ``j + d/2``) moves to ``2j`` (and ``2j + d``); the M-RoPE sections double, and old frequency
  ``j``'s section (temporal, height, width) is new frequency ``2j``'s: checked, not assumed;
* attention scales by ``1/sqrt(head size)``: the queries are multiplied by ``sqrt(2)``;
* values and the output projection keep their dimensions, zero-padded per head;
* the vision tower is unchanged; its merger's output is zero-padded to the new width.

Qwen3-VL interleaves its M-RoPE sections (frequency ``i``'s axis follows ``i mod 3``), so frequency
``2j`` lands on another axis and this does not apply: its demo GRM was retrained.

    python scripts/widen_demo_grm.py OLD_DIR NEW_DIR
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

WEIGHTS = 'model.safetensors'


def _axis(section: list[int], freq: int) -> int:
    """Which M-RoPE axis (0 time, 1 height, 2 width) frequency ``freq`` belongs to."""
    bounds = [sum(section[:k + 1]) for k in range(len(section))]
    return next(k for k, b in enumerate(bounds) if freq < b)


def head_rows(head: int) -> list[int]:
    """New positions (in a head of ``2*head``) of an old head's query/key dimensions."""
    half = head // 2
    return [2 * j if j < half else head + 2 * (j - half) for j in range(head)]


def _text(config: dict) -> dict:
    """The text part of a config: nested (``save_pretrained``) or flat (the released layout)."""
    return config.get('text_config', config)


def widen_config(config: dict) -> dict:
    """The config of the widened model (text width and head size doubled)."""
    new = json.loads(json.dumps(config))
    text = _text(new)
    if new.get('model_type') != 'qwen2_5_vl':
        raise SystemExit(f'only Qwen2.5-VL can be widened exactly, not {new.get("model_type")}')
    rope = text.get('rope_parameters') or text['rope_scaling']
    section = list(rope['mrope_section'])
    wide = [2 * s for s in section]
    if any(_axis(section, j) != _axis(wide, 2 * j) for j in range(sum(section))):
        raise SystemExit(f'M-RoPE sections {section} do not map onto {wide}')
    rope['mrope_section'] = wide
    text['hidden_size'] *= 2
    text['rms_norm_eps'] /= 2
    new['vision_config']['out_hidden_size'] *= 2
    return new


def widen_weights(weights: dict[str, torch.Tensor], config: dict) -> dict[str, torch.Tensor]:
    """The widened state dict (see the module docstring for each rule)."""
    text = _text(config)
    width, heads = text['hidden_size'], text['num_attention_heads']
    head = width // heads
    rows = torch.tensor(head_rows(head))
    out: dict[str, torch.Tensor] = {}
    for name, old in weights.items():
        merger_out = 'visual.merger.mlp.2.' in name
        if 'visual.' in name and not merger_out:
            out[name] = old
            continue
        attn = next((p for p in ('q_proj', 'k_proj', 'v_proj', 'o_proj')
                     if f'.{p}.' in name), None)
        if attn in ('q_proj', 'k_proj', 'v_proj'):
            groups, rest = old.shape[0] // head, tuple(old.shape[1:])
            new = old.new_zeros((groups, 2 * head, *rest))
            old = old.reshape((groups, head, *rest))
            if attn == 'v_proj':
                new[:, :head] = old
            else:
                new[:, rows] = old * (math.sqrt(2.0) if attn == 'q_proj' else 1.0)
            new = new.reshape((groups * 2 * head, *rest))
            out[name] = _pad(new, cols=new.dim() == 2)
        elif attn == 'o_proj':
            new = old.new_zeros(2 * width, heads, 2 * head)
            new[:width, :, :head] = old.reshape(width, heads, head)
            out[name] = new.reshape(2 * width, 2 * width)
        elif name.endswith('norm.weight'):
            out[name] = _pad(old / math.sqrt(2.0), rows=True)
        elif name.endswith(('embed_tokens.weight', 'gate_proj.weight', 'up_proj.weight')):
            out[name] = _pad(old, cols=True)
        elif name.endswith('down_proj.weight') or merger_out:
            out[name] = _pad(old, rows=True)
        else:
            raise SystemExit(f'no widening rule for {name} {tuple(old.shape)}')
    return out


def _pad(t: torch.Tensor, *, rows: bool = False, cols: bool = False) -> torch.Tensor:
    """``t`` with zeros appended: its first dimension doubled (rows), its second (cols)."""
    shape = list(t.shape)
    if rows:
        shape[0] *= 2
    if cols:
        shape[1] *= 2
    new = t.new_zeros(shape)
    new[tuple(slice(0, n) for n in t.shape)] = t
    return new


def widen(src: Path, dst: Path) -> Path:
    """Write the widened checkpoint of ``src`` (every other file copied unchanged) to ``dst``."""
    config = json.loads((src / 'config.json').read_text())
    wide_config = widen_config(config)          # refuses before anything is written
    weights = widen_weights(load_file(str(src / WEIGHTS)), config)
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file() and f.name not in ('config.json', WEIGHTS):
            shutil.copyfile(f, dst / f.name)
    save_file(weights, str(dst / WEIGHTS), metadata={'format': 'pt'})
    (dst / 'config.json').write_text(json.dumps(wide_config, indent=2) + '\n')
    return dst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', type=Path)
    parser.add_argument('dst', type=Path)
    args = parser.parse_args(argv)
    print(widen(args.src, args.dst))
    return 0


if __name__ == '__main__':
    sys.exit(main())
