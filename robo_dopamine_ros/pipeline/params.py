"""The reward node's parameters: one table, one validated config, the node's YAML files.

Every parameter is declared (ros/params.py) from :data:`PARAMS` (name, default, description,
allowed values), so the contract (docs/node-contract.md), the ROS descriptors (``ros2 param
describe``) and the validation cannot drift apart. The node is a managed (lifecycle) node: values
are read and validated by ``configure``, and the node accepts changes only while unconfigured (a
value changed later would silently have no effect, so it is refused); after a failed
``configure`` an operator fixes the value with ``ros2 param set`` and configures again. The task
and the goal change at run time through the node's services.

ROS-free, so offline tools such as bag replay read the same table and YAML files on a machine
without ROS.
"""

from __future__ import annotations

import difflib
import enum
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from ..backends.architectures import backend_profile
from ..backends.factory import NODE_BACKEND_NAMES, TEST_DOUBLE, make_config
from ..backends.transformers_backend import DTYPES
from ..core.engine import EngineConfig, MissingGoal
from ..core.errors import ConfigError
from ..core.image_headers import DEFAULT_MAX_INPUT_PIXELS
from ..core.monitor import MonitorConfig
from ..core.names import CAMERAS, DEFAULT_TOPICS
from ..core.profiles import PROFILES, SUPPORTED_ARCHITECTURES, CheckpointProfile
from ..core.progress import FusionConfig, FusionMethod
from ..core.prompt import check_task
from ..core.sampling import SamplerKind, SamplingConfig
from ..core.shaping import ShapingConfig, TerminalPotential
from ..core.start_goal import DEFAULT_THRESHOLD, StartGoalConfig, StartGoalPolicy
from ..core.types import ALL_MODES, Mode

ParamValue = str | int | float | bool | list[str]

#: The node's name (``ros2 run`` default; launch files keep it).
NODE_NAME = 'robo_dopamine'
_NS_PER_S = 1_000_000_000


class Transport(str, enum.Enum):
    """How a camera is subscribed."""

    RAW = 'raw'                 # sensor_msgs/Image
    COMPRESSED = 'compressed'   # sensor_msgs/CompressedImage (jpeg or png)


class Reliability(str, enum.Enum):
    """Camera subscription reliability."""

    BEST_EFFORT = 'best_effort'   # sensor data: a late frame is dropped, never waited for
    RELIABLE = 'reliable'         # bag replay and tests: every frame arrives


class Trigger(str, enum.Enum):
    """What decides which synchronized samples are scored."""

    INTERVAL = 'interval'   # the engine's header-time sampler, automatically
    SERVICE = 'service'     # only ~/score_transition requests


class StampPolicy(str, enum.Enum):
    """Which time a frame is synchronized, sampled and published on."""

    HEADER = 'header'     # the camera's header stamp
    RECEIVE = 'receive'   # the node's clock at reception (cameras with broken clocks)


def _values(enum_cls: type[enum.Enum]) -> tuple[str, ...]:
    return tuple(m.value for m in enum_cls)


@dataclass(frozen=True)
class Param:
    """One parameter: its default fixes its ROS type; choices and bounds are checked on read.

    ``minimum``/``maximum`` are inclusive unless ``above`` (then the value must exceed
    ``minimum``). When both bounds exist they also become the descriptor's ROS range.
    """

    name: str
    default: ParamValue
    description: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    above: bool = False

    @property
    def constraints(self) -> str:
        """The allowed values in words (the descriptor's ``additional_constraints``)."""
        if self.choices:
            return 'one of: ' + ', '.join(repr(c) for c in self.choices)
        parts = []
        if self.minimum is not None:
            parts.append(f'{">" if self.above else ">="} {self.minimum:g}')
        if self.maximum is not None:
            parts.append(f'<= {self.maximum:g}')
        return ' and '.join(parts)

    def check(self, value: Any) -> ParamValue:
        """Return ``value`` (an int widened to float for a double parameter) or raise.

        Raises:
            ConfigError: Wrong type, not among the choices, or out of bounds; names the
                parameter and the value.
        """
        value = self._typed(value)
        items = value if isinstance(value, list) else [value]
        if self.choices and any(item not in self.choices for item in items):
            raise ConfigError(f'parameter {self.name!r} must be {self.constraints}, '
                              f'got {value!r}')
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            low_ok = self.minimum is None or (
                value > self.minimum if self.above else value >= self.minimum)
            if not low_ok or (self.maximum is not None and value > self.maximum):
                raise ConfigError(f'parameter {self.name!r} must be {self.constraints}, '
                                  f'got {value!r}')
        return value

    def _typed(self, value: Any) -> ParamValue:
        default = self.default
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            value = float(value) if ok else value
        elif isinstance(default, str):
            ok = isinstance(value, str)
        else:
            ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
            value = list(value) if ok else value
        if not ok:
            raise ConfigError(f'parameter {self.name!r} must be of the type of its default '
                              f'{default!r}, got {value!r}')
        return value


