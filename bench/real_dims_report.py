"""The Markdown report of ``real_dims.py``: the same tables on a CPU (truncated) or a GPU."""

from __future__ import annotations

import argparse
import datetime
import os
import platform
from typing import Any

import torch
import transformers

PHASES = ('vision', 'prefill', 'decode', 'processor', 'generate_loop', 'ours')
NOTES = """## Notes

* **Random weights, forced answer.** The weights are random and never saved; a test double
  (`ForcedAnswer`) replaces the model's choice of token by the tokens of `<score>+37.0%</score>`,
  after a full forward each time, so the backend's real stop criteria end the answer where the
  real GRM's would: 10 new tokens without answer prefill, 6 with it (`<score` prefilled as 2
  token ids; early stop at `%</`). Decode steps are the forwards after the prompt's (the first
  new token comes from the prompt's forward). The answers column shows what was parsed.
* **Vision cache on** (the product default): a steady fused step encodes its 3 new views only;
  the 24 images of its three queries still enter the prefill.
* **Memory.** *Sizing* is `weights_bytes` (what `model.max_gpu_memory_gib` checks before
  loading) read from a header-only `model.safetensors` of the same configuration: tied
  embeddings counted once, as `save_pretrained` writes them. *Tensors built* adds up the built
  model's distinct parameters and buffers. *Model built* is the growth of the process's RSS
  (CPU) or of the allocated GPU memory while the model was constructed; an RSS growth a little
  below the tensors' bytes is memory the allocator reused (freed while the processor loaded).
  *After warm-up* and *peak during measured steps* are above the level before the model was
  built: the weights plus what the first steps left (on a CPU, e.g. ~128 MiB of stop-string
  tables over the 151k-token vocabulary that the early stop builds on first use, and the video
  decoder), then the transient activations, key/value cache and vision-cache entries of a step.
"""


def _gib(x: float | None) -> str:
    return '—' if x is None else f'{x:.3f}'


def _pct(x: float, ref: float) -> str:
    return f'{100 * (x - ref) / ref:+.1f} %'


def _ms(x: float) -> str:
    return f'{x * 1e3:.0f}'


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table."""
    return ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header),
            *('| ' + ' | '.join(row) + ' |' for row in rows)]


def _prefill(on: bool) -> str:
    return 'on' if on else 'off'


def memory_table(results: list[dict[str, Any]], cuda: bool) -> list[str]:
    what = 'allocated GPU memory' if cuda else 'RSS'
    header = ['architecture (profile)', 'text layers', 'vision blocks', 'weights sizing, GiB',
              'tensors built, GiB', f'model built ({what} growth), GiB', 'vs sizing',
              f'after warm-up ({what} above pre-model), GiB', 'peak during measured steps, GiB',
              'vs sizing', 'full-depth sizing, GiB']
    rows = []
    for r in results:
        (text, vision), (full_text, full_vision) = r['depths'], r['full_depths']
        rows.append([f'{r["arch"]} ({r["profile"]})', f'{text} of {full_text}',
                     f'{vision} of {full_vision}', _gib(r['sizing_gib']), _gib(r['tensor_gib']),
                     _gib(r['model_gib']), _pct(r['model_gib'], r['sizing_gib']),
                     _gib(r['settled_gib']), _gib(r['peak_gib']),
                     _pct(r['peak_gib'], r['sizing_gib']), _gib(r['full_sizing_gib'])])
    return _table(header, rows)


def memory_lines(results: list[dict[str, Any]]) -> list[str]:
    """What the peak holds beyond the weights, and the full-depth peak it implies."""
    lines = []
    for r in results:
        (text, _), (full_text, _) = r['depths'], r['full_depths']
        tokens = int(max(r['prompt_tokens'][False])) + 10  # the forced answer's 10 new tokens
        rows = len(r['prompt_tokens'][False])
        kv = r['kv_bytes'] * rows * tokens / 2**30        # per decoder layer
        extra = r['peak_gib'] - r['model_gib']
        line = (f'- {r["arch"]}: the peak holds {extra:.3f} GiB beyond the model built, of which '
                f'the key/value cache of the {rows} rows is {kv * text * 1024:.0f} MiB '
                f'(computed: {text} layers x {tokens} tokens)')
        if text < full_text and r['full_sizing_gib'] is not None:
            full = r['full_sizing_gib'] + extra + kv * (full_text - text)
            line += (f'; at full depth the cache is {kv * full_text * 1024:.0f} MiB, so the '
                     f'peak would be about {full:.2f} GiB (**extrapolated**: full-depth sizing + '
                     f'the same one-time and transient memory + the deeper cache), '
                     f'{100 * (full / r["full_sizing_gib"] - 1):+.0f} % over the sizing')
        lines.append(line + '.')
    return lines


def token_table(results: list[dict[str, Any]]) -> list[str]:
    header = ['architecture', 'image tokens per 640x480 view, measured', 'profile says',
              'prompt tokens per query (incremental / forward / backward), no prefill',
              'with prefill', 'answers parsed']
    rows = [[r['arch'], str(r['view_tokens']), str(r['profile_view_tokens']),
             *(' / '.join(f'{t:.0f}' for t in r['prompt_tokens'][on]) for on in (False, True)),
             ', '.join(f'`{a}`' for a in r['answers'])] for r in results]
    return _table(header, rows)


def split_table(results: list[dict[str, Any]]) -> list[str]:
    header = ['architecture', 'answer prefill', 'step, ms', *(f'{p}, ms' for p in PHASES),
              'decode steps']
    rows = [[r['arch'], _prefill(on), _ms(r['split'][on]['step']),
             *(_ms(r['split'][on][p]) for p in PHASES), f'{r["split"][on]["decode_steps"]:.0f}']
            for r in results for on in (False, True)]
    return _table(header, rows)


def extrapolated(r: dict[str, Any], on: bool) -> dict[str, float]:
    """Full-depth phases from a truncated run: each layer's mean time times the full count."""
    s = r['split'][on]
    (text, vision), (full_text, full_vision) = r['depths'], r['full_depths']
    out = {'vision': s['vision'] + s['blocks'] * (full_vision / vision - 1),
           'prefill': s['prefill'] + s['layers_prefill'] * (full_text / text - 1),
           'decode': s['decode'] + s['layers_decode'] * (full_text / text - 1)}
    out['step'] = s['step'] + sum(out[p] - s[p] for p in ('vision', 'prefill', 'decode'))
    return out


