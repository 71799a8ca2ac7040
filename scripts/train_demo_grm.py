#!/usr/bin/env python3
"""Train the small demo GRM (robo_dopamine_ros/models/demo_grm) on synthetic episodes, on a CPU.

Reproducible recipe (not run in CI):

1. Build a tiny random GRM of the chosen architecture (``--arch``: ``qwen2_5_vl`` gives
   ``Qwen2_5_VLForConditionalGeneration``, the committed ``models/demo_grm``; ``qwen3_vl`` gives
   ``Qwen3VLForConditionalGeneration``, ``models/demo_grm_qwen3``) with the synthetic ~1k BPE
   (``models.tiny_grm.build_tiny_grm``) and its demo profile's geometry (12 visual tokens per
   image: 112x84 at factor 28, 128x96 at factor 32).
2. Render synthetic episodes (``synthetic.episode.render_episode``: success / fail / stall /
   regress, progress visible only through gripper and block) and resize every frame with
   ``core.images.prepare`` and the profile's limits, exactly as the engine does at inference.
3. Stage ``vision``: the vision tower (+ merger) with a linear probe on its mean-pooled output
   learns each image's ground-truth progress (an auxiliary target; the probe is not saved).
4. Stage ``anchored``: full model, answer-only CE (``training.dataset`` conventions: labels
   -100 up to and including the assistant header) on forward (BEFORE = START) and backward
   (BEFORE = goal in all 3 slots) queries, built with the engine's slot layout and the compact
   prompt, plus the auxiliary progress loss.
5. Stage ``mixed``: adds incremental pairs (both time directions, zero pairs).

Labels follow the hop (docs/upstream.md §5.1) on the ground-truth progress ``p``:
``(pa-pb)/(1-pb)`` when AFTER is ahead, ``(pa-pb)/pb`` when behind, quantised to 10 % steps
(``<score>+30.0%</score>``); a hop of at least 3 % keeps its sign (>= 10 %), so a small real
change is never taught as 0.

    . scripts/env.sh && nohup python scripts/train_demo_grm.py --out out/demo_grm_train \
        > out/demo_grm_train.log 2>&1 &
    # the Qwen3-VL demo GRM: add --arch qwen3_vl --out out/demo_grm_qwen3_train

The stage budgets default to wall-clock minutes (the recipe the committed models were trained
with, on a quiet core). On a shared machine give steps instead, which make the same model
however loaded it is: about ``--anchored-steps 3200 --mixed-steps 4700`` (Qwen2.5-VL) and
``--anchored-steps 2400 --mixed-steps 3800`` (Qwen3-VL) match 14 and 22 minutes of one core
(0.27 and 0.35 CPU s per step measured; ``cpu`` in the log is the process's CPU time).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from robo_dopamine_ros.backends.architectures import model_class  # noqa: E402
from robo_dopamine_ros.backends.processor import load_processor  # noqa: E402
from robo_dopamine_ros.core.images import prepare  # noqa: E402
from robo_dopamine_ros.core.names import CAMERAS  # noqa: E402
from robo_dopamine_ros.core.profiles import DEMO_GRM, DEMO_GRM_QWEN3, CheckpointProfile  # noqa: E402
from robo_dopamine_ros.core.prompt import NUM_IMAGES, chat_messages  # noqa: E402
from robo_dopamine_ros.synthetic.episode import render_episode  # noqa: E402
from robo_dopamine_ros.synthetic.spec import EpisodeSpec, Outcome  # noqa: E402
from robo_dopamine_ros.training.dataset import ANSWER_END, ASSISTANT_HEADER, IGNORE_INDEX, Collator  # noqa: E402
from robo_dopamine_ros.training.finetune import save_checkpoint  # noqa: E402

PROFILES = {'qwen2_5_vl': DEMO_GRM, 'qwen3_vl': DEMO_GRM_QWEN3}
OUTCOMES = (Outcome.SUCCESS, Outcome.SUCCESS, Outcome.FAIL, Outcome.STALL, Outcome.REGRESS)
TRAIN_SEED0 = 10_000      # held-out evaluation uses seeds < 10_000 (see eval_demo_grm.py)
MODEL_DIMS = dict(text_hidden=64, layers=3, heads=2, kv_heads=1, intermediate=256,
                  vision_hidden=128, vision_depth=2, vision_heads=4)


def hop_of(pb: float, pa: float) -> float:
    """The hop (docs/upstream.md §5.1) from progress ``pb`` to ``pa``, in [-1, 1]."""
    if abs(pa - pb) < 1e-9:
        return 0.0
    if pa > pb:
        return (pa - pb) / max(1.0 - pb, 1e-6)
    return (pa - pb) / max(pb, 1e-6)


def coarse(hop: float, step: float = 0.1, keep_sign: float = 0.03) -> float:
    """Quantise to ``step``; a hop of at least ``keep_sign`` stays at least one step."""
    q = round(hop / step) * step
    if q == 0.0 and abs(hop) >= keep_sign:
        q = math.copysign(step, hop)
    return max(-1.0, min(1.0, q))


def answer(hop: float) -> str:
    return f'<score>{hop * 100:+.1f}%</score>'


class Episodes:
    """Rendered, engine-resized episodes kept in memory (uint8)."""

    def __init__(self, seeds: list[int], num_frames: int, profile: CheckpointProfile) -> None:
        limits = profile.pixel_limits
        self.items = []
        for k, seed in enumerate(seeds):
            ep = render_episode(EpisodeSpec(seed=seed, num_frames=num_frames,
                                            outcome=OUTCOMES[k % len(OUTCOMES)]))
            frames = np.stack([np.stack([prepare(ep.frames[c][i], limits) for c in CAMERAS])
                               for i in range(num_frames)])           # (n, 3, h, w, 3)
            self.items.append({'task': ep.task, 'frames': frames,
                               'progress': np.asarray(ep.progress, dtype=np.float32),
                               'goal': prepare(ep.goal, limits)})

    def __len__(self) -> int:
        return len(self.items)


def make_query(ep: dict, kind: str, rng: random.Random) -> tuple[list[np.ndarray], float, list]:
    """8 slot images (engine layout), the hop label, and per-slot progress (aux targets)."""
    fr, pr, goal = ep['frames'], ep['progress'], ep['goal']
    n = len(pr)
    start_front = fr[0, 0]
    a = rng.randrange(n)
    if kind == 'forward':
        before, pb, bp = list(fr[0]), 0.0, [0.0] * 3
    elif kind == 'backward':
        before, pb, bp = [goal] * 3, 1.0, [1.0, math.nan, math.nan]
    else:
        if rng.random() < 0.1:                      # a zero pair: (almost) the same state
            b = min(n - 1, max(0, a + rng.choice((-1, 0, 1))))
        else:
            b = rng.randrange(n)
        before, pb = list(fr[b]), float(pr[b])
        bp = [pb] * 3
    pa = float(pr[a])
    hop = hop_of(pb, pa)
    if kind == 'incremental' and abs(pa - pb) < 0.01:
        hop = 0.0
    images = [start_front, goal, *before, *fr[a]]
    targets = [0.0, 1.0, *bp, pa, pa, pa]
    return images, coarse(hop), targets


class Batcher:
    def __init__(self, processor, profile: CheckpointProfile) -> None:
        self.processor = processor
        self.profile = profile
        tok = processor.tokenizer
        self.im_start = tok.convert_tokens_to_ids('<|im_start|>')
        self.header_len = len(tok(ASSISTANT_HEADER, add_special_tokens=False).input_ids)
        self.collate = Collator(tok.pad_token_id)
        self.prompts: dict[str, str] = {}

    def prompt(self, task: str) -> str:
        if task not in self.prompts:
            msgs = chat_messages(task, [None] * NUM_IMAGES, self.profile.prompt_variant)
            self.prompts[task] = self.processor.apply_chat_template(
                msgs, tokenize=False, add_generation_prompt=True)
        return self.prompts[task]

    def encode(self, task: str, images: list[np.ndarray], hop: float) -> dict:
        """One row as ``training.dataset.Encoder`` builds it: answer-only labels."""
        from PIL import Image
        text = self.prompt(task) + answer(hop) + ANSWER_END
        enc = self.processor(text=[text], images=[Image.fromarray(i) for i in images],
                             return_tensors='pt')
        row = {k: (v[0] if k in ('input_ids', 'attention_mask', 'mm_token_type_ids') else v)
               for k, v in enc.items()}
        ids = row['input_ids']
        start = int((ids == self.im_start).nonzero()[-1]) + self.header_len
        labels = ids.clone()
        labels[:start] = IGNORE_INDEX
        row['labels'] = labels
        return row


class VisualTap:
    """Captures the merged visual tokens (the vision tower's pooled output) for the aux loss."""

    def __init__(self, visual) -> None:
        self.out = None
        visual.register_forward_hook(self._hook)

    def _hook(self, module, args, output) -> None:
        self.out = output.pooler_output if hasattr(output, 'pooler_output') else output


def per_image_flat(tokens: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Each image's merged tokens, flattened (all images have the same 4x3 token grid)."""
    return tokens.reshape(len(grid), -1)


def aux_loss(probe, tap, grid, targets: torch.Tensor) -> torch.Tensor:
    pred = probe(per_image_flat(tap.out, grid)).squeeze(-1)
    ok = ~torch.isnan(targets)
    return torch.nn.functional.mse_loss(pred[ok], targets[ok])


class Budget:
    """A training stage's length: wall-clock minutes (the original recipe), or a step count,
    which gives the same model however loaded the machine is."""

    def __init__(self, minutes: float, steps: int | None) -> None:
        self.minutes, self.steps = minutes, steps
        self.steps_done = 0
        self.t0 = time.time()

    def spent(self) -> float:
        """The fraction of the stage done, in [0, 1] (1 ends it)."""
        if self.steps is not None:
            return min(self.steps_done / max(self.steps, 1), 1.0)
        return min((time.time() - self.t0) / (self.minutes * 60), 1.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--arch', choices=sorted(PROFILES), default='qwen2_5_vl')
    ap.add_argument('--out', type=Path, default=ROOT / 'out' / 'demo_grm_train')
    ap.add_argument('--episodes', type=int, default=250)
    ap.add_argument('--frames', type=int, default=30)
    ap.add_argument('--vision-steps', type=int, default=1500)
    ap.add_argument('--anchored-minutes', type=float, default=14.0)
    ap.add_argument('--mixed-minutes', type=float, default=22.0)
    ap.add_argument('--anchored-steps', type=int, default=None,
                    help='train the anchored stage for this many steps instead of minutes '
                         '(the same model whatever else runs on the machine)')
    ap.add_argument('--mixed-steps', type=int, default=None,
                    help='the mixed stage in steps instead of minutes')
    ap.add_argument('--batch', type=int, default=8)
    ap.add_argument('--lr', type=float, default=2e-3)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--save-every', type=int, default=200)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    log = open(out / 'train_log.jsonl', 'a')  # noqa: SIM115  (open for the whole run)

    def note(**kw) -> None:
        kw['t'] = round(time.time() - t0, 1)
        kw['cpu'] = round(time.process_time(), 1)
        print(json.dumps(kw), flush=True)
        log.write(json.dumps(kw) + '\n')
        log.flush()

    t0 = time.time()
    from robo_dopamine_ros.models.tiny_grm import build_tiny_grm
    profile = PROFILES[args.arch]
    init = out / 'init'
    build_tiny_grm(init, vocab='synthetic', seed=args.seed, pixel_limits=profile.pixel_limits,
                   architecture=args.arch, **MODEL_DIMS)
    model = model_class(args.arch).from_pretrained(init, dtype=torch.float32)
    model.train()
    processor = load_processor(str(init), pixel_limits=profile.pixel_limits)
    note(stage='built', arch=args.arch, params=sum(p.numel() for p in model.parameters()))

    eps = Episodes([TRAIN_SEED0 + k for k in range(args.episodes)], args.frames, profile)
    note(stage='rendered', episodes=len(eps))

    visual = model.model.visual
    tap = VisualTap(visual)
    hidden = (model.config.text_config.hidden_size if hasattr(model.config, 'text_config')
              else model.config.hidden_size)
    h, w = eps.items[0]['goal'].shape[:2]
    factor = profile.pixel_limits.factor
    tokens = (h // factor) * (w // factor)      # merged tokens per image (12: a 4x3 grid)
    probe = torch.nn.Linear(hidden * tokens, 1)
    improc = processor.image_processor
    from PIL import Image

    # Stage 1: vision tower + probe on single images.
    opt = torch.optim.AdamW(list(visual.parameters()) + list(probe.parameters()), lr=args.lr)
    for step in range(args.vision_steps):
        imgs, tg = [], []
        for _ in range(32):
            ep = eps.items[rng.randrange(len(eps))]
            i = rng.randrange(len(ep['progress']))
            if rng.random() < 0.05:
                imgs.append(ep['goal'])
                tg.append(1.0)
            else:
                imgs.append(ep['frames'][i, rng.randrange(3)])
                tg.append(float(ep['progress'][i]))
        enc = improc(images=[Image.fromarray(x) for x in imgs], return_tensors='pt')
        visual(enc['pixel_values'], grid_thw=enc['image_grid_thw'])
        loss = aux_loss(probe, tap, enc['image_grid_thw'], torch.tensor(tg))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0:
            note(stage='vision', step=step, mse=round(loss.item(), 4))

    batcher = Batcher(processor, profile)
    params = list(model.parameters()) + list(probe.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)

    def save(tag: str) -> None:
        save_checkpoint(model, init, out / tag, torch.float32)
        model.to(torch.float32)

    step = 0
    for stage, budget, kinds in (
            ('anchored', Budget(args.anchored_minutes, args.anchored_steps),
             ('forward', 'backward')),
            ('mixed', Budget(args.mixed_minutes, args.mixed_steps),
             ('forward', 'backward', 'incremental', 'incremental'))):
        ce_avg = aux_avg = None
        while (frac := budget.spent()) < 1.0:
            rows, tgs = [], []
            for _ in range(args.batch):
                ep = eps.items[rng.randrange(len(eps))]
                images, hop, tg = make_query(ep, rng.choice(kinds), rng)
                rows.append(batcher.encode(ep['task'], images, hop))
                tgs.extend(tg)
            batch = batcher.collate(rows)
            lr = args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
            for g in opt.param_groups:
                g['lr'] = lr
            outp = model(**batch)
            aux = aux_loss(probe, tap, batch['image_grid_thw'], torch.tensor(tgs))
            loss = outp.loss + 0.5 * aux
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            ce = outp.loss.item()
            ce_avg = ce if ce_avg is None else 0.95 * ce_avg + 0.05 * ce
            aux_avg = aux.item() if aux_avg is None else 0.95 * aux_avg + 0.05 * aux.item()
            step += 1
            budget.steps_done += 1
            if step % 20 == 0:
                note(stage=stage, step=step, ce=round(ce_avg, 4), aux=round(aux_avg, 4),
                     lr=round(lr, 6))
            if step % args.save_every == 0:
                save('ckpt')
        save(f'after_{stage}')
    save('final')
    note(stage='done', step=step)


if __name__ == '__main__':
    main()