def _camera_params() -> list[Param]:
    params = []
    for role in CAMERAS:
        absent = ("required: REF START and the goal come from this view" if role == 'front'
                  else "'' = absent (a missing wrist slot gets the front image)")
        params += [
            Param(f'cameras.{role}.topic', DEFAULT_TOPICS[role], f'{role} camera topic; {absent}'),
            Param(f'cameras.{role}.transport', Transport.RAW.value,
                  f'{role} camera message type: raw (sensor_msgs/Image) or compressed '
                  '(sensor_msgs/CompressedImage, jpeg/png)', choices=_values(Transport)),
        ]
    return params


def _monitor_params() -> list[Param]:
    """``monitor.<field>`` for every field of the task monitor's config (its one table)."""
    return [Param(f'monitor.{f.name}', f.default, f'task monitor: {f.metadata["doc"]}',
                  minimum=f.metadata['minimum'], maximum=f.metadata['maximum'])
            for f in fields(MonitorConfig)]


#: Every parameter of the node, in the order of docs/node-contract.md.
PARAMS: tuple[Param, ...] = (
    *_camera_params(),
    Param('input.max_pixels', DEFAULT_MAX_INPUT_PIXELS,
          'decode budget: an image (camera frame, goal) declaring more pixels is refused '
          'before decoding', minimum=1),
    Param('qos.reliability', Reliability.BEST_EFFORT.value,
          'camera subscription reliability: best_effort (sensor data) or reliable (replay)',
          choices=_values(Reliability)),
    Param('qos.depth', 5, 'camera subscription queue depth', minimum=1, maximum=1000),
    Param('sync.slop_s', 0.05, 'max header-stamp spread of one synchronized set, seconds',
          minimum=0.0, maximum=10.0),
    Param('sync.queue_size', 10, 'frames kept per camera while waiting for a match',
          minimum=1, maximum=1000),
    Param('sampling.interval_s', 1.0, 'header time between scored samples, seconds',
          minimum=0.0, above=True),
    Param('sampling.tolerance_s', 0.01,
          'a frame this much before its grid point still counts, seconds (< interval_s)',
          minimum=0.0),
    Param('trigger', Trigger.INTERVAL.value,
          'interval: score on the header-time grid; service: only ~/score_transition scores',
          choices=_values(Trigger)),
    Param('stamps.policy', StampPolicy.HEADER.value,
          'header: use header stamps; receive: use the reception time instead',
          choices=_values(StampPolicy)),
    Param('stamps.max_age_s', 10.0,
          '|header - receive time| beyond this is reported as badly unsynchronized, seconds',
          minimum=0.0, above=True),
    Param('engine.modes', [m.value for m in ALL_MODES], 'readings requested per step',
          choices=_values(Mode)),
    Param('engine.fusion', FusionMethod.PAPER.value,
          'paper (Eq. 4-8, clamped mean) or upstream (per-mode parity)',
          choices=_values(FusionMethod)),
    Param('engine.consistency', False, 'multi-mode consistency weighting (Eq. 9-11)'),
    Param('engine.alpha', 20.0, 'consistency sharpness alpha', minimum=0.0, above=True),
    Param('engine.missing_goal', MissingGoal.REFUSE.value,
          'without a goal image: refuse to score, or blank (grey goal, backward mode off)',
          choices=_values(MissingGoal)),
    Param('engine.lenient_parse', True, 'accept scores recovered from malformed answers'),
    Param('engine.start_goal_threshold', DEFAULT_THRESHOLD,
          'start ~ goal when less than this fraction of the (grey, 32x24-cell) image differs '
          'between REF START and the goal; 0 = no check', minimum=0.0, maximum=1.0),
    Param('engine.start_goal_policy', StartGoalPolicy.INCREMENTAL.value,
          'fusion of a start ~ goal episode: incremental (that reading alone) or off (warn only)',
          choices=_values(StartGoalPolicy)),
    *_monitor_params(),
    Param('model.backend', 'transformers',
          'GRM runtime: transformers (in-process), vllm (in-process), openai (a served model, '
          'e.g. vllm serve); scripted-test-double answers from a pixel digest (tests only)',
          choices=NODE_BACKEND_NAMES),
    Param('model.path', 'tanhuajie2001/Robo-Dopamine-GRM-3B',
          'hub id (already in the local cache) or checkpoint directory; with openai the '
          'checkpoint the server serves (it selects the profile)'),
    Param('model.load_retry_s', 0.0,
          'a model (or server) that cannot be loaded (reached): 0 = configure fails at once; '
          '> 0 = retry every this many seconds until it loads', minimum=0.0),
    Param('model.profile', '', "checkpoint profile name; '' = derived from model.path",
          choices=('', *PROFILES)),
    Param('model.architecture', '',
          "the checkpoint's model_type (its image geometry); '' = from the checkpoint's "
          'config.json, or the profile; openai needs it unless a profile is known',
          choices=('', *SUPPORTED_ARCHITECTURES)),
    Param('model.min_pixels', 0, "resize images to at least this many pixels; 0 = the "
          "profile's", minimum=0),
    Param('model.max_pixels', 0, "resize images to at most this many pixels; 0 = the "
          "profile's (GRM-2.0: unverified)", minimum=0),
    Param('model.device', 'cuda:0', "torch device: 'cuda:N', 'cuda', 'cpu' or 'auto'"),
    Param('model.dtype', 'auto', 'auto = bfloat16 on CUDA, float32 on CPU', choices=DTYPES),
    Param('model.max_gpu_memory_gib', 0.0, 'cap on GPU memory, GiB; 0 = no cap', minimum=0.0),
    Param('model.release_on_deactivate', False,
          'deactivate also frees the model (GPU memory); activate then loads it again'),
    Param('model.max_new_tokens', 16, 'decode budget per answer (an answer is ~8 tokens)',
          minimum=1, maximum=4096),
    Param('model.upstream_sampling', False,
          "upstream's temperature 0.1 / top-p 0.9 sampling instead of greedy decoding"),
    Param('model.openai.base_url', 'http://127.0.0.1:8000/v1',
          'openai: API root of the OpenAI-compatible server, up to and including /v1'),
    Param('model.openai.served_model', '',
          "openai: the server's model name (vllm --served-model-name); '' = model.path"),
    Param('model.openai.api_key_env', 'OPENAI_API_KEY',
          'openai: environment variable holding the API key (its value is never logged)'),
    Param('model.openai.timeout_s', 10.0,
          'openai: seconds per socket operation of one request', minimum=0.0, above=True),
    Param('model.openai.max_retries', 2,
          'openai: attempts per reading, transient failures only', minimum=1, maximum=100),
    Param('model.openai.retry_delay_s', 0.5,
          'openai: first backoff between attempts, seconds (doubles)', minimum=0.0),
    Param('model.openai.max_in_flight', 8,
          "openai: this node's requests in flight at most (a step's readings go out "
          'concurrently)', minimum=1, maximum=1000),
    Param('model.openai.image_format', 'jpeg',
          'openai: data-URL image encoding, jpeg (as upstream) or png (lossless)',
          choices=('jpeg', 'png')),
    Param('lifecycle.transition_timeout_s', 300.0,
          'bound on configure and activate (model loading and warm-up): past it the transition '
          'fails and the load in flight is cancelled and freed, seconds', minimum=0.0,
          above=True),
    Param('autostart', True,
          'configure and activate by itself at startup (false: a lifecycle manager or '
          '`ros2 lifecycle set` drives the transitions)'),
    Param('task', '', "task instruction; '' = none until ~/set_task"),
    Param('goal_image', '', "goal image file; '' = none (see engine.missing_goal, ~/set_goal)"),
    Param('reward.gamma', 0.99, 'discount per control step', minimum=0.0, maximum=1.0,
          above=True),
    Param('reward.control_period_s', 0.0,
          'control step length, seconds; 0 = one control step per sample', minimum=0.0),
    Param('reward.delta', 0.05, 'success when progress >= 1 - delta', minimum=0.0,
          maximum=0.999),
    Param('reward.terminal_potential', TerminalPotential.ZERO.value,
          'potential of the terminal state: zero (episodic PBRS) or keep',
          choices=_values(TerminalPotential)),
    Param('queue.length', 2, 'samples waiting for the model; beyond it the oldest is dropped',
          minimum=1, maximum=1000),
    Param('diagnostics.period_s', 1.0, '/diagnostics publish period, seconds', minimum=0.0,
          above=True),
    Param('diagnostics.stale_after_s', 1.0,
          'a camera without a frame this long is stale (no reward on its views), seconds',
          minimum=0.0, above=True),
    Param('diagnostics.constant_output_steps', 20,
          'this many identical answers in a row raise a warning', minimum=1, maximum=100000),
)
PARAM_NAMES = frozenset(p.name for p in PARAMS)
PARAMS_BY_NAME = {p.name: p for p in PARAMS}
#: The first parts of this node's dotted names: an undeclared name under one is a typo.
OWN_PREFIXES = frozenset(name.split('.')[0] for name in PARAM_NAMES if '.' in name)
#: Parameters every rclpy node may be given (declared by ROS itself, or meant for it).
ROS_PARAMS = frozenset({'use_sim_time', 'start_type_description_service'})
ROS_PREFIXES = ('qos_overrides.',)


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
        with _about(*(p.name for p in _monitor_params())):
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
            load_retry_s=v['model.load_retry_s'],
            transition_timeout_s=v['lifecycle.transition_timeout_s'],
            release_on_deactivate=v['model.release_on_deactivate'], task=v['task'],
            goal_image=v['goal_image'], queue_length=v['queue.length'],
            diagnostics_period_s=v['diagnostics.period_s'],
            stale_after_s=v['diagnostics.stale_after_s'],
            constant_output_steps=v['diagnostics.constant_output_steps'])


