"""The node's parameter table and its validation (pipeline/params.py), without DDS."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from robo_dopamine_ros.backends.threads import bound_cpu_threads, default_cpu_threads
from robo_dopamine_ros.core.errors import ConfigError
from robo_dopamine_ros.core.profiles import GRM_2_4B, GRM_3B
from robo_dopamine_ros.core.progress import FusionMethod
from robo_dopamine_ros.core.sampling import SamplerKind
from robo_dopamine_ros.core.shaping import TerminalPotential
from robo_dopamine_ros.core.types import ALL_MODES, Mode
from robo_dopamine_ros.pipeline.params import (
    PARAMS,
    NodeConfig,
    Reliability,
    StampPolicy,
    Transport,
    Trigger,
)
from robo_dopamine_ros.pipeline.params_file import named_parameters, unknown_parameters
from robo_dopamine_ros.ros.params import descriptor


def _contract_defaults(repo_root: Path) -> dict[str, str]:
    """Name -> default cell of the parameter table in docs/node-contract.md."""
    text = (repo_root / 'docs' / 'node-contract.md').read_text()
    rows = re.findall(r'^\| ([a-z_.{},]+) \| ([^|]*) \|', text, flags=re.MULTILINE)
    table: dict[str, str] = {}
    for name, default in rows[1:]:      # the first row is the header
        group = re.search(r'\{([^}]*)\}', name)
        names = ([name.replace(group.group(0), part) for part in group.group(1).split(',')]
                 if group else [name])
        table.update(dict.fromkeys(names, default.strip()))
    return table


def _as_cell(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return '[' + ', '.join(value) + ']'
    return "''" if value == '' else str(value)


def test_node_params_match_the_contract_table(repo_root: Path) -> None:
    contract = _contract_defaults(repo_root)
    ours = {p.name: _as_cell(p.default) for p in PARAMS}
    # engine.alpha is named inside the engine.consistency row rather than in a row of its own.
    assert set(ours) - set(contract) == {'engine.alpha'}
    assert {name: ours[name] for name in contract} == contract


def test_node_params_descriptors_have_ranges_and_choices() -> None:
    by_name = {p.name: p for p in PARAMS}
    gamma = descriptor(by_name['reward.gamma'])
    # Not read-only: fixed while unconfigured, then configure again (the node refuses later).
    assert not gamma.read_only and gamma.additional_constraints == '> 0 and <= 1'
    assert (gamma.floating_point_range[0].from_value,
            gamma.floating_point_range[0].to_value) == (0.0, 1.0)
    depth = descriptor(by_name['qos.depth'])
    assert (depth.integer_range[0].from_value, depth.integer_range[0].to_value) == (1, 1000)
    trigger = descriptor(by_name['trigger'])
    assert trigger.additional_constraints == "one of: 'interval', 'service'"
    assert not trigger.integer_range and not trigger.floating_point_range
    assert all(descriptor(p).description for p in PARAMS)


def test_node_config_defaults() -> None:
    cfg = NodeConfig.from_values({})
    assert [(c.role, c.topic, c.transport) for c in cfg.cameras] == [
        ('front', '/cam_high/image_raw', Transport.RAW),
        ('left', '/cam_left_wrist/image_raw', Transport.RAW),
        ('right', '/cam_right_wrist/image_raw', Transport.RAW)]
    assert (cfg.reliability, cfg.qos_depth, cfg.trigger, cfg.stamp_policy) == (
        Reliability.BEST_EFFORT, 5, Trigger.INTERVAL, StampPolicy.HEADER)
    assert (cfg.sync_slop_ns, cfg.sync_queue_size, cfg.max_age_ns) == (
        50_000_000, 10, 10_000_000_000)
    sampling = cfg.engine.sampling
    assert (sampling.kind, sampling.interval_s, sampling.tolerance_s) == (
        SamplerKind.HEADER_TIME, 1.0, 0.01)
    assert cfg.engine.fusion.modes == ALL_MODES
    assert cfg.engine.fusion.method is FusionMethod.PAPER and not cfg.engine.fusion.consistency
    assert cfg.engine.lenient_parse
    shaping = cfg.engine.shaping
    assert (shaping.gamma, shaping.control_period_s, shaping.delta,
            shaping.terminal_potential) == (0.99, None, 0.05, TerminalPotential.ZERO)
    assert cfg.backend == 'transformers' and cfg.profile is GRM_3B
    options = cfg.backend_options
    assert (options['model'], options['device'], options['dtype'], options['max_new_tokens'],
            options['max_gpu_memory_gib']) == (
        'tanhuajie2001/Robo-Dopamine-GRM-3B', 'cuda:0', 'auto', 16, None)
    assert (cfg.task, cfg.goal_image, cfg.queue_length) == ('', '', 2)
    assert (cfg.diagnostics_period_s, cfg.stale_after_s, cfg.constant_output_steps) == (
        1.0, 1.0, 20)


def test_node_config_reads_overrides() -> None:
    cfg = NodeConfig.from_values({
        'cameras.left.topic': '', 'cameras.right.transport': 'compressed',
        'sampling.interval_s': 2, 'engine.modes': ['forward', 'backward'],
        'model.backend': 'scripted-test-double', 'model.profile': 'GRM-2.0-4B-Preview',
        'reward.control_period_s': 0.1, 'model.max_gpu_memory_gib': 4.0, 'trigger': 'service',
        'task': 'fold the towel'})
    assert [(c.role, c.transport) for c in cfg.cameras] == [
        ('front', Transport.RAW), ('right', Transport.COMPRESSED)]
    assert cfg.engine.sampling.interval_s == 2.0
    assert cfg.engine.fusion.modes == (Mode.FORWARD, Mode.BACKWARD)
    assert cfg.backend == 'scripted-test-double' and cfg.backend_options == {}
    assert cfg.profile is GRM_2_4B and cfg.trigger is Trigger.SERVICE
    assert cfg.engine.shaping.control_period_s == 0.1 and cfg.task == 'fold the towel'
    gib = NodeConfig.from_values({'model.max_gpu_memory_gib': 4.0}).backend_options
    assert gib['max_gpu_memory_gib'] == 4.0


def test_node_config_builds_every_backend_from_one_registry() -> None:
    served = NodeConfig.from_values({
        'model.backend': 'openai', 'model.openai.served_model': 'grm-3b',
        'model.openai.base_url': 'http://10.0.0.7:8000/v1', 'model.openai.image_format': 'png',
        'model.openai.max_in_flight': 3, 'model.openai.timeout_s': 2.0,
        'model.openai.deadline_s': 5.0, 'model.openai.vllm_sampling': False})
    assert served.backend_options == {
        'model': 'grm-3b', 'base_url': 'http://10.0.0.7:8000/v1', 'api_key_env': 'OPENAI_API_KEY',
        'timeout_s': 2.0, 'connect_timeout_s': 2.0, 'deadline_s': 5.0, 'max_retries': 2,
        'retry_delay_s': 0.5, 'max_workers': 3, 'image_format': 'png', 'max_tokens': 16,
        'upstream_sampling': False, 'answer_prefill': False, 'vllm_sampling': False}
    unnamed = NodeConfig.from_values({'model.backend': 'openai'})
    assert unnamed.backend_options['model'] == 'tanhuajie2001/Robo-Dopamine-GRM-3B'
    assert unnamed.backend_options['deadline_s'] is None      # 0: the backend's 2 x timeout_s
    vllm = NodeConfig.from_values({'model.backend': 'vllm', 'model.path': '/models/grm'})
    assert (vllm.backend, vllm.backend_options['model']) == ('vllm', '/models/grm')
    capped = NodeConfig.from_values({'model.backend': 'vllm', 'model.device': 'cpu',
                                     'model.max_gpu_memory_gib': 0.5}).backend_options
    assert (capped['device'], capped['max_memory_gib']) == ('cpu', 0.5)
    assert vllm.backend_options['max_memory_gib'] is None         # 0: no cap
    with pytest.raises(ConfigError, match=r'model\.device.*device must be'):
        NodeConfig.from_values({'model.backend': 'vllm', 'model.device': 'gpu0'})
    # answer prefill: auto follows the profile (off for every released checkpoint), on forces it
    assert vllm.backend_options['answer_prefill'] is False
    forced = NodeConfig.from_values({'model.backend': 'vllm', 'model.answer_prefill': 'on'})
    assert forced.backend_options['answer_prefill'] is True
    with pytest.raises(ConfigError, match='answer_prefill'):
        NodeConfig.from_values({'model.answer_prefill': 'maybe'})
    with pytest.raises(ConfigError, match=r'model\.openai\.base_url.*base_url must be an http'):
        NodeConfig.from_values({'model.backend': 'openai', 'model.openai.base_url': 'gpu:8000'})


@pytest.mark.parametrize(('values', 'match'), [
    ({'qos.reliability': 'sometimes'},
     "parameter 'qos.reliability' must be one of: 'best_effort', 'reliable', got 'sometimes'"),
    ({'qos.depth': 0}, "parameter 'qos.depth' must be >= 1 and <= 1000, got 0"),
    ({'qos.depth': 2.5}, "parameter 'qos.depth' must be of the type of its default 5, got 2.5"),
    ({'reward.gamma': 0.0}, "parameter 'reward.gamma' must be > 0 and <= 1, got 0.0"),
    ({'sampling.interval_s': -1.0}, "'sampling.interval_s' must be > 0, got -1.0"),
    ({'engine.modes': ['forward', 'sideways']}, "'engine.modes' must be one of: 'incremental'"),
    ({'engine.modes': ['forward', 'forward']},
     'parameter.s. engine.modes, engine.fusion, engine.consistency, engine.alpha: '
     'modes must not repeat'),
    ({'engine.consistency': True, 'engine.modes': ['incremental', 'forward']},
     'engine.modes.*needs the forward and backward modes'),
    ({'sampling.tolerance_s': 2.0},
     r'sampling.interval_s, sampling.tolerance_s: tolerance_s must be in \[0, interval_s=1.0\)'),
    ({'cameras.front.topic': ''}, "parameter 'cameras.front.topic' is required, got ''"),
    ({'cameras.left.topic': 'bad topic!'},
     "parameter 'cameras.left.topic' is not a valid topic name"),
    ({'cameras.right.topic': '/cam_high/image_raw'},
     "parameter 'cameras.right.topic': topic '/cam_high/image_raw' is already used"),
    ({'model.device': 'gpu'}, "model.path, model.device: device must be .*got 'gpu'"),
    ({'model.path': ''}, "model.path, model.device: model must be a hub id or a directory"),
    ({'model.profile': 'GRM-9B'}, "'model.profile' must be one of: '', 'GRM-3B'"),
    ({'task': 'look at <image>'}, "parameter.s. task: task 'look at <image>' contains"),
    ({'nope': 1}, r"unknown parameter\(s\) \['nope'\]"),
])
def test_node_config_rejects_bad_values_naming_the_parameter(values: dict[str, object],
                                                             match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        NodeConfig.from_values(values)


def test_node_config_model_path_may_be_empty_for_the_test_double() -> None:
    cfg = NodeConfig.from_values({'model.backend': 'scripted-test-double', 'model.path': ''})
    assert cfg.backend_options == {}


def test_node_params_a_near_miss_in_a_section_named_for_the_node_is_refused(
        tmp_path: Path) -> None:
    """``sampling_interval_s`` under ``robo_dopamine:`` is a typo of ours; under ``/**`` it may
    be another node's parameter and only earns a warning."""
    path = tmp_path / 'params.yaml'
    path.write_text('/**:\n  ros__parameters:\n    camera_fps: 30\n    queue_lenght: 3\n'
                    'robo_dopamine:\n  ros__parameters:\n    sampling_interval_s: 0.2\n'
                    '    vendor_option: 1\n'
                    '/other_node:\n  ros__parameters:\n    autostrat: true\n')
    named = named_parameters(path, '/robo_dopamine')
    assert named == {'sampling_interval_s', 'vendor_option'}
    assert named_parameters(path, '/robot1/robo_dopamine') == set()   # not its namespace
    given = {'camera_fps', 'queue_lenght', 'sampling_interval_s', 'vendor_option'}
    with pytest.raises(ConfigError, match=re.escape(
            "'sampling_interval_s' (did you mean 'sampling.interval_s'?)")) as refused:
        unknown_parameters(given, named)
    assert 'vendor_option' not in str(refused.value)       # not near any name of ours
    warned = unknown_parameters(given)                       # no section named for the node
    assert "'queue_lenght' (did you mean 'queue.length'?) (ignored)" in warned


def test_node_params_read_at_construction_are_read_only() -> None:
    by_name = {p.name: p for p in PARAMS}
    assert {p.name for p in PARAMS if p.startup_only} == {'autostart', 'diagnostics.period_s'}
    assert descriptor(by_name['autostart']).read_only
    assert not descriptor(by_name['reward.gamma']).read_only


def test_node_cpu_threads_bound_torch_and_opencv() -> None:
    import cv2
    import torch

    before = torch.get_num_threads(), cv2.getNumThreads()
    try:
        assert bound_cpu_threads(1, 'transformers') == 1
        assert (torch.get_num_threads(), cv2.getNumThreads()) == (1, 1)
        assert bound_cpu_threads(0, 'openai') == default_cpu_threads()
    finally:
        torch.set_num_threads(before[0])
        cv2.setNumThreads(before[1])
    assert [default_cpu_threads(n) for n in (1, 2, 16)] == [1, 1, 8]   # cores left to the robot
    assert NodeConfig.from_values({'model.cpu_threads': 3}).cpu_threads == 3
