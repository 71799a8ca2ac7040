"""The ``relabel-lerobot`` and ``synth-lerobot`` subcommands; ``cli.build_parser`` adds them.

Module-level imports stay light (argparse) so ``robo-dopamine --help`` stays instant.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..backends.arguments import add_backend_arguments
from ..offline.commands import add_frame_scoring_arguments


def add_parsers(sub: Any) -> None:
    """Add ``relabel-lerobot`` and ``synth-lerobot`` to the CLI's subparsers."""
    synth = sub.add_parser(
        'synth-lerobot', help='write synthetic episodes (one scene, given outcomes) as a LeRobot '
                              'v3 dataset with ground-truth progress, e.g. to try relabel-lerobot')
    synth.add_argument('out', type=Path, help='dataset folder to create')
    synth.add_argument('--outcomes', nargs='+', default=['success', 'fail', 'stall', 'regress'],
                       choices=('success', 'fail', 'stall', 'regress'),
                       help='one episode per outcome, in this order (default: all four)')
    synth.add_argument('--seed', type=int, default=500,
                       help='scene seed: every episode shows the same scene and task')
    synth.add_argument('--frames', type=int, default=30, help='frames per episode')
    synth.add_argument('--fps', type=int, default=15)
    synth.add_argument('--codec', default='mpeg4',
                       help="PyAV encoder: mpeg4 (fast), libx264, or libsvtav1 (AV1, LeRobot's "
                            'default)')
    synth.add_argument('--episodes-per-file', type=int, default=2)
    synth.add_argument('--single-camera', action='store_true', help='front camera only')
    synth.set_defaults(func=_cmd_synth_lerobot)

    p = sub.add_parser(
        'relabel-lerobot',
        help='score every frame of a LeRobot v3 dataset (progress, reward) into a parquet; '
             'resumable; optionally a copy of the dataset with a reward feature')
    p.add_argument('dataset', type=Path, help='LeRobot v3 dataset folder (meta/info.json)')
    p.add_argument('--out', type=Path, required=True,
                   help='output parquet (one row per frame); an interrupted run resumes from '
                        'the episodes it finished')
    p.add_argument('--front', required=True, help='video key of the front camera, e.g. '
                                                  'observation.images.top')
    p.add_argument('--left', default=None, help='video key of the left wrist camera')
    p.add_argument('--right', default=None,
                   help='video key of the right wrist camera (no wrists = single view)')
    goal = p.add_mutually_exclusive_group()
    goal.add_argument('--goal', type=Path, default=None, help='goal image (REF END)')
    goal.add_argument('--goal-episode', type=int, default=None, metavar='N',
                      help="episode N's last front frame is every episode's goal")
    goal.add_argument('--goal-per-episode', action='store_true',
                      help="each episode's own last front frame (demonstrations only: a failed "
                           'rollout would end near 1)')
    p.add_argument('--task', default=None, help="task for every episode (default: the "
                                                "episode's task in the dataset)")
    p.add_argument('--episodes', type=int, nargs='+', default=None, metavar='E',
                   help='score only these episodes (default: all)')
    add_frame_scoring_arguments(p, ('incremental', 'forward', 'backward', 'fused'))
    p.add_argument('--write-dataset', type=Path, default=None, metavar='DIR',
                   help='also write a copy of the dataset with the features next.reward, '
                        'next.done, next.success, robo_dopamine.reward_valid and '
                        'robo_dopamine.progress (every episode must be scored)')
    p.add_argument('--sidecar', type=Path, default=None, metavar='FILE',
                   help="progress sidecar in LeRobot's reward-model schema, for RA-BC "
                        "(sample_weighting.progress_path; default: OUT's name with "
                        '.progress.parquet, beside it)')
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    add_backend_arguments(p)
    p.set_defaults(func=_cmd_relabel)


def _cmd_relabel(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..backends.arguments import backend_from_args
    from ..offline.commands import frame_scoring_options
    from ..offline.episode import EpisodeOptions
    from .relabel import Relabeller, RelabelOptions

    options = RelabelOptions(
        front=args.front, left=args.left, right=args.right, goal=args.goal,
        goal_episode=args.goal_episode, goal_per_episode=args.goal_per_episode, task=args.task,
        episodes=tuple(args.episodes) if args.episodes is not None else None,
        scoring=EpisodeOptions(**frame_scoring_options(args)),
        write_dataset=args.write_dataset, sidecar=args.sidecar)
    backend, profile = backend_from_args(args)
    try:
        relabeller = Relabeller(args.dataset, backend, profile, options)
        total = relabeller.pending_samples(args.out)
        with tqdm(total=total, unit='sample', disable=args.no_progress) as bar:
            summary = relabeller.run(args.out, on_sample=lambda _: bar.update())
    finally:
        backend.close()
    print(f'{"episode":>7} {"frames":>6} {"samples":>7} {"valid":>5} {"final":>6}  task')
    for ep in summary.episodes:
        print(f'{ep.episode_index:7d} {ep.frames:6d} {ep.samples:7d} {ep.valid:5d} '
              f'{ep.final_progress:6.3f}  {ep.task}')
    if summary.skipped:
        print(f'skipped {len(summary.skipped)} episode(s) scored before: {summary.skipped}')
    print(f'rewards in {summary.out}; progress sidecar {summary.sidecar}'
          + (f'; dataset with rewards: {summary.dataset}' if summary.dataset else ''))
    return 0


def _cmd_synth_lerobot(args: argparse.Namespace) -> int:
    from ..core.names import CAMERAS
    from ..synthetic.episode import render_episode
    from ..synthetic.spec import EpisodeSpec
    from .synthetic_dataset import LEROBOT_KEYS, write_lerobot_dataset

    episodes = [render_episode(EpisodeSpec(seed=args.seed, num_frames=args.frames,
                                           fps=float(args.fps), outcome=o))
                for o in args.outcomes]
    cameras = CAMERAS[:1] if args.single_camera else CAMERAS
    path = write_lerobot_dataset(episodes, args.out, cameras=cameras, codec=args.codec,
                                 episodes_per_file=args.episodes_per_file)
    print(f'{path}: {len(episodes)} episodes ({", ".join(args.outcomes)}) of '
          f'{episodes[0].task!r}; video keys {[LEROBOT_KEYS[c] for c in cameras]}')
    return 0
