"""``make demo``: the reward node on real ROS topics, fed an episode from a bag.

What runs is the product: an episode becomes a rosbag2 file, the installed ``reward_node`` starts
with ``config/demo.yaml``, our bag player publishes the bag into the live graph, and this process
subscribes to ``~/progress``, ``~/reward`` and ``~/episode`` like a learner would, prints every
message and writes ``progress.png`` and ``messages.jsonl``.

The episode matches the model: the bundled demo GRM (trained on synthetic pick-and-place scenes)
gets a held-out synthetic episode it can judge; a given ``--model`` (a real GRM) or the
random-weight fallback gets the bundled real robot episode.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError, GrmError
from ..core.types import ALL_MODES
from ..files.frames import demo_episode_dir
from ..offline.plots import plot_results

NODE = 'robo_dopamine'
READY_TIMEOUT_S = 180.0
#: The trained demo GRM shipped in the package, when present (see models/demo_grm/).
DEMO_MODEL = Path(__file__).resolve().parents[1] / 'models' / 'demo_grm'


@dataclass(frozen=True)
class RosDemoOptions:
    """What the ROS demo runs."""

    model: str | None = None        # None: the bundled demo GRM, else the tiny random model
    profile: str = ''
    device: str = 'cpu'
    rate: float = 4.0               # bag playback speed; samples are picked by header time
    out_dir: Path = Path('out/demo')
    outcome: str = 'regress'        # synthetic episode for the demo GRM: rises, then falls back
    seed: int = 7                   # held out: the demo GRM trained on seeds >= 10000


@dataclass(frozen=True)
class _DemoEpisode:
    """The bag to play and what the node must be told about it."""

    bag: Path
    task: str
    goal: Path
    interval_s: float


def pick_model(options: RosDemoOptions) -> tuple[str, str, bool]:
    """(model path, profile name, meaningful?): given > bundled demo GRM > tiny random GRM."""
    if options.model:
        return options.model, options.profile, True
    if (DEMO_MODEL / 'model.safetensors').is_file():
        return str(DEMO_MODEL), options.profile, True
    from ..models.tiny_grm import cached_tiny_grm

    return str(cached_tiny_grm()), options.profile, False


def _synthetic_episode(out: Path, options: RosDemoOptions) -> _DemoEpisode:
    """A held-out synthetic episode (the scenes the demo GRM knows), as a bag."""
    from PIL import Image

    from ..bags.writer import write_episode_bag
    from ..synthetic.episode import render_episode
    from ..synthetic.spec import EpisodeSpec

    episode = render_episode(EpisodeSpec(seed=options.seed, outcome=options.outcome))
    bag = write_episode_bag(episode, out / 'demo_bag')
    goal = out / 'goal.png'
    Image.fromarray(episode.goal).save(goal)
    return _DemoEpisode(bag, episode.task, goal, interval_s=0.4)


def _real_episode(out: Path) -> _DemoEpisode:
    """The bundled real three-camera episode (2 fps slice), as a bag."""
    from ..bags.video import videos_to_bag

    episode = demo_episode_dir()
    bag = videos_to_bag(out / 'demo_bag', episode / 'cam_high.mp4',
                        episode / 'cam_left_wrist.mp4', episode / 'cam_right_wrist.mp4')
    return _DemoEpisode(bag, 'organize the table', episode / 'goal.png', interval_s=2.0)


def _share_dir() -> Path:
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        return Path(get_package_share_directory('robo_dopamine_ros'))
    except PackageNotFoundError:
        raise ConfigError('robo_dopamine_ros is not installed as a ROS package: run '
                          '`make setup` and `. scripts/env.sh`') from None


def _node_command(model: str, profile: str, device: str, episode: _DemoEpisode) -> list[str]:
    share = _share_dir()
    exe = share.parents[1] / 'lib' / 'robo_dopamine_ros' / 'reward_node'
    args = [str(exe), '--ros-args', '--params-file', str(share / 'config' / 'demo.yaml'),
            '-p', f'model.path:={model}', '-p', f'model.device:={device}',
            '-p', f'goal_image:={episode.goal}', '-p', f'task:={episode.task}',
            '-p', f'sampling.interval_s:={episode.interval_s}', '-p', 'use_sim_time:=true']
    if profile:
        args += ['-p', f'model.profile:={profile}']
    return args


def _record(progress: Any, reward: Any | None) -> dict[str, Any]:
    """A flat record (the keys of ``StepResult.to_record``) from the received messages."""
    from .messages import time_to_ns

    rec: dict[str, Any] = {
        'episode_id': progress.episode_id, 'step': progress.step, 'task': progress.task,
        'stamp_after_ns': time_to_ns(progress.header.stamp), 'progress': progress.progress,
        'valid': progress.valid, 'status': progress.status, 'reason': progress.reason,
        'latency_s': progress.latency_s, 'model_id': progress.model_id,
        'reward': reward.reward if reward else None, 'done': reward.done if reward else False,
    }
    for i, name in enumerate(progress.modes):
        for key, values in (('progress', progress.mode_progress), ('hop', progress.mode_hop)):
            value = float(values[i])
            rec[f'{name}_{key}'] = None if math.isnan(value) else value
        rec[f'{name}_answer'] = progress.raw_answers[i]
    return rec


class _Listener:
    """The learner's side: subscriptions on a private context, spun on a thread."""

    def __init__(self, on_line: Callable[[str], None]) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

        from robo_dopamine_ros.msg import EpisodeEvent, Progress, Reward

        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx)
        self.node = rclpy.create_node('robo_dopamine_demo', context=self.ctx)
        self.ready = threading.Event()
        self.records: list[dict[str, Any]] = []
        self._rewards: dict[int, Any] = {}
        self._progress: dict[int, Any] = {}
        self._on_line = on_line
        self._t0: int | None = None
        self._lock = threading.Lock()
        reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.node.create_subscription(Progress, f'/{NODE}/progress', self._on_progress,
                                      reliable)
        self.node.create_subscription(Reward, f'/{NODE}/reward', self._on_reward, reliable)
        self.node.create_subscription(EpisodeEvent, f'/{NODE}/episode', self._on_event, latched)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()
        self._event_names = {getattr(EpisodeEvent, n): n for n in
                             ('READY', 'START', 'RESET', 'DONE', 'TASK_CHANGED',
                              'GOAL_CHANGED', 'SHUTDOWN', 'PAUSED')}

    def _on_event(self, msg: Any) -> None:
        name = self._event_names.get(msg.event, str(msg.event))
        self._on_line(f'[episode] {name} {msg.episode_id} {msg.detail}'.rstrip())
        if name == 'READY':
            self.ready.set()

    def _on_progress(self, msg: Any) -> None:
        from .messages import time_to_ns

        with self._lock:
            stamp = time_to_ns(msg.header.stamp)
            self._progress[stamp] = msg
            self._emit(stamp)

    def _on_reward(self, msg: Any) -> None:
        from .messages import time_to_ns

        with self._lock:
            stamp = time_to_ns(msg.header.stamp)
            self._rewards[stamp] = msg
            self._emit(stamp)

    def _emit(self, stamp: int) -> None:
        progress = self._progress.get(stamp)
        if progress is None or (progress.step > 0 and stamp not in self._rewards):
            return                          # wait for the pair (START has no reward)
        reward = self._rewards.get(stamp)
        self._t0 = stamp if self._t0 is None else self._t0
        rec = _record(progress, reward)
        self.records.append(rec)
        parse = ' '.join(repr(str(rec.get(f'{m.value}_answer', '')))[:16] for m in ALL_MODES)
        r = f'{reward.reward:+.3f}' if reward else '     -'
        self._on_line(f'step {progress.step:3d}  t={(stamp - self._t0) / 1e9:6.1f}s  '
                      f'progress {progress.progress:.3f}  reward {r}  '
                      f'{"valid" if progress.valid else "INVALID"}  {progress.status:7s} '
                      f'{progress.latency_s:5.2f}s  {parse}')

    def close(self) -> None:
        self.executor.shutdown()
        self.ctx.try_shutdown()
        self._thread.join(timeout=5)
        self.node.destroy_node()


