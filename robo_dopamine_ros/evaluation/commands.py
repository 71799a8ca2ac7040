"""The ``bench`` and ``bench-data`` subcommands; ``cli.build_parser`` registers them.

Module-level imports stay light (argparse and the backend names) so ``robo-dopamine --help``
stays instant; each command imports what it runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..backends.arguments import add_backend_arguments


def add_parsers(sub: Any) -> None:
    """Add ``bench`` and ``bench-data`` to the CLI's subparsers."""
    bench = sub.add_parser(
        'bench', help='evaluate a GRM on Robo-Dopamine-Bench: VOC+/VOC- in the upstream layout '
                      'plus fused/shuffled VOC, Kendall tau, hop-sign accuracy, failures, latency')
    bench.add_argument('--input-json-dir', type=Path, required=True, help="benchmark 'jsons/'")
    bench.add_argument('--base-dir', type=Path, required=True, help="benchmark 'images/'")
    bench.add_argument('--out-root-dir', type=Path, required=True,
                       help='output root; rerunning into it skips finished episodes')
    bench.add_argument('--datasets', nargs='+', default=None,
                       help='dataset names (default: every *.json in --input-json-dir)')
    bench.add_argument('--interval', type=int, default=30,
                       help='frames per sampled step, n // interval frames (default 30)')
    bench.add_argument('--batch-size', type=int, default=16,
                       help='queries per backend call, and episodes evaluated at once (16)')
    bench.add_argument('--no-extra', action='store_true',
                       help='only the upstream passes (voc+, voc-): skip fused and shuffled')
    bench.add_argument('--seed', type=int, default=0, help='shuffled-pass frame order seed')
    bench.add_argument('--no-progress', action='store_true', help='no progress bar')
    add_backend_arguments(bench, required=True,
                          upstream_help='numeric parity with upstream: its decoding, parsing '
                                        'and short-episode rules')
    bench.set_defaults(func=_cmd_bench)

    data = sub.add_parser('bench-data', help='write a small benchmark in the upstream layout '
                                             'from synthetic episodes (a worked example)')
    data.add_argument('out', type=Path, help='directory for jsons/ and images/')
    data.add_argument('--episodes', type=int, default=3, help='good episodes per dataset')
    data.add_argument('--frames', type=int, default=60, help='frames rendered per episode')
    data.add_argument('--size', type=int, nargs=2, default=(160, 120),
                      metavar=('WIDTH', 'HEIGHT'))
    data.add_argument('--seed', type=int, default=0)
    data.add_argument('--no-defects', action='store_true',
                      help='omit the front-only and short-wrist broken episodes')
    data.set_defaults(func=_cmd_bench_data)


def _cmd_bench(args: argparse.Namespace) -> int:
    from ..backends.arguments import backend_from_args
    from .runner import BenchConfig, run_benchmark

    backend, profile = backend_from_args(args)
    meta: dict[str, Any] = {}
    if args.backend == 'openai':
        cfg = backend.config  # type: ignore[attr-defined]
        meta = {'base_url': cfg.base_url, 'max_workers': cfg.max_workers,
                'max_retries': cfg.max_retries, 'retry_delay': cfg.retry_delay_s,
                'deadline': cfg.deadline}
    config = BenchConfig(
        args.input_json_dir, args.base_dir, args.out_root_dir, args.backend, backend.model_id,
        datasets=tuple(args.datasets) if args.datasets else None, interval=args.interval,
        batch_size=args.batch_size, upstream_sampling=args.upstream_sampling,
        extra_metrics=not args.no_extra, seed=args.seed, meta=meta,
        show_progress=not args.no_progress)
    try:
        summary = run_benchmark(config, backend, profile)
    finally:
        backend.close()
    print(f'{"dataset":32s} {"voc+":>7} {"voc-":>7} {"fused":>7} {"shuffled":>8} {"failed":>6}')
    for name, vocs in summary['summary'].items():
        extra = summary['extra'][name]
        print(f'{name:32s} {vocs["voc+"]:7.3f} {vocs["voc-"]:7.3f} '
              f'{_fmt(extra["voc_fused"]):>7} {_fmt(extra["voc_shuffled"]):>8} '
              f'{len(extra["failed_episodes"]):6d}')
    print(f'summary: {args.out_root_dir / "summary_voc.json"} ("summary" uses the '
          f'{summary["meta"]["convention"]} convention for failed episodes: grm counts them as '
          'VOC 0, api skips them; "extra" has both)')
    return 0


def _fmt(value: float | None) -> str:
    return '-' if value is None else f'{value:.3f}'


def _cmd_bench_data(args: argparse.Namespace) -> int:
    from .data import write_bench_data

    data = write_bench_data(args.out, episodes=args.episodes, num_frames=args.frames,
                            size=tuple(args.size), seed=args.seed, defects=not args.no_defects)
    print(f'benchmark written to {args.out}: datasets {", ".join(data.datasets)}\n'
          f'evaluate it with:\n  robo-dopamine bench --input-json-dir {data.input_json_dir} '
          f'--base-dir {data.base_dir} --out-root-dir {Path(args.out) / "results"} '
          '--interval 10 --backend ...')
    return 0
