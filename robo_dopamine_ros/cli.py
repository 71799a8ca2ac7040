"""The ``robo-dopamine`` command: argparse over library functions that raise; errors -> exit 1.

Imports stay light at module top (no numpy, torch or rclpy) so ``--help`` is instant and works on
a machine without ROS; each subcommand imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path


def _cmd_prompt(args: argparse.Namespace) -> int:
    from .core.prompt import render_prompt

    sys.stdout.write(render_prompt(args.task, args.variant))
    return 0


def _cmd_profiles(args: argparse.Namespace) -> int:
    from .core.profiles import PROFILES

    for p in PROFILES.values():
        print(f'{p.name:20s} {p.model_id or "(any other checkpoint)":50s} '
              f'single_view={p.single_view} goalless={p.goalless} '
              f'pixels={p.pixel_limits.min_pixels}..{p.pixel_limits.max_pixels}  {p.notes}')
    return 0


def _cmd_build_tiny_grm(args: argparse.Namespace) -> int:
    from .models.tiny_grm import build_tiny_grm

    path = build_tiny_grm(args.out_dir, vocab=args.vocab, seed=args.seed)
    print(f'tiny random-weight GRM written to {path}')
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .core.result import StepResult
    from .core.types import ALL_MODES
    from .demo import DemoOptions, run_demo

    if args.model is None:
        print('NOTE: no --model given: using a tiny RANDOM-WEIGHT GRM of the real architecture.\n'
              '      Its answers are noise, so steps are flagged invalid (that is the point of\n'
              '      the validity flags). Pass --model <GRM checkpoint dir> for real progress.')
    print(f'{"step":>4} {"t[s]":>6} {"progress":>8} {"reward":>8} {"valid":>5}  '
          f'{"I/F/B parse":18s} {"latency":>7}  reason')

    def show(r: StepResult) -> None:
        parse = '/'.join(r.reading(m).score.status.name.lower()[:6] for m in ALL_MODES)
        reward = f'{r.reward.reward:+.3f}' if r.reward else '-'
        print(f'{r.step:4d} {r.stamp_after_ns / 1e9:6.1f} {r.progress:8.3f} {reward:>8} '
              f'{"yes" if r.valid else "NO":>5}  {parse:18s} {r.latency_s:6.2f}s  {r.reason}')

    opts = DemoOptions(model=args.model, device=args.device, interval_s=args.interval,
                       max_steps=args.max_steps, out_dir=Path(args.out_dir))
    results = run_demo(opts, on_result=show)
    valid = sum(r.valid for r in results)
    print(f'{len(results)} samples scored ({valid} valid); results in '
          f'{opts.out_dir / "results.jsonl"}')
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, one subparser per subcommand."""
    parser = argparse.ArgumentParser(
        prog='robo-dopamine',
        description='Robo-Dopamine GRM process reward: offline tools and demo.')
    parser.add_argument('-v', '--verbose', action='store_true', help='debug logging')
    sub = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')

    demo = sub.add_parser('demo', help='score the bundled real robot episode with the engine')
    demo.add_argument('--model', default=None,
                      help='GRM checkpoint directory or cached hub id (default: build a tiny '
                           'random-weight GRM, offline)')
    demo.add_argument('--device', default='cpu', help="'cpu', 'cuda:0', ... (default: cpu)")
    demo.add_argument('--interval', type=float, default=2.0,
                      help='seconds between scored samples (default: %(default)s)')
    demo.add_argument('--max-steps', type=int, default=None, help='stop after N transitions')
    demo.add_argument('--out-dir', default='out/demo', help='where results.jsonl goes')
    demo.set_defaults(func=_cmd_demo)

    prompt = sub.add_parser('prompt', help='print the GRM prompt rendered for a task')
    prompt.add_argument('task', help='task instruction, e.g. "put the cup on the plate"')
    prompt.add_argument('--variant', default='inference', choices=('inference', 'training'),
                        help='template variant (default: %(default)s)')
    prompt.set_defaults(func=_cmd_prompt)

    profiles = sub.add_parser('profiles', help='list the known GRM checkpoint profiles')
    profiles.set_defaults(func=_cmd_profiles)

    tiny = sub.add_parser('build-tiny-grm',
                          help='write a tiny random-weight GRM (real class) for tests/demos')
    tiny.add_argument('out_dir')
    tiny.add_argument('--vocab', default='qwen', choices=('qwen', 'synthetic'))
    tiny.add_argument('--seed', type=int, default=0)
    tiny.set_defaults(func=_cmd_build_tiny_grm)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (1 on a ``GrmError``, printed as ERROR)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format='%(levelname)s %(name)s: %(message)s')
    from .core.errors import GrmError

    try:
        return int(args.func(args))
    except GrmError as err:
        print(f'ERROR: {err}', file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