def run_ros_demo(options: RosDemoOptions, on_line: Callable[[str], None] = print) -> Path:
    """Run the demo; returns the output directory (``progress.png``, ``messages.jsonl``)."""
    from .bag_tools import play

    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    model, profile, meaningful = pick_model(options)
    if not meaningful:
        on_line('=' * 78 + '\nNOTE: no trained demo model is bundled and no --model was given: '
                'the node runs a tiny\nRANDOM-WEIGHT GRM. Its numbers mean nothing; every step '
                'is flagged INVALID.\n' + '=' * 78)
    out = Path(options.out_dir)
    if (out / 'demo_bag').exists():
        shutil.rmtree(out / 'demo_bag')
    out.mkdir(parents=True, exist_ok=True)
    synthetic = Path(model) == DEMO_MODEL
    episode = _synthetic_episode(out, options) if synthetic else _real_episode(out)
    bag = episode.bag
    on_line(f'episode: {"synthetic " + options.outcome if synthetic else "bundled real"} '
            f'({episode.task!r})')
    listener = _Listener(on_line)
    cmd = _node_command(model, profile, options.device, episode)
    on_line(f'starting the reward node: model {model} (log: {out / "node.log"})')
    log = (out / 'node.log').open('w', encoding='utf-8')
    node = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not listener.ready.wait(0.5):
            if node.poll() is not None:
                raise GrmError(f'the reward node exited ({node.returncode}): '
                               f'{(out / "node.log").read_text()[-2000:]}')
            if time.monotonic() > deadline:
                raise GrmError('the reward node did not report READY in time')
        expected = _expected_samples(bag, episode.interval_s)
        on_line(f'playing {bag.name} into the live graph at {options.rate}x '
                f'({expected} samples to score)')
        stats = play(bag, rate=options.rate)
        on_line(f'played {sum(stats.published.values())} messages')
        _wait_for(listener, expected, node)
    finally:
        interrupt(node)
        log.close()
        listener.close()
    (out / 'messages.jsonl').write_text(
        ''.join(json.dumps(r) + '\n' for r in listener.records), encoding='utf-8')
    if listener.records:
        plot_results(listener.records, out / 'progress.png',
                     f'{listener.records[0]["task"]} — {Path(model).name}')
    valid = sum(r['valid'] for r in listener.records)
    on_line(f'{len(listener.records)} samples received ({valid} valid); plot: '
            f'{out / "progress.png"}')
    return out


def interrupt(proc: subprocess.Popen[Any], timeout_s: float = 15.0) -> int:
    """Ctrl-C a ROS process (it publishes SHUTDOWN and exits), kill it if it hangs; its code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def _expected_samples(bag: Path, interval_s: float) -> int:
    """How many samples the node will score: the header-time grid over the bag's front frames.

    The last front frame is left out: the synchronizer needs a later frame to close its set.
    """
    from ..bags.reader import BagReader
    from ..bags.writer import camera_topics
    from ..core.sampling import HeaderTimeSampler

    sampler = HeaderTimeSampler(interval_s)
    with BagReader(bag) as reader:
        stamps = [m.stamp_ns for m in reader.raw([camera_topics()['front']])]
    return sum(sampler.accept(t) for t in stamps[:-1])


def _wait_for(listener: _Listener, expected: int, node: subprocess.Popen[str],
              stall_s: float = 120.0) -> None:
    """Wait for every expected sample; give up after ``stall_s`` without a new one."""
    seen, last = len(listener.records), time.monotonic()
    while len(listener.records) < expected and node.poll() is None:
        if time.monotonic() - last > stall_s:
            return
        time.sleep(0.2)
        if len(listener.records) != seen:
            seen, last = len(listener.records), time.monotonic()
