#!/usr/bin/env python3
"""Does the demo GRM's confidence pick out its wrong-sign readings? AUROC on held-out episodes.

Each held-out synthetic episode (seeds below 10 000; see ``eval_demo_grm.py``) is scored through
the product path with ``confidence`` on, incremental readings in time order and time-reversed
(``initial_progress=1``), so both signs occur. For every pair whose ground-truth progress
changes by more than 2 %, a reading is a sign error when its hop does not have the ground
truth's sign. Two uncertainty scores are ranked against the errors: the distribution's
``spread`` (standard deviation of the hop) and the sign uncertainty ``1 - |2 p_positive - 1|``.
AUROC 0.5 is chance; 1.0 means every error is less confident than every correct reading.

    python scripts/confidence_auroc.py robo_dopamine_ros/models/demo_grm --episodes 8
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from robo_dopamine_ros.backends.architectures import backend_profile  # noqa: E402
from robo_dopamine_ros.backends.transformers_backend import TransformersBackend  # noqa: E402
from robo_dopamine_ros.backends.transformers_config import TransformersConfig  # noqa: E402
from robo_dopamine_ros.core.types import Mode  # noqa: E402
from robo_dopamine_ros.evaluation import metrics  # noqa: E402


def _eval_module():
    spec = importlib.util.spec_from_file_location('eval_demo_grm', ROOT / 'scripts' /
                                                  'eval_demo_grm.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('model', type=Path)
    ap.add_argument('--episodes', type=int, default=8)
    ap.add_argument('--interval', type=int, default=3)
    args = ap.parse_args()
    ev = _eval_module()
    profile = backend_profile('transformers', str(args.model))
    backend = TransformersBackend(TransformersConfig(
        model=str(args.model), device='cpu', pixel_limits=profile.pixel_limits,
        confidence=True))
    t0 = time.perf_counter()
    rows: list[tuple[bool, float, float]] = []        # (sign error, spread, sign uncertainty)
    for ep in ev.heldout_episodes(args.episodes):
        n = len(ep)
        idx = list(range(0, n, args.interval))
        idx += [] if idx[-1] == n - 1 else [n - 1]
        gt = [ep.progress[i] for i in idx]
        for order, reverse in ((idx, False), (idx[::-1], True)):
            truth = gt if not reverse else gt[::-1]
            res = ev.run_pass(backend, profile, ep, order, (Mode.INCREMENTAL,),
                              reverse=reverse)[1:]
            for k, r in enumerate(res):
                d = truth[k + 1] - truth[k]
                score = r.reading(Mode.INCREMENTAL).score
                if abs(d) <= 0.02 or score.distribution is None:
                    continue
                dist = score.distribution
                wrong = not (score.hop is not None and score.hop * d > 0)
                rows.append((wrong, dist.spread, 1 - abs(2 * dist.p_positive - 1)))
    backend.close()
    errors = [r for r in rows if r[0]]
    right = [r for r in rows if not r[0]]
    print(f'model {args.model.name}: {len(rows)} readings with a ground-truth sign, '
          f'{len(errors)} sign errors ({time.perf_counter() - t0:.0f} s)')
    for name, col in (('spread', 1), ('sign uncertainty', 2)):
        auc = metrics.auc([r[col] for r in errors], [r[col] for r in right])
        mean_e = metrics.mean([r[col] for r in errors])
        mean_r = metrics.mean([r[col] for r in right])
        print(f'  AUROC of {name} for sign errors: '
              f'{"n/a" if auc is None else f"{auc:.3f}"} (mean {mean_e:.3f} on errors, '
              f'{mean_r:.3f} on correct)')


if __name__ == '__main__':
    main()
