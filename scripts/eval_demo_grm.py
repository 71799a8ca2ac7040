#!/usr/bin/env python3
"""Evaluate a demo GRM on held-out synthetic episodes through the product path.

Every reading goes EpisodeEngine -> TransformersBackend with the checkpoint's profile (compact
prompt, 112x84 images). Held-out episodes use seeds below 10 000 (training uses 10 000 and up),
so layouts, colours, lighting and timing differ from training. Passes per episode (frames every
``--interval``, REF START = frame 0 front, REF END = the rendered goal image):

* ``shuffled``: forward + backward readings only, frames in a seeded random order, the curve
  put back in time order (as ``evaluation.protocol``): VOC against the ground truth's time order
  is meaningful only for monotone episodes, so it is reported on success episodes, and the
  Spearman correlation with the ground-truth progress on all episodes.
* ``fused``: all three readings, paper fusion, time order (what the node publishes).
* ``incremental`` forward chain and time-reversed chain (``initial_progress=1``): hop-sign
  accuracy against the ground-truth sign of each pair whose progress changes by > 2 %.
* success/failure discrimination: AUC of the final fused progress, success vs. the rest.
* parse failures: readings that are not a well-formed ``<score>``.

A constant answer gives a flat shuffled curve (VOC 0), ~50 % sign accuracy (it is right on one
direction only) and AUC 0.5; ``--constant +10`` runs that baseline through the same engine.

    python scripts/eval_demo_grm.py robo_dopamine_ros/models/demo_grm --episodes 40
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from robo_dopamine_ros.backends.architectures import backend_profile  # noqa: E402
from robo_dopamine_ros.core.engine import EngineConfig, EpisodeEngine, Sample  # noqa: E402
from robo_dopamine_ros.core.names import CAMERAS  # noqa: E402
from robo_dopamine_ros.core.parsing import ParseStatus  # noqa: E402
from robo_dopamine_ros.core.progress import FusionConfig  # noqa: E402
from robo_dopamine_ros.core.types import Answer, Mode  # noqa: E402
from robo_dopamine_ros.evaluation import metrics  # noqa: E402
from robo_dopamine_ros.synthetic.episode import render_episode  # noqa: E402
from robo_dopamine_ros.synthetic.spec import EpisodeSpec, Outcome  # noqa: E402

OUTCOMES = (Outcome.SUCCESS, Outcome.FAIL, Outcome.STALL, Outcome.REGRESS)
ANCHORED = (Mode.FORWARD, Mode.BACKWARD)
SEC = 1_000_000_000


class ConstantBackend:
    """Answers every query with the same text (the by-construction bad baseline)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.model_id = f'constant {text}'

    def generate(self, queries):
        return [Answer(self.text) for _ in queries]

    def request_stop(self) -> None:
        pass

    def cancel(self) -> None:
        pass

    def close(self) -> None:
        pass


def heldout_episodes(count: int, seed0: int = 0, num_frames: int = 30):
    return [render_episode(EpisodeSpec(seed=seed0 + k, num_frames=num_frames,
                                       outcome=OUTCOMES[k % len(OUTCOMES)]))
            for k in range(count)]


def _sample(ep, i: int, pos: int) -> Sample:
    return Sample(pos * SEC, *(ep.frames[c][i] for c in CAMERAS))


def run_pass(backend, profile, ep, order, modes, *, reverse: bool = False):
    engine = EpisodeEngine(backend, EngineConfig(fusion=FusionConfig(modes=modes)), profile)
    extra = {'ref_start': ep.frames['front'][0], 'initial_progress': 1.0} if reverse else {}
    engine.start(ep.task, ep.goal, **extra)
    return [engine.step(_sample(ep, i, pos)) for pos, i in enumerate(order)]