def extrapolation_table(results: list[dict[str, Any]]) -> list[str]:
    header = ['architecture', 'answer prefill', 'per vision block, ms',
              'per decoder layer: prefill / all decode steps, ms', 'vision, ms', 'prefill, ms',
              'decode, ms', 'step, ms']
    rows = []
    for r in results:
        text, vision = r['depths']
        for on in (False, True):
            s, x = r['split'][on], extrapolated(r, on)
            rows.append([r['arch'], _prefill(on), f'{s["blocks"] / vision * 1e3:.0f}',
                         f'{s["layers_prefill"] / text * 1e3:.0f} / '
                         f'{s["layers_decode"] / text * 1e3:.0f}',
                         *(_ms(x[p]) for p in ('vision', 'prefill', 'decode', 'step'))])
    return _table(header, rows)


def report(args: argparse.Namespace, command: str, results: list[dict[str, Any]],
           wall_s: float, today: datetime.date, load: tuple[float, float]) -> str:
    cuda = args.device.startswith('cuda')
    truncated = any(r['truncated'] for r in results)
    model = ('tiny random models (smoke run: the figures say nothing about real sizes)'
             if args.tiny else 'random weights of the real configurations'
             + (', depth **truncated** (every per-layer shape real)' if truncated else
                ', full depth'))
    lines = [
        '# Real dimensions: memory, tokens and a fused step', '',
        f'Command: `{command}`', '',
        f'Device: {results[0]["device"]} ({args.device}); {os.cpu_count()} CPUs '
        f'({platform.machine()}), torch {torch.__version__} with {args.threads} thread(s), '
        f'transformers {transformers.__version__}, Python {platform.python_version()}, '
        f'{today}; whole run {wall_s / 60:.1f} min; load average {load[0]:.1f} at the start, '
        f'{load[1]:.1f} at the end (a shared machine: other work inflates the times).', '',
        f'Model: {model}, {args.dtype}. Demo episode, 3 cameras upscaled to 640x480; '
        f'{args.warmup} fused step(s) of warm-up, then {args.steps} fused step(s) with and '
        f'{args.steps} without answer prefill, alternating (medians).', '',
        '## Memory against the sizing', '', *memory_table(results, cuda), '',
        *memory_lines(results), '',
        '## Tokens', '', *token_table(results), '',
        '## A fused step (three queries, vision cache on)', '', *split_table(results), '',
        'Phases as in `step_cost.md`: vision = the tower on the images not cached; prefill = '
        'the first forward over the prompts; decode = the later forwards; processor = image '
        'preprocessing and tokenisation; generate_loop = the rest of `generate`; ours = the '
        'rest of the step.', '',
    ]
    if truncated and not args.tiny:
        lines += ['## Full depth, **extrapolated** (not measured)', '',
                  'Each phase plus its mean per-layer time times the layers the truncated '
                  'model lacks (36 decoder layers; 32 or 24 vision blocks); what is not a layer '
                  '(embeddings, the LM head, the patch embedding and mergers) is measured and '
                  'kept. Linear in depth by construction; memory traffic and caches of a deeper '
                  'model are not modelled.', '', *extrapolation_table(results), '']
    return '\n'.join(lines) + '\n' + NOTES
