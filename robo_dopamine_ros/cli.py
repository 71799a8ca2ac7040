"""The ``robo-dopamine`` command: argparse over library functions that raise; errors -> exit 1.

Imports stay light at module top (no numpy, torch or rclpy) so ``--help`` is instant and works on
a machine without ROS; each subcommand imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _cmd_prompt(args: argparse.Namespace) -> int:
    from .core.prompt import render_prompt

    sys.stdout.write(render_prompt(args.task, args.variant))
    return 0


def _cmd_profiles(args: argparse.Namespace) -> int:
    from .core.profiles import PROFILES

    for p in PROFILES.values():
        limits = p.pixel_limits
        print(f'{p.name}  ({p.model_id or "any other checkpoint"})\n'
              f'  architecture {p.architecture}, factor {limits.factor}, pixels '
              f'{limits.min_pixels}..{limits.max_pixels}, {p.vga_tokens} tokens per 640x480 '
              f'image\n'
              f'  single view {p.single_view}, goal-less {p.goalless}, prompt '
              f'{p.prompt_variant.value}\n'
              f'  verified: {"; ".join(p.verified) or "nothing"}\n'
              f'  assumed: {"; ".join(p.assumed) or "nothing"}\n'
              f'  {p.notes}')
    return 0


def _cmd_build_tiny_grm(args: argparse.Namespace) -> int:
    from .models.tiny_grm import build_tiny_grm

    path = build_tiny_grm(args.out_dir, vocab=args.vocab, seed=args.seed,
                          architecture=args.architecture)
    print(f'tiny random-weight GRM written to {path}')
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .ros.demo import RosDemoOptions, run_ros_demo

    run_ros_demo(RosDemoOptions(model=args.model, profile=args.profile, device=args.device,
                                rate=args.rate, out_dir=Path(args.out_dir),
                                outcome=args.outcome, seed=args.seed))
    return 0


def _stop_on_signals() -> threading.Event:
    """An event set by SIGINT/SIGTERM, so play/record end cleanly (the bag is closed)."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _ros_module(name: str) -> Any:
    """``robo_dopamine_ros.ros.<name>`` (play, record), or a clear error without ROS 2."""
    import importlib

    from .core.errors import ConfigError

    try:
        return importlib.import_module(f'.ros.{name}', __package__)
    except ImportError as e:
        raise ConfigError(f'play/record need ROS 2 (rclpy); source your ROS setup: {e}') from e


def _cmd_synth(args: argparse.Namespace) -> int:
    from .bags.writer import write_episode_bag
    from .synthetic.episode import render_episode
    from .synthetic.spec import EpisodeSpec
    from .synthetic.writer import write_episode_files

    spec = EpisodeSpec(seed=args.seed, num_frames=args.frames, fps=args.fps,
                       size=tuple(args.size), outcome=args.outcome)
    episode = render_episode(spec)
    if args.form != 'bag':
        path = write_episode_files(episode, args.out, args.form)
        print(f'{path}: {len(episode)} frames as {args.form}, outcome {args.outcome}, task '
              f'{episode.task!r} (labels: annotated_keyframes.json, ground_truth.json, goal.png)')
        return 0
    path = write_episode_bag(episode, args.out, storage=args.storage,
                             transport='compressed' if args.compressed else 'raw',
                             include_wrists=not args.single_camera)
    print(f'{path}: {len(episode)} frames, outcome {args.outcome}, task {episode.task!r}, '
          f'final progress {episode.progress[-1]:.2f} (labels in ground_truth.json, goal.png)')
    return 0


def _cmd_play(args: argparse.Namespace) -> int:
    stats = _ros_module('bag_tools').play(
        args.bag, rate=args.rate, topics=args.topics, clock=not args.no_clock, loop=args.loop,
        wait_for_subscribers_s=args.wait_for_subscribers, stop=_stop_on_signals())
    print(f'published {sum(stats.published.values())} messages on {len(stats.published)} '
          f'topics, {stats.clock_msgs} /clock{" (stopped)" if stats.stopped else ""}')
    return 0


def _cmd_record(args: argparse.Namespace) -> int:
    stats = _ros_module('bag_record').record(
        args.out, args.topics, storage=args.storage, duration_s=args.duration,
        stop=_stop_on_signals(), discover_timeout_s=args.discover_timeout)
    print(f'{stats.path}: ' + ', '.join(f'{t} {n}' for t, n in stats.counts.items())
          + (f'; never published: {", ".join(stats.missing)}' if stats.missing else ''))
    return 0