#: The parameters an error of each backend's config is most likely about (for its message).
_BACKEND_PARAMS = {
    'transformers': ('model.path', 'model.device'),
    'vllm': ('model.path', 'model.dtype'),
    'openai': ('model.path', 'model.openai.served_model', 'model.openai.base_url',
               'model.openai.api_key_env'),
}


def _backend_options(backend: str, v: Mapping[str, Any],
                     profile: CheckpointProfile) -> dict[str, Any]:
    """The node parameters as the options of ``backend``'s config class."""
    common = {'upstream_sampling': v['model.upstream_sampling'],
              'pixel_limits': profile.pixel_limits}
    if backend == 'transformers':
        return {**common, 'model': v['model.path'], 'device': v['model.device'],
                'dtype': v['model.dtype'], 'max_new_tokens': v['model.max_new_tokens'],
                'max_gpu_memory_gib': v['model.max_gpu_memory_gib'] or None}
    if backend == 'vllm':
        return {**common, 'model': v['model.path'], 'dtype': v['model.dtype'],
                'max_tokens': v['model.max_new_tokens'], 'architecture': profile.architecture}
    if backend == 'openai':
        return {'upstream_sampling': v['model.upstream_sampling'],
                'model': v['model.openai.served_model'] or v['model.path'],
                'base_url': v['model.openai.base_url'],
                'api_key_env': v['model.openai.api_key_env'],
                'timeout_s': v['model.openai.timeout_s'],
                'max_retries': v['model.openai.max_retries'],
                'retry_delay_s': v['model.openai.retry_delay_s'],
                'max_workers': v['model.openai.max_in_flight'],
                'image_format': v['model.openai.image_format'],
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


def unknown_parameters(names: Iterable[str]) -> list[str]:
    """Check parameter names given to the node against :data:`PARAMS`.

    A name under one of this node's prefixes (``cameras.``, ``model.``, ...) that is not declared
    is a typo that would silently leave the default in force, so it is refused. Any other unknown
    name only earns a warning (returned): a robot-wide params file passes ``/**`` entries meant
    for other nodes.

    Raises:
        ConfigError: Unknown names under this node's prefixes, each with the nearest known name.
    """
    unknown = sorted(n for n in set(names) - PARAM_NAMES - ROS_PARAMS
                     if not n.startswith(ROS_PREFIXES))
    ours = [n for n in unknown if n.split('.')[0] in OWN_PREFIXES]
    if ours:
        raise ConfigError('unknown parameter(s): ' + '; '.join(_did_you_mean(n) for n in ours))
    return [f'{_did_you_mean(n)} (ignored)' for n in unknown]


def _did_you_mean(name: str) -> str:
    close = difflib.get_close_matches(name, sorted(PARAM_NAMES), n=1, cutoff=0.6)
    return f'{name!r}' + (f' (did you mean {close[0]!r}?)' if close else '')


def load_params_file(path: str | Path, node: str = f'/{NODE_NAME}') -> dict[str, Any]:
    """The values a node parameter file gives the node ``node`` (fully qualified name).

    Offline tools (bag replay) read the node's own YAML so that they score with exactly the
    settings the robot uses. As rcl does, only the sections whose key matches the node are taken
    (``/**``, ``robo_dopamine``, ``/robot1/robo_dopamine``, ``/**/robo_dopamine``, ``*`` for one
    name; keys may also nest namespaces), merged in file order; a robot-wide file's sections for
    other nodes are ignored. ROS's own parameters (``use_sim_time``, ...) are dropped. Validate
    the result with :meth:`NodeConfig.from_values`.

    Raises:
        ConfigError: The file is missing, not YAML, has no ``ros__parameters`` section, or none
            for this node.
    """
    try:
        tree = yaml.safe_load(Path(path).read_text(encoding='utf-8'))
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f'cannot read parameter file {str(path)!r}: {err}') from None
    sections = list(_sections(tree, '')) if isinstance(tree, dict) else []
    if not sections:
        raise ConfigError(f'parameter file {str(path)!r} needs entries of the form '
                          "'/**: {ros__parameters: {...}}'")
    matching = [params for key, params in sections if _matches(key, node)]
    if not matching:
        raise ConfigError(f'parameter file {str(path)!r} has no section for node {node!r} '
                          f'(sections: {", ".join(key for key, _ in sections)})')
    values: dict[str, Any] = {}
    for params in matching:
        values.update(flatten(params))
    return {k: v for k, v in values.items()
            if k not in ROS_PARAMS and not k.startswith(ROS_PREFIXES)}


def _sections(tree: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """``(node key, ros__parameters)`` for every node section, nested namespaces joined."""
    for key, value in tree.items():
        if not isinstance(value, Mapping):
            continue
        name = f'{prefix}/{str(key).strip("/")}'
        params = value.get('ros__parameters')
        if isinstance(params, Mapping):
            yield name, params
        else:
            yield from _sections(value, name)


def _matches(key: str, node: str) -> bool:
    """rcl's node-name wildcards: ``*`` is one name, ``**`` any number of them."""
    parts = []
    for token in key.strip('/').split('/'):
        parts.append({'**': r'(/[^/]+)*', '*': r'/[^/]+'}.get(token, '/' + re.escape(token)))
    return re.fullmatch(''.join(parts), '/' + node.strip('/')) is not None


def flatten(tree: Mapping[str, Any], prefix: str = '') -> dict[str, Any]:
    """A nested parameter mapping as dotted names (``{a: {b: 1}}`` -> ``{'a.b': 1}``)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f'{prefix}{key}'
        if isinstance(value, Mapping):
            out.update(flatten(value, f'{name}.'))
        else:
            out[name] = value
    return out
