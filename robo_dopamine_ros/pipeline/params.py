"""The reward node's validated configuration: parameter values (pipeline/param_table.py) checked
and assembled into the core's configs, the backend's options and the cameras.

The node is a managed (lifecycle) node: values are read and validated by ``configure``, and the
node accepts changes only while unconfigured (a value changed later would silently have no
effect, so it is refused); after a failed ``configure`` an operator fixes the value with
``ros2 param set`` and configures again. The task and the goal change at run time through the
node's services. ROS-free, so offline tools such as bag replay validate the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any

from ..backends.architectures import backend_profile
from ..backends.factory import TEST_DOUBLE, make_config
from ..backends.prefill import resolve_prefill
from ..core.engine import EngineConfig
from ..core.errors import ConfigError
from ..core.monitor import MonitorConfig
from ..core.names import CAMERAS
from ..core.profiles import CheckpointProfile
from ..core.progress import FusionConfig
from ..core.prompt import check_task
from ..core.sampling import SamplerKind, SamplingConfig
from ..core.shaping import ShapingConfig
from ..core.start_goal import StartGoalConfig
from .param_table import (
    PARAM_NAMES,
    PARAMS,
    Reliability,
    StampPolicy,
    Transport,
    Trigger,
    monitor_params,
)

_NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class CameraConfig:
    """One configured camera; its index in ``NodeConfig.cameras`` is its sync stream."""

    role: str
    topic: str
    transport: Transport


@dataclass(frozen=True, kw_only=True)
class NodeConfig:
    """Everything the node reads from its parameters, validated and turned into core configs.

    Build it with :meth:`from_values` (ros/params.py ``read`` on a node), never by hand.
    """

    cameras: tuple[CameraConfig, ...]
    max_input_pixels: int
    reliability: Reliability
    qos_depth: int
    sync_slop_ns: int
    sync_queue_size: int
    trigger: Trigger
    stamp_policy: StampPolicy
    max_age_ns: int
    backend: str
    engine: EngineConfig
    profile: CheckpointProfile
    #: The options of ``backend``'s config class (backends/factory.py), validated.
    backend_options: Mapping[str, Any]
    load_retry_s: float
    cpu_threads: int
    transition_timeout_s: float
    release_on_deactivate: bool
    task: str
    goal_image: str
    queue_length: int
    diagnostics_period_s: float
    stale_after_s: float
    constant_output_steps: int

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> NodeConfig:
        """Validate parameter values (missing ones take their default) into a config.

        Raises:
            ConfigError: Unknown name or bad value; the message names the parameter(s) and value.
        """
        unknown = sorted(set(values) - PARAM_NAMES)
        if unknown:
            raise ConfigError(f'unknown parameter(s) {unknown!r}')
        v = {p.name: p.check(values.get(p.name, p.default)) for p in PARAMS}
        backend = v['model.backend']
        with _about('engine.modes', 'engine.fusion', 'engine.consistency', 'engine.alpha'):
            fusion = FusionConfig(modes=tuple(v['engine.modes']), method=v['engine.fusion'],
                                  consistency=v['engine.consistency'], alpha=v['engine.alpha'])
        with _about('sampling.interval_s', 'sampling.tolerance_s'):
            sampling = SamplingConfig(SamplerKind.HEADER_TIME, interval_s=v['sampling.interval_s'],
                                      tolerance_s=v['sampling.tolerance_s'])
        shaping = ShapingConfig(gamma=v['reward.gamma'],
                                control_period_s=v['reward.control_period_s'] or None,
                                delta=v['reward.delta'],
                                terminal_potential=v['reward.terminal_potential'])
        with _about(*(p.name for p in monitor_params())):
            monitor = MonitorConfig(**{f.name: v[f'monitor.{f.name}']
                                       for f in fields(MonitorConfig)})
        start_goal = StartGoalConfig(v['engine.start_goal_threshold'],
                                     v['engine.start_goal_policy'])
        engine = EngineConfig(fusion=fusion, shaping=shaping,
                              lenient_parse=v['engine.lenient_parse'],
                              missing_goal=v['engine.missing_goal'], sampling=sampling,
                              monitor=monitor, start_goal=start_goal)
        with _about('model.path', 'model.profile', 'model.architecture', 'model.min_pixels',
                    'model.max_pixels'):
            profile = backend_profile(backend, v['model.path'], v['model.profile'] or None,
                                      v['model.architecture'] or None,
                                      min_pixels=v['model.min_pixels'] or None,
                                      max_pixels=v['model.max_pixels'] or None)
        options = _backend_options(backend, v, profile)
        if backend != TEST_DOUBLE:
            with _about(*_BACKEND_PARAMS[backend]):
                make_config(backend, **options)
        if v['task']:
            with _about('task'):
                check_task(v['task'])
        return cls(
            cameras=_cameras(v), max_input_pixels=v['input.max_pixels'],
            reliability=Reliability(v['qos.reliability']),
            qos_depth=v['qos.depth'], sync_slop_ns=round(v['sync.slop_s'] * _NS_PER_S),
            sync_queue_size=v['sync.queue_size'], trigger=Trigger(v['trigger']),
            stamp_policy=StampPolicy(v['stamps.policy']),
            max_age_ns=round(v['stamps.max_age_s'] * _NS_PER_S), backend=backend,
            engine=engine, profile=profile, backend_options=options,
            load_retry_s=v['model.load_retry_s'], cpu_threads=v['model.cpu_threads'],
            transition_timeout_s=v['lifecycle.transition_timeout_s'],
            release_on_deactivate=v['model.release_on_deactivate'], task=v['task'],
            goal_image=v['goal_image'], queue_length=v['queue.length'],
            diagnostics_period_s=v['diagnostics.period_s'],
            stale_after_s=v['diagnostics.stale_after_s'],
            constant_output_steps=v['diagnostics.constant_output_steps'])


#: The parameters an error of each backend's config is most likely about (for its message).
_BACKEND_PARAMS = {
    'transformers': ('model.path', 'model.device'),
    'vllm': ('model.path', 'model.dtype', 'model.device', 'model.max_gpu_memory_gib'),
    'openai': ('model.path', 'model.openai.served_model', 'model.openai.base_url',
               'model.openai.api_key_env'),
}


def _backend_options(backend: str, v: Mapping[str, Any],
                     profile: CheckpointProfile) -> dict[str, Any]:
    """The node parameters as the options of ``backend``'s config class."""
    prefill = resolve_prefill(v['model.answer_prefill'], profile.answer_prefill)
    common = {'upstream_sampling': v['model.upstream_sampling'],
              'pixel_limits': profile.pixel_limits, 'answer_prefill': prefill}
    if v['model.confidence'] and backend != 'transformers':
        raise ConfigError(f"model.confidence needs the transformers backend, not {backend!r}")
    if backend == 'transformers':
        return {**common, 'model': v['model.path'], 'device': v['model.device'],
                'confidence': v['model.confidence'],
                'dtype': v['model.dtype'], 'max_new_tokens': v['model.max_new_tokens'],
                'max_gpu_memory_gib': v['model.max_gpu_memory_gib'] or None}
    if backend == 'vllm':
        return {**common, 'model': v['model.path'], 'dtype': v['model.dtype'],
                'device': v['model.device'],
                'max_memory_gib': v['model.max_gpu_memory_gib'] or None,
                'max_tokens': v['model.max_new_tokens'], 'architecture': profile.architecture}
    if backend == 'openai':
        return {'upstream_sampling': v['model.upstream_sampling'], 'answer_prefill': prefill,
                'model': v['model.openai.served_model'] or v['model.path'],
                'base_url': v['model.openai.base_url'],
                'api_key_env': v['model.openai.api_key_env'],
                'timeout_s': v['model.openai.timeout_s'],
                'connect_timeout_s': v['model.openai.connect_timeout_s'],
                'deadline_s': v['model.openai.deadline_s'] or None,
                'max_retries': v['model.openai.max_retries'],
                'retry_delay_s': v['model.openai.retry_delay_s'],
                'max_workers': v['model.openai.max_in_flight'],
                'image_format': v['model.openai.image_format'],
                'vllm_sampling': v['model.openai.vllm_sampling'],
                'max_tokens': v['model.max_new_tokens']}
    return {}


