"""The reward node's parameter table: every parameter's name, default, description and allowed
values, in one place.

Every parameter is declared (ros/params.py) from :data:`PARAMS`, so the contract
(docs/node-contract.md), the ROS descriptors (``ros2 param describe``) and the validation
(:meth:`Param.check`; assembled by pipeline/params.py) cannot drift apart. ROS-free: offline tools
read it too.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields
from typing import Any

from ..backends.factory import NODE_BACKEND_NAMES
from ..backends.prefill import PREFILL_MODES
from ..backends.transformers_config import DTYPES
from ..core.engine import MissingGoal
from ..core.errors import ConfigError
from ..core.image_headers import DEFAULT_MAX_INPUT_PIXELS
from ..core.monitor import MonitorConfig
from ..core.names import CAMERAS, DEFAULT_TOPICS
from ..core.profiles import PROFILES, SUPPORTED_ARCHITECTURES
from ..core.progress import FusionMethod
from ..core.shaping import TerminalPotential
from ..core.start_goal import DEFAULT_THRESHOLD, StartGoalPolicy
from ..core.types import ALL_MODES, Mode

ParamValue = str | int | float | bool | list[str]

#: The node's name (``ros2 run`` default; launch files keep it).
NODE_NAME = 'robo_dopamine'


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
    ``startup_only``: read when the node is constructed, so a later change could not take
    effect; it is declared read-only and ROS refuses changes.
    """

    name: str
    default: ParamValue
    description: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    above: bool = False
    startup_only: bool = False

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


def monitor_params() -> list[Param]:
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
          "header: use header stamps; receive: the node's clock at reception instead (sim "
          'time under use_sim_time; frames before the first /clock are dropped)',
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
    *monitor_params(),
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
    Param('model.cpu_threads', 0,
          'CPU threads in-process inference may use (torch intra-op and OpenCV pools); 0 = '
          'half the cores, leaving the rest to the robot', minimum=0, maximum=1024),
    Param('model.dtype', 'auto', 'auto = bfloat16 on CUDA, float32 on CPU', choices=DTYPES),
    Param('model.max_gpu_memory_gib', 0.0,
          'cap on GPU memory, GiB; 0 = no cap (vllm: on a CPU build the KV cache, required; on '
          'CUDA the share of the GPU, docs/setup.md)', minimum=0.0),
    Param('model.release_on_deactivate', False,
          'deactivate also frees the model (GPU memory); activate then loads it again'),
    Param('model.max_new_tokens', 16, 'decode budget per answer (an answer is ~8 tokens)',
          minimum=1, maximum=4096),
    Param('model.upstream_sampling', False,
          "upstream's temperature 0.1 / top-p 0.9 sampling instead of greedy decoding"),
    Param('model.answer_prefill', 'auto',
          "prefill the answer head '<score' and stop after the number; auto = the checkpoint "
          "profile's (off for released ones); check with robo-dopamine prefill-check first; "
          "openai: needs a vLLM server (continue_final_message)", choices=PREFILL_MODES),
    Param('model.confidence', False,
          "transformers: also score the model's distribution over the score of every reading "
          '(one more prompt forward and one over 21 candidate answers per query), published on '
          '~/confidence'),
    Param('model.openai.base_url', 'http://127.0.0.1:8000/v1',
          'openai: API root of the OpenAI-compatible server, up to and including /v1'),
    Param('model.openai.served_model', '',
          "openai: the server's model name (vllm --served-model-name); '' = model.path"),
    Param('model.openai.api_key_env', 'OPENAI_API_KEY',
          'openai: environment variable holding the API key (its value is never logged)'),
    Param('model.openai.timeout_s', 10.0,
          'openai: read/write timeout of one attempt, seconds (how long the server may compute; '
          'a read timeout is final, never retried)', minimum=0.0, above=True),
    Param('model.openai.connect_timeout_s', 2.0,
          'openai: timeout of opening a connection, seconds', minimum=0.0, above=True),
    Param('model.openai.deadline_s', 0.0,
          'openai: bound on one reading from the call to its answer (queueing, attempts and '
          'backoff included), seconds; 0 = twice timeout_s', minimum=0.0),
    Param('model.openai.max_retries', 2,
          'openai: attempts per reading in all; only connection failures and HTTP 429/503 are '
          'retried', minimum=1, maximum=100),
    Param('model.openai.retry_delay_s', 0.5,
          'openai: backoff before the second attempt, seconds (doubles, jittered; a server\'s '
          'Retry-After wins)', minimum=0.0),
    Param('model.openai.max_in_flight', 8,
          "openai: this node's requests in flight at most (a step's readings go out "
          'concurrently)', minimum=1, maximum=1000),
    Param('model.openai.image_format', 'jpeg',
          'openai: data-URL image encoding, jpeg (as upstream) or png (lossless)',
          choices=('jpeg', 'png')),
    Param('model.openai.vllm_sampling', True,
          "openai: send vLLM's sampling fields too (top_k, min_p, repetition_penalty), so the "
          "served checkpoint's generation_config.json cannot change decoding; false for APIs "
          'that refuse unknown fields'),
    Param('lifecycle.transition_timeout_s', 300.0,
          'bound on configure and activate (model loading and warm-up): past it the transition '
          'fails and the load in flight is cancelled and freed, seconds', minimum=0.0,
          above=True),
    Param('autostart', True,
          'configure and activate by itself at startup (false: a lifecycle manager or '
          '`ros2 lifecycle set` drives the transitions); startup only', startup_only=True),
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
    Param('diagnostics.period_s', 1.0, '/diagnostics publish period, seconds; startup only',
          minimum=0.0, above=True, startup_only=True),
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