def evaluate(backend, profile, episodes, interval: int = 3, seed: int = 0,
             passes: tuple[str, ...] = ('shuffled', 'fused', 'signs')) -> dict[str, Any]:
    """Metrics over ``episodes`` (see the module docstring)."""
    per: list[dict[str, Any]] = []
    statuses: list[int] = []
    for ep in episodes:
        n = len(ep)
        idx = list(range(0, n, interval))
        if idx[-1] != n - 1:
            idx.append(n - 1)
        gt = [ep.progress[i] for i in idx]
        rec: dict[str, Any] = {'seed': ep.spec.seed, 'outcome': Outcome(ep.spec.outcome).value}
        readings = []
        if 'shuffled' in passes:
            rest = idx[1:]
            random.Random(f'{seed}:{ep.spec.seed}').shuffle(rest)
            res = run_pass(backend, profile, ep, [idx[0], *rest], ANCHORED)[1:]
            prog = dict(zip(rest, (r.progress for r in res), strict=True))
            curve = [prog[i] for i in idx[1:]]
            rec['shuffled_voc'] = metrics.voc(curve)
            rec['shuffled_rho_gt'] = metrics.spearman(curve, gt[1:])
            rec['shuffled_mae'] = float(np.mean(np.abs(np.subtract(curve, gt[1:]))))
            readings += res
        if 'fused' in passes:
            res = run_pass(backend, profile, ep, idx, tuple(Mode))[1:]
            curve = [r.progress for r in res]
            rec['fused_voc'] = metrics.voc(curve)
            rec['fused_rho_gt'] = metrics.spearman(curve, gt[1:])
            rec['final'] = curve[-1]
            readings += res
        if 'signs' in passes:
            fwd = run_pass(backend, profile, ep, idx, (Mode.INCREMENTAL,))[1:]
            rev = run_pass(backend, profile, ep, idx[::-1], (Mode.INCREMENTAL,), reverse=True)[1:]
            ok = tot = 0
            for k, r in enumerate(fwd):
                d = gt[k + 1] - gt[k]
                if abs(d) > 0.02:
                    hop = r.reading(Mode.INCREMENTAL).score.hop
                    tot += 1
                    ok += hop is not None and hop * d > 0
            rec['sign_fwd'] = (ok, tot)
            ok = tot = 0
            for k, r in enumerate(rev):            # pair (idx[-1-k] -> idx[-2-k])
                d = gt[-2 - k] - gt[-1 - k]
                if abs(d) > 0.02:
                    hop = r.reading(Mode.INCREMENTAL).score.hop
                    tot += 1
                    ok += hop is not None and hop * d > 0
            rec['sign_rev'] = (ok, tot)
            readings += fwd + rev
        for r in readings:
            for m in r.readings:
                if m.score.status is not ParseStatus.SKIPPED:
                    statuses.append(int(m.score.status))
        per.append(rec)

    def mean_of(key: str, where=lambda r: True) -> float | None:
        return metrics.mean([r[key] for r in per if key in r and where(r)])

    def ratio_of(key: str) -> float | None:
        ok = sum(r[key][0] for r in per if key in r)
        return metrics.ratio(ok, sum(r[key][1] for r in per if key in r))

    success = lambda r: r['outcome'] == 'success'  # noqa: E731
    finals = {o.value: metrics.mean([r['final'] for r in per
                                     if r['outcome'] == o.value and 'final' in r])
              for o in OUTCOMES}
    return {
        'episodes': len(per),
        'shuffled_voc_success': mean_of('shuffled_voc', success),
        'shuffled_rho_gt_all': mean_of('shuffled_rho_gt'),
        'shuffled_mae_all': mean_of('shuffled_mae'),
        'fused_voc_success': mean_of('fused_voc', success),
        'fused_rho_gt_all': mean_of('fused_rho_gt'),
        'sign_acc_forward': ratio_of('sign_fwd'),
        'sign_acc_reversed': ratio_of('sign_rev'),
        'success_auc': metrics.auc([r['final'] for r in per if 'final' in r and success(r)],
                            [r['final'] for r in per if 'final' in r and not success(r)]),
        'final_progress_by_outcome': finals,
        'readings': len(statuses),
        'parse_fail_rate': (sum(s == int(ParseStatus.FAILED) for s in statuses) / len(statuses)
                            if statuses else None),
        'lenient_rate': (sum(s == int(ParseStatus.LENIENT) for s in statuses) / len(statuses)
                         if statuses else None),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('model', nargs='?', default=str(ROOT / 'robo_dopamine_ros/models/demo_grm'))
    ap.add_argument('--episodes', type=int, default=40)
    ap.add_argument('--seed0', type=int, default=0)
    ap.add_argument('--interval', type=int, default=3)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--constant', default=None, help="baseline: answer '<score>VALUE%%</score>'")
    ap.add_argument('--json', type=Path, default=None)
    args = ap.parse_args()
    import torch
    torch.set_num_threads(args.threads)
    profile = backend_profile('transformers', args.model)
    if args.constant is not None:
        backend = ConstantBackend(f'<score>{args.constant}%</score>')
    else:
        from robo_dopamine_ros.backends.transformers_backend import TransformersBackend
        from robo_dopamine_ros.backends.transformers_config import TransformersConfig
        backend = TransformersBackend(TransformersConfig(model=args.model, device='cpu',
                                                         pixel_limits=profile.pixel_limits))
    t0 = time.time()
    eps = heldout_episodes(args.episodes, args.seed0)
    result = evaluate(backend, profile, eps, args.interval)
    result['model'] = backend.model_id
    result['profile'] = profile.name
    result['seconds'] = round(time.time() - t0, 1)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + '\n')


if __name__ == '__main__':
    main()
