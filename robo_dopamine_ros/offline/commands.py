"""The ``episode``, ``replay``, ``prefill-check`` and ``video-to-bag`` subcommands;
``cli.build_parser`` adds them.

Module-level imports stay light (argparse) so ``robo-dopamine --help`` stays instant; each
command imports what it runs. Every long run shows a progress bar (``--no-progress`` hides it)
and writes its per-sample results as it goes.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from ..backends.arguments import add_backend_arguments
from ..core.names import CAMERAS

_MODES = ('incremental', 'forward', 'backward', 'fused', 'all')


def add_parsers(sub: Any) -> None:
    """Add ``episode``, ``replay``, ``prefill-check`` and ``video-to-bag`` to the CLI's
    subparsers."""
    episode = sub.add_parser(
        'episode', help="score an episode's videos or frame folders (upstream run_pipeline): "
                        'upstream JSON, results CSV/JSONL, plot, optional reward_vis.mp4')
    episode.add_argument('--front', type=Path, required=True,
                         help='front (cam_high) video file or frame folder')
    episode.add_argument('--left', type=Path, default=None, help='left wrist (optional)')
    episode.add_argument('--right', type=Path, default=None,
                         help='right wrist (optional; no wrists = single view)')
    episode.add_argument('--task', required=True, help='task instruction')
    episode.add_argument('--goal', type=Path, default=None,
                         help='goal image (REF END; default: the last front frame)')
    episode.add_argument('--fps', type=float, default=30.0,
                         help='frame rate of frame folders (videos report their own; default 30)')
    add_frame_scoring_arguments(episode)
    episode.add_argument('--visualize', action='store_true', help='write reward_vis.mp4')
    _monitor_arguments(episode)
    episode.add_argument('--out-root', type=Path, default=Path('results'),
                         help='runs go to OUT_ROOT/<YY-MM-DD-HH-MM-SS>/ (default: results)')
    _scoring(episode, _cmd_episode)

    replay = sub.add_parser(
        'replay', help="score a rosbag2 bag exactly as the node would (its synchronizer, "
                       'sampler and engine): results, plot, VOC, optional bag with rewards')
    replay.add_argument('bag', type=Path, help='rosbag2 directory (mcap or sqlite3) or file')
    replay.add_argument('--params-file', type=Path, default=None,
                        help="the node's parameter YAML (cameras, sync, sampling, engine, "
                             'reward, task, goal_image), e.g. config/default.yaml; of a '
                             "file with several nodes only the sections matching --node apply")
    replay.add_argument('--node', default='/robo_dopamine',
                        help='fully qualified name of the node whose --params-file sections '
                             'apply, e.g. /robot1/robo_dopamine (default: /robo_dopamine)')
    replay.add_argument('-p', '--param', action='append', default=[], metavar='NAME=VALUE',
                        help='override one node parameter, e.g. -p sync.slop_s=0.02 (repeat)')
    for role in CAMERAS:
        replay.add_argument(f'--{role}-topic', default=None,
                            help=f"cameras.{role}.topic ('' = no {role} camera)")
    replay.add_argument('--transport', choices=('raw', 'compressed'), default=None,
                        help='cameras.*.transport of every camera; compressed also reads '
                             "<topic>/compressed (image_transport's name, as video-to-bag "
                             '--compressed writes) unless --<camera>-topic names the topic')
    replay.add_argument('--interval', type=float, default=None,
                        help='sampling.interval_s: seconds of header time between samples')
    replay.add_argument('--task', default='', help='task (default: the task parameter, the '
                                                   "bag's labels or its START events)")
    replay.add_argument('--goal', type=Path, default=None,
                        help='goal image (default: goal_image, the bag\'s goal.png, else the '
                             'last front frame)')
    replay.add_argument('--keyframes', type=Path, default=None,
                        help='upstream annotated_keyframes.json (front frame ids) for the error '
                             "against step-wise ground truth (default: the bag's labels)")
    replay.add_argument('--split-gap', type=float, default=None, metavar='S',
                        help='start a new episode after a gap of S seconds between frames')
    replay.add_argument('--split-at-events', action='store_true',
                        help="start a new episode at each recorded ~/episode START event")
    replay.add_argument('--write-bag', type=Path, default=None, metavar='OUT',
                        help='write a copy of the bag with the progress, reward and episode '
                             'topics added (open it in Foxglove)')
    replay.add_argument('--bag-storage', choices=('mcap', 'sqlite3'), default='mcap',
                        help='storage of --write-bag (default: %(default)s)')
    replay.add_argument('--topic-prefix', default='/robo_dopamine',
                        help='namespace of the added topics (default: %(default)s)')
    replay.add_argument('--out-dir', type=Path, default=None,
                        help='results directory (default: out/replay/<bag name>)')
    _scoring(replay, _cmd_replay)

    check = sub.add_parser(
        'prefill-check', help='score held-out frames of an episode with and without answer '
                              'prefill: agreement of the parsed hops (>= 99 %% recommends '
                              'model.answer_prefill: on), every difference, the time saved')
    check.add_argument('--front', type=Path, required=True, help='front video or folder')
    check.add_argument('--left', type=Path, default=None)
    check.add_argument('--right', type=Path, default=None)
    check.add_argument('--task', required=True, help='task instruction')
    check.add_argument('--goal', type=Path, default=None,
                       help='goal image (default: the last front frame)')
    check.add_argument('--fps', type=float, default=30.0, help='frame rate of frame folders')
    check.add_argument('--frame-interval', type=int, default=30,
                       help='frames between samples (default %(default)s)')
    check.add_argument('--samples', type=int, default=20,
                       help='samples to score, 3 answers each (default %(default)s)')
    check.add_argument('--negative-control', action='store_true',
                       help='prefill a deliberately wrong head (the minority sign): must fail')
    _scoring(check, _cmd_prefill_check)

    convert = sub.add_parser(
        'video-to-bag', help="convert an episode's videos or frame folders to a rosbag2 bag "
                             'at their frame rate (keyframes, goal and task files come along)')
    convert.add_argument('out', type=Path, help='bag directory to create')
    convert.add_argument('--front', type=Path, required=True, help='front video or folder')
    convert.add_argument('--left', type=Path, default=None)
    convert.add_argument('--right', type=Path, default=None)
    convert.add_argument('--fps', type=float, default=None,
                         help="frame rate (default: the front video's; needed for folders)")
    convert.add_argument('--storage', choices=('mcap', 'sqlite3'), default='mcap')
    convert.add_argument('--compressed', action='store_true',
                         help='JPEG CompressedImage on .../compressed topics (default: lossless '
                              'rgb8 Image; a 640x480 30 fps camera is ~1.6 GB a minute raw)')
    convert.add_argument('--jpeg-quality', type=int, default=90)
    convert.set_defaults(func=_cmd_video_to_bag)


def _monitor_arguments(parser: argparse.ArgumentParser) -> None:
    """The task monitor's and the start ~ goal check's settings (replay: -p monitor.NAME=...)."""
    from ..core.monitor import MonitorConfig
    from ..core.start_goal import DEFAULT_THRESHOLD, StartGoalPolicy

    group = parser.add_argument_group('task monitor (core/monitor.py) and start ~ goal')
    for f in dataclasses.fields(MonitorConfig):
        group.add_argument(f'--monitor-{f.name.replace("_", "-")}', dest=f'monitor_{f.name}',
                           type=int if f.type == 'int' else float, default=f.default,
                           help=f'{f.metadata["doc"]} (default: %(default)s)')
    group.add_argument('--start-goal-threshold', type=float, default=DEFAULT_THRESHOLD,
                       help='start ~ goal below this changed fraction of the image (0 = no '
                            'check; default: %(default)s)')
    group.add_argument('--start-goal-policy', choices=[p.value for p in StartGoalPolicy],
                       default=StartGoalPolicy.INCREMENTAL.value,
                       help='fusion of a start ~ goal episode (default: %(default)s)')


def add_frame_scoring_arguments(parser: argparse.ArgumentParser,
                                modes: tuple[str, ...] = _MODES) -> None:
    """How the offline episode pipeline scores frames (``episode``, ``relabel-lerobot``); the
    values go to ``EpisodeOptions`` through :func:`frame_scoring_options`."""
    parser.add_argument('--frame-interval', type=int, default=30,
                        help='frames between samples, plus the last frame (default 30)')
    parser.add_argument('--mode', choices=modes, default='fused',
                        help='one upstream mode, the paper fusion'
                             + (', or all three and the fusion in one pass' if 'all' in modes
                                else '') + ' (default: %(default)s)')
    parser.add_argument('--consistency', action='store_true',
                        help='consistency check (paper Eq. 9-11; fused/all)')
    parser.add_argument('--upstream-zero', action='store_true',
                        help='parity: an unparseable answer reads as 0, as upstream')


def frame_scoring_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``EpisodeOptions`` fields of :func:`add_frame_scoring_arguments`."""
    return {'frame_interval': args.frame_interval, 'mode': args.mode,
            'consistency': args.consistency, 'upstream_zero': args.upstream_zero}


