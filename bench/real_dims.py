"""Benchmark: a fused step of the real GRM dimensions, memory, tokens and time, CPU or GPU.

Question answered: at the real model sizes (GRM-3B = Qwen2.5-VL-3B; GRM-2.0-4B assumed to be
Qwen3-VL-4B, ``real_dimensions_config``), does the memory match what the memory cap's sizing
(``backends/weights_size.py``) predicts, how many tokens do a 640x480 view and a query cost
against the checkpoint profile, and how does a fused step (three queries, vision cache on, the
product default) split into vision tower / prefill / decode, with and without answer prefill?

Random weights (``random_grm.py``: built on the device from ``config.json``, never written; the
directory's ``model.safetensors`` is header-only, so the sizing reads it as a real checkpoint).
They never write an answer, so a test double (:class:`ForcedAnswer`) forces the tokens of
``<score>+37.0%</score>`` over the model's logits: every forward runs in full and the real stop
criteria end the answer where the real GRM's would (10 new tokens; 6 after the prefilled
``<score``), so decode counts the real number of steps. Frames: the demo episode's three cameras
upscaled to 640x480, the size of a robot camera.

On a CPU the full depth does not fit a time box: ``--text-layers``/``--vision-depth`` truncate
it, keeping every per-layer shape (``truncated_config``). Then each decoder layer and vision
block is timed too, and the full depth is **extrapolated** linearly: the measured phase, plus the
mean per-layer time times the missing layers.

Usage: ``. scripts/env.sh && python bench/real_dims.py --device cpu --text-layers 4
--vision-depth 8`` (CPU, truncated; `bench/results/real_dims.md`); ``bash bench/gpu.sh`` on a GPU
(full depth). ``--tiny`` runs the same path on the tiny models (the smoke test). Each
architecture runs in a process of its own, so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from random_grm import RandomInitBackend, depths, random_grm_dir, sizing_gib, truncated_config
from real_dims_report import report
from step_cost import Chain, Clock, demo_frames, instrument

from robo_dopamine_ros.backends.prefill import head_ids
from robo_dopamine_ros.backends.transformers_config import TransformersConfig
from robo_dopamine_ros.backends.weights_size import weights_bytes
from robo_dopamine_ros.core.images import visual_tokens
from robo_dopamine_ros.core.profiles import GRM_2_4B, GRM_3B, SUPPORTED_ARCHITECTURES, VGA
from robo_dopamine_ros.core.types import ALL_MODES, Mode, Query

RESULTS = Path(__file__).resolve().parent / 'results' / 'real_dims.md'
PROFILES = {'qwen2_5_vl': GRM_3B, 'qwen3_vl': GRM_2_4B}
ANSWER = '<score>+37.0%</score>'
DTYPES = {'bfloat16': torch.bfloat16, 'float32': torch.float32}


def memory() -> dict[str, float]:
    """This process's resident and peak resident memory (``VmRSS``, ``VmHWM``), in bytes.

    Sandboxed kernels (gVisor on some GPU machines) may lack a field: the peak then falls back
    to ``ru_maxrss``, the resident size to ``statm``.
    """
    status = Path('/proc/self/status').read_text().splitlines()
    fields = dict(line.split(':', 1) for line in status if ':' in line)
    found = {k: float(fields[k].split()[0]) * 1024 for k in ('VmRSS', 'VmHWM') if k in fields}
    if 'VmRSS' not in found:
        pages = int(Path('/proc/self/statm').read_text().split()[1])
        found['VmRSS'] = float(pages * os.sysconf('SC_PAGE_SIZE'))
    if 'VmHWM' not in found:
        found['VmHWM'] = float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return found


def reset_peak() -> None:
    """Restart ``VmHWM`` from the current RSS (Linux ``clear_refs`` 5; where the kernel does not
    allow it, the peak stays the process's own since its start)."""
    with contextlib.suppress(OSError):
        Path('/proc/self/clear_refs').write_text('5')


class ForcedAnswer:
    """Test double: a logits processor that makes greedy decoding write ``ids``, in order.

    The model's forward runs in full; only its choice is replaced, so decoding costs what the
    real model's does and the backend's own stop criteria end the answer.
    """

    def __init__(self, ids: list[int], prompt_len: int) -> None:
        self.ids, self.prompt_len = ids, prompt_len

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        step = min(input_ids.shape[1] - self.prompt_len, len(self.ids) - 1)
        forced = torch.full_like(scores, float('-inf'))
        forced[:, self.ids[step]] = 0.0
        return forced


def force_answer(backend: RandomInitBackend, text: str) -> None:
    """Make every ``generate`` of ``backend`` write ``text`` (after the head when prefilled)."""
    from transformers import LogitsProcessorList

    tokenizer = backend.processor.tokenizer
    answer, head = tokenizer.encode(text, add_special_tokens=False), head_ids(tokenizer)
    generate = backend.model.generate

    def forced(*args: Any, **kwargs: Any) -> Any:
        ids = kwargs['input_ids']
        prefilled = ids[0, -len(head):].tolist() == head
        tail = answer[len(head):] if prefilled else answer
        kwargs['logits_processor'] = LogitsProcessorList([ForcedAnswer(tail, ids.shape[1])])
        return generate(*args, **kwargs)

    backend.model.generate = forced


def time_layers(backend: RandomInitBackend, clock: Clock) -> None:
    """Add each decoder layer's time to ``layers_prefill``/``layers_decode`` and each vision
    block's to ``blocks`` (what the full-depth extrapolation scales)."""
    started: dict[int, tuple[str, float]] = {}

    def hook(phase: str | None) -> tuple[Any, Any]:
        def before(module: Any, args: tuple, kwargs: dict) -> None:
            name = phase
            if name is None:
                hidden = args[0] if args else kwargs['hidden_states']
                name = 'layers_prefill' if hidden.shape[1] > 1 else 'layers_decode'
            clock.sync()
            started[id(module)] = (name, time.perf_counter())

        def after(module: Any, args: tuple, kwargs: dict, output: Any) -> None:
            clock.sync()
            name, t0 = started.pop(id(module))
            clock.add(name, time.perf_counter() - t0)
        return before, after

    inner = backend.model.model
    for modules, phase in ((inner.language_model.layers, None), (inner.visual.blocks, 'blocks')):
        for module in modules:
            before, after = hook(phase)
            module.register_forward_pre_hook(before, with_kwargs=True)
            module.register_forward_hook(after, with_kwargs=True)


class MeasuredBackend(RandomInitBackend):
    """Records the memory before and after the model's construction (host RSS, or allocated GPU
    memory): the processor, loaded before the model, is not counted."""

    def _load_model(self, source: str) -> Any:
        self.before_model = self.used()
        model = super()._load_model(source)
        self.model_bytes = self.used() - self.before_model
        return model

    def used(self) -> float:
        """Bytes in use now: allocated on the GPU, or this process's RSS."""
        if self.device.startswith('cuda'):
            torch.cuda.synchronize(self.device)
            return float(torch.cuda.memory_allocated(self.device))
        return memory()['VmRSS']


def vga(frame: np.ndarray) -> np.ndarray:
    """A demo frame at a robot camera's 640x480."""
    return np.asarray(Image.fromarray(frame).resize(VGA[::-1], Image.Resampling.BILINEAR))


def measure_arch(opts: argparse.Namespace, arch: str, path: Path) -> dict[str, Any]:
    """Every measured figure of one architecture's model directory (in a process of its own,
    which built nothing before: its memory growth is the model's)."""
    torch.set_num_threads(opts.threads)
    cuda = opts.device.startswith('cuda')
    sync = (lambda: torch.cuda.synchronize(opts.device)) if cuda else (lambda: None)
    profile = PROFILES[arch]
    backend = MeasuredBackend(TransformersConfig(model=str(path), device=opts.device,
                                                 dtype=opts.dtype,
                                                 pixel_limits=profile.pixel_limits))
    layers = depths(backend.model.config.to_dict())
    truncated = layers != depths(truncated_config(arch))
    clock = Clock(sync)
    instrument(backend, clock)
    if truncated:
        time_layers(backend, clock)
    force_answer(backend, ANSWER)
    goal, frames = demo_frames(opts.warmup + 2 * opts.steps)
    chain = Chain(backend, clock, ALL_MODES, vga(goal))
    rows: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    prompts: dict[bool, list[float]] = {}
    answers: set[str] = set()
    settled = 0.0
    for i, step_frames in enumerate(frames):
        prefill = i % 2 == 0        # warm-up too: the early stop is built on first use
        backend.set_prefill(prefill)
        row = chain.step(i, [vga(f) for f in step_frames])
        if i == opts.warmup:        # what stays after warm-up; peaks from here on
            settled = backend.used()
            if cuda:
                torch.cuda.reset_peak_memory_stats(opts.device)
            reset_peak()
        if row is None or i <= opts.warmup:
            continue
        row['decode_steps'] = float(clock.calls.get('decode', 0))
        row.update({k: clock.totals.get(k, 0.0)
                    for k in ('layers_prefill', 'layers_decode', 'blocks')})
        rows[prefill].append(row)
        prompts[prefill] = [a.meta['prompt_tokens'] for a in chain.answers]
        answers.update(a.text for a in chain.answers)
    peak = (torch.cuda.max_memory_allocated(opts.device) if cuda else memory()['VmHWM'])
    query = _query(chain)
    ids = backend.build_inputs([query])['input_ids'][0]
    image_pad = backend.processor.tokenizer.convert_tokens_to_ids('<|image_pad|>')
    text = backend.model.config.get_text_config()
    head_dim = getattr(text, 'head_dim', None) or text.hidden_size // text.num_attention_heads
    result = {
        'kv_bytes': 2 * text.num_key_value_heads * head_dim * backend.dtype.itemsize,
        'arch': arch, 'profile': profile.name, 'depths': layers,
        'full_depths': depths(truncated_config(arch)), 'truncated': truncated,
        'tensor_gib': _tensor_bytes(backend.model) / 2**30,
        'model_gib': backend.model_bytes / 2**30,
        'settled_gib': (settled - backend.before_model) / 2**30,
        'peak_gib': (peak - backend.before_model) / 2**30,
        'view_tokens': int((ids == image_pad).sum()) // len(query.images),
        'profile_view_tokens': visual_tokens(*VGA, profile.pixel_limits),
        'prompt_tokens': prompts, 'answers': sorted(answers),
        'split': {on: _medians(r) for on, r in rows.items()},
        'device': torch.cuda.get_device_name(opts.device) if cuda else _cpu_name(),
    }
    backend.close()
    return result


def _tensor_bytes(model: Any) -> int:
    """Bytes of the model's distinct parameters and buffers (tied ones once)."""
    seen = {t.data_ptr(): t.numel() * t.element_size()
            for t in (*model.parameters(), *model.buffers())}
    return sum(seen.values())


def _cpu_name() -> str:
    for line in Path('/proc/cpuinfo').read_text().splitlines():
        if line.startswith('model name'):
            return line.split(':', 1)[1].strip()
    return platform.machine()


def _query(chain: Chain) -> Query:
    """A forward query of the chain's current views (for counting its tokens)."""
    return Query('organize the table', (chain.first[0], chain.goal, *chain.first, *chain.prev),
                 Mode.FORWARD)


def _medians(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in rows) for k in rows[0]}