def _size(text: str) -> tuple[int, int]:
    w, _, h = text.partition('x')
    try:
        return int(w), int(h)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected WIDTHxHEIGHT, got {text!r}') from None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, one subparser per subcommand."""
    parser = argparse.ArgumentParser(
        prog='robo-dopamine',
        description='Robo-Dopamine GRM process reward: offline tools and demo.')
    parser.add_argument('-v', '--verbose', action='store_true', help='debug logging')
    sub = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')

    demo = sub.add_parser('demo', help='the reward node on live ROS topics, fed the bundled '
                                       'real episode from a bag (make demo)')
    demo.add_argument('--model', default=None,
                      help='GRM checkpoint directory (default: the bundled demo GRM if present, '
                           'else a tiny random-weight GRM built offline)')
    demo.add_argument('--profile', default='', help='checkpoint profile name (default: by path)')
    demo.add_argument('--device', default='cpu', help="'cpu', 'cuda:0', ... (default: cpu)")
    demo.add_argument('--rate', type=float, default=4.0,
                      help='bag playback speed (samples are picked by header time)')
    demo.add_argument('--out-dir', default='out/demo', help='where the plot and messages go')
    demo.add_argument('--outcome', default='regress',
                      choices=('success', 'fail', 'stall', 'regress'),
                      help='synthetic episode played to the bundled demo GRM')
    demo.add_argument('--seed', type=int, default=7, help='its seed (held out from training)')
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
    tiny.add_argument('--architecture', default='qwen2_5_vl', choices=('qwen2_5_vl', 'qwen3_vl'),
                      help='Qwen2.5-VL (as GRM-3B) or Qwen3-VL (as the GRM-2.0 previews)')
    tiny.set_defaults(func=_cmd_build_tiny_grm)
    synth = sub.add_parser('synth', help='write a synthetic episode with ground-truth progress '
                                         '(rosbag2 directory, videos or frame folders)')
    synth.add_argument('out', help='bag directory to create; ground_truth.json and goal.png '
                                   'are written inside it')
    synth.add_argument('--outcome', default='success',
                       choices=('success', 'fail', 'stall', 'regress'))
    synth.add_argument('--frames', type=int, default=90, help='frames per camera')
    synth.add_argument('--fps', type=float, default=15.0)
    synth.add_argument('--seed', type=int, default=0)
    synth.add_argument('--size', type=_size, default=(320, 240), help='WIDTHxHEIGHT')
    synth.add_argument('--storage', default='mcap', choices=('mcap', 'sqlite3'))
    synth.add_argument('--compressed', action='store_true',
                       help='sensor_msgs/CompressedImage (JPEG) on .../compressed topics')
    synth.add_argument('--single-camera', action='store_true', help='front camera only')
    synth.add_argument('--form', choices=('bag', 'videos', 'frames'), default='bag',
                       help="bag (rosbag2), or upstream's raw data for 'episode': cam_*.mp4 "
                            'videos or cam_*/frame_NNNNNN.png folders (default: %(default)s)')
    synth.set_defaults(func=_cmd_synth)

    play = sub.add_parser('play', help='publish a bag into the ROS graph at bag timing '
                                       '(ros2 bag play without rosbag2)')
    play.add_argument('bag', help='rosbag2 directory, or a bare .mcap/.db3 file')
    play.add_argument('--rate', type=float, default=1.0, help='speed factor')
    play.add_argument('--loop', action='store_true', help='replay until interrupted')
    play.add_argument('--no-clock', action='store_true', help='do not publish /clock')
    play.add_argument('--topics', nargs='+', default=None, help='topics to play (default all)')
    play.add_argument('--wait-for-subscribers', type=float, default=5.0, metavar='S',
                      help='wait up to S seconds for subscribers on the image topics')
    play.set_defaults(func=_cmd_play)

    rec = sub.add_parser('record', help='record topics into a rosbag2 bag until Ctrl-C or '
                                        '--duration (ros2 bag record without rosbag2)')
    rec.add_argument('out', help='bag directory to create')
    rec.add_argument('--topics', nargs='+', required=True)
    rec.add_argument('--duration', type=float, default=None, help='seconds to record')
    rec.add_argument('--storage', default='mcap', choices=('mcap', 'sqlite3'))
    rec.add_argument('--discover-timeout', type=float, default=10.0, metavar='S',
                     help='fail if no topic has a publisher after S seconds (topics still '
                          'missing then are warned about and picked up if they appear)')
    rec.set_defaults(func=_cmd_record)

    from .evaluation.commands import add_parsers as add_bench_parsers

    add_bench_parsers(sub)  # bench, bench-data

    from .training.cli import add_parsers as add_training_parsers

    add_training_parsers(sub)  # data preprocess|generate|postprocess, finetune

    from .offline.commands import add_parsers as add_offline_parsers

    add_offline_parsers(sub)  # episode, replay, video-to-bag

    from .lerobot.commands import add_parsers as add_lerobot_parsers

    add_lerobot_parsers(sub)  # relabel-lerobot
    return parser


#: The shell's exit status of a command ended by SIGINT (128 + 2).
EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code: 1 on a ``GrmError`` (printed as ERROR),
    130 on Ctrl-C (one line, no traceback: what was complete is kept, see files/outputs.py)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format='%(levelname)s %(name)s: %(message)s')
    from .core.errors import GrmError

    try:
        return int(args.func(args))
    except GrmError as err:
        print(f'ERROR: {err}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == '__main__':
    sys.exit(main())