def _scoring(parser: argparse.ArgumentParser, func: Any) -> None:
    """What every scoring command takes besides its inputs: the backend and the bar."""
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    add_backend_arguments(parser)
    parser.set_defaults(func=func)


def _cmd_episode(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..backends.arguments import backend_from_args
    from ..core.monitor import MonitorConfig
    from ..core.start_goal import StartGoalConfig
    from .episode import EpisodeInputs, EpisodeOptions, check_episode, run_episode

    inputs = EpisodeInputs(args.front, args.task, args.left, args.right, args.goal, args.fps)
    options = EpisodeOptions(out_root=args.out_root, visualize=args.visualize,
                             **frame_scoring_options(args),
                             monitor=MonitorConfig(**{
                                 f.name: getattr(args, f'monitor_{f.name}')
                                 for f in dataclasses.fields(MonitorConfig)}),
                             start_goal=StartGoalConfig(args.start_goal_threshold,
                                                        args.start_goal_policy))
    total = check_episode(inputs, options)     # the bar's length; a bad input fails here
    backend, profile = backend_from_args(args)
    try:
        with tqdm(total=total, unit='sample', disable=args.no_progress) as bar:
            run_dir = run_episode(backend, profile, inputs, options,
                                  on_result=lambda _: bar.update())
    finally:
        backend.close()
    print(f'results in {run_dir}: ' + ', '.join(sorted(p.name for p in run_dir.iterdir())))
    return 0


def _cmd_prefill_check(args: argparse.Namespace) -> int:
    """Exit status 0 when prefill is recommended, 1 when not (the negative control's)."""
    from ..backends.arguments import backend_from_args
    from ..core.errors import ConfigError
    from .episode import EpisodeInputs, EpisodeOptions, check_episode
    from .prefill_check import check_prefill

    if args.samples < 1:
        raise ConfigError(f'--samples must be >= 1, got {args.samples}')
    inputs = EpisodeInputs(args.front, args.task, args.left, args.right, args.goal, args.fps)
    check_episode(inputs, EpisodeOptions(frame_interval=args.frame_interval))
    backend, profile = backend_from_args(args)
    try:
        report = check_prefill(backend, profile, inputs, frame_interval=args.frame_interval,
                               samples=args.samples, wrong_head=args.negative_control)
    finally:
        backend.close()
    print('\n'.join(report.lines()))
    return 0 if report.passed else 1


def _node_values(args: argparse.Namespace) -> dict[str, Any]:
    """The node parameters: the YAML file, then the flags, then ``-p`` overrides."""
    import yaml

    from ..core.errors import ConfigError
    from ..pipeline.param_table import PARAMS_BY_NAME
    from ..pipeline.params_file import load_params_file

    values = load_params_file(args.params_file, args.node) if args.params_file else {}
    for role in CAMERAS:
        name = f'cameras.{role}.topic'
        topic = getattr(args, f'{role}_topic')
        if topic is not None:
            values[name] = topic
        elif args.transport == 'compressed':
            # image_transport's name for a raw topic's JPEG stream (what video-to-bag
            # --compressed writes): <raw topic>/compressed.
            raw = values.get(name, PARAMS_BY_NAME[name].default)
            if raw and not raw.endswith('/compressed'):
                values[name] = f'{raw.rstrip("/")}/compressed'
        if args.transport is not None:
            values[f'cameras.{role}.transport'] = args.transport
    if args.interval is not None:
        values['sampling.interval_s'] = args.interval
    for item in args.param:
        name, sep, text = item.partition('=')
        if not sep:
            raise ConfigError(f'-p takes NAME=VALUE, got {item!r}')
        values[name.strip()] = yaml.safe_load(text)
    return values


def _cmd_replay(args: argparse.Namespace) -> int:
    from ..backends.arguments import backend_from_args
    from ..pipeline.params import NodeConfig
    from .replay import ReplayOptions, open_replay

    node = NodeConfig.from_values(_node_values(args))
    options = ReplayOptions(
        out_dir=args.out_dir or Path('out') / 'replay' / args.bag.resolve().name,
        task=args.task, goal=args.goal, split_gap_s=args.split_gap,
        split_at_events=args.split_at_events, write_bag=args.write_bag,
        bag_storage=args.bag_storage, topic_prefix=args.topic_prefix, keyframes=args.keyframes,
        show_progress=not args.no_progress)
    with open_replay(args.bag, node, options) as replay:    # a bad input fails here
        backend, profile = backend_from_args(args)
        try:
            summary = replay.run(backend, profile)
        finally:
            backend.close()
    print(f'{"episode":16s} {"samples":>7} {"valid":>5} {"final":>6} {"voc":>6} {"gt_mae":>6}'
          '  task')
    for ep in summary.episodes:
        mae = f'{ep["gt_mae"]:.3f}' if 'gt_mae' in ep else '-'
        print(f'{ep["episode_id"]:16s} {ep["samples"]:7d} {ep["valid"]:5d} '
              f'{ep["final_progress"]:6.3f} {ep["voc"]:6.3f} {mae:>6}  {ep["task"]}')
    print(f'results in {summary.out_dir} (results.jsonl/csv, progress*.png, summary.json)'
          + (f'; bag with rewards: {summary.output_bag}' if summary.output_bag else ''))
    return 0


def _check_labels(labels: list[Path], front: Path) -> None:
    """Read each label file as replay will, so a broken one (an empty task file, keyframes past
    the video's end, an undecodable goal) is refused now instead of copied into the bag.

    Raises:
        GrmError: The first label that cannot be read, named.
    """
    from ..core.names import GOAL_FILE, KEYFRAMES_FILE, TASK_FILE
    from ..files.frames import open_frames, read_image
    from ..training.keyframes import load_instructions, parse_keyframes, read_json

    for path in labels:
        if path.name == TASK_FILE:
            load_instructions([path])
        elif path.name == KEYFRAMES_FILE:
            with open_frames(front) as video:
                parse_keyframes(read_json(path), len(video), str(path))
        elif path.name == GOAL_FILE:
            read_image(path)


def _cmd_video_to_bag(args: argparse.Namespace) -> int:
    from ..bags.reader import BagReader
    from ..bags.video import episode_labels, videos_to_bag

    _check_labels(episode_labels(args.front), Path(args.front))
    out = videos_to_bag(args.out, args.front, args.left, args.right, fps=args.fps,
                        storage=args.storage,
                        transport='compressed' if args.compressed else 'raw',
                        jpeg_quality=args.jpeg_quality)
    with BagReader(out) as bag:
        counts = bag.message_counts
        span = (bag.end_ns - bag.start_ns) / 1e9
    print(f'{out}: ' + ', '.join(f'{t} {n}' for t, n in counts.items()) + f'; {span:.1f} s')
    return 0