def command_line() -> str:
    """The command as run, with the ``flock`` that serialises benchmarks if one wraps it."""
    ours = ' '.join(['python', 'bench/real_dims.py', *sys.argv[1:]])
    parent = Path(f'/proc/{os.getppid()}/cmdline').read_bytes().decode().split('\0')
    if Path(parent[0]).name == 'flock' and len(parent) > 1:
        return f'flock {parent[1]} {ours}'
    return ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--arch', action='append', choices=SUPPORTED_ARCHITECTURES)
    parser.add_argument('--text-layers', type=int, help='truncate the text model (default: all)')
    parser.add_argument('--vision-depth', type=int, help='truncate the tower (default: all)')
    parser.add_argument('--dtype', choices=sorted(DTYPES), default='bfloat16')
    parser.add_argument('--steps', type=int, default=1,
                        help='measured fused steps per prefill setting (median)')
    parser.add_argument('--warmup', type=int, default=2,
                        help='fused steps not measured (alternating prefill too)')
    parser.add_argument('--threads', type=int, default=2, help='torch CPU threads')
    parser.add_argument('--tiny', action='store_true', help='tiny models (checks the script)')
    parser.add_argument('--out', type=Path, default=RESULTS)
    args = parser.parse_args()
    t0, load = time.perf_counter(), os.getloadavg()[0]
    dtype = DTYPES[args.dtype]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.arch or SUPPORTED_ARCHITECTURES:
            path = random_grm_dir(Path(tmp), arch, tiny=args.tiny, text_layers=args.text_layers,
                                  vision_depth=args.vision_depth, dtype=dtype)
            spawn = multiprocessing.get_context('spawn')
            with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as pool:
                result = pool.submit(measure_arch, args, arch, path).result()
            result['sizing_gib'] = weights_bytes(path, dtype.itemsize) / 2**30
            result['full_sizing_gib'] = None if args.tiny else sizing_gib(arch, dtype, Path(tmp))
            results.append(result)
    command = command_line()
    text = report(args, command, results, time.perf_counter() - t0, datetime.date.today(),
                  (load, os.getloadavg()[0]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == '__main__':
    main()