def _cameras(v: Mapping[str, Any]) -> tuple[CameraConfig, ...]:
    cameras = []
    for role in CAMERAS:
        name = f'cameras.{role}.topic'
        topic = v[name]
        if not topic:
            if role == 'front':
                raise ConfigError(f'parameter {name!r} is required, got {topic!r}')
            continue
        _check_topic_name(name, topic)
        if any(c.topic == topic for c in cameras):
            raise ConfigError(f'parameter {name!r}: topic {topic!r} is already used by another '
                              'camera; leave a wrist topic empty for single-view use')
        cameras.append(CameraConfig(role, topic, Transport(v[f'cameras.{role}.transport'])))
    return tuple(cameras)


#: A ROS 2 topic name (design doc "Topic and Service name mapping"): optionally absolute or
#: private (``~``), tokens of letters, digits and underscores not starting with a digit, or
#: ``{substitutions}``, separated by single slashes; no trailing slash.
_TOKEN = r'(?:[A-Za-z_][A-Za-z0-9_]*|\{[A-Za-z_][A-Za-z0-9_]*\})'
_TOPIC = re.compile(rf'(?:~|~/{_TOKEN}(?:/{_TOKEN})*|/?{_TOKEN}(?:/{_TOKEN})*)')


def _check_topic_name(name: str, topic: str) -> None:
    """ROS's topic-name rules, without rclpy (offline tools validate the same files)."""
    if not _TOPIC.fullmatch(topic):
        raise ConfigError(f'parameter {name!r} is not a valid topic name: {topic!r} (letters, '
                          'digits and underscores in tokens separated by single slashes; a '
                          'token must not start with a digit)')


@contextmanager
def _about(*names: str) -> Iterator[None]:
    """Prefix a core config error with the parameters it came from."""
    try:
        yield
    except ConfigError as err:
        raise ConfigError(f'parameter(s) {", ".join(names)}: {err}') from None
