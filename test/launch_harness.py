"""Strict stand-ins for ``launch`` / ``launch_ros`` (Jazzy): run a launch file without them.

Neither package can be installed from the registries CI can reach, so ``ros2 launch`` cannot run
there. This harness loads a real ``*.launch.py`` against stand-in modules, resolves its launch
arguments like ``ros2 launch`` would, and turns each ``launch_ros.actions.Node`` into the command
line launch_ros would execute, so a test can start the real executable and inspect the real ROS
graph. The stand-ins are strict, because a permissive fake would pass a launch file that fails
on the robot:

* each class takes exactly the constructor arguments of its Jazzy original (``Node`` with the
  keyword arguments it forwards to ``ExecuteProcess`` / ``ExecuteLocal`` / ``Action``); any other
  keyword raises ``TypeError``, as the real one does;
* only the classes below exist; importing another one raises ``ImportError`` (check the real API,
  then add it here);
* command lines follow launch_ros' ``Node`` (``_perform_substitutions`` / ``execute``):
  ``<exe> [arguments] [--ros-args <ros_arguments>] --ros-args -r __node:=<name> -r __ns:=<ns>
  --params-file <file>... -r <from>:=<to>...``, a parameter dict written to a YAML file keyed by
  the fully qualified node name;
* stricter than ``ros2 launch`` in one place: a value for an undeclared argument is an error, so
  a typo in a test cannot go unnoticed.

What stays untested: the real launch/launch_ros code (event handling, process supervision,
``output`` routing, the temporary file location) and ``ros2 launch`` itself.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import yaml
from ament_index_python.packages import get_package_prefix
from rclpy.validate_namespace import validate_namespace
from rclpy.validate_node_name import validate_node_name

OUTPUTS = ('log', 'screen', 'both', 'own_log')


class SubstitutionFailure(Exception):  # noqa: N818 (the real name)
    """``launch.substitutions.SubstitutionFailure``: a substitution could not be performed."""


class LaunchContext:
    """``launch.LaunchContext``: holds the launch configurations (argument values)."""

    def __init__(self, *, argv: Sequence[str] | None = None,
                 noninteractive: bool = False) -> None:
        self.argv = list(argv or [])
        self.noninteractive = noninteractive
        self.launch_configurations: dict[str, str] = {}


class Substitution:
    """``launch.Substitution``: a value known only once the launch runs."""

    def perform(self, context: LaunchContext) -> str:
        """Resolve to text; every subclass defines it."""
        raise NotImplementedError


def perform(value: object, context: LaunchContext) -> str:
    """Text of a ``SomeSubstitutionsType`` value (str, substitution, or a sequence of them)."""
    if isinstance(value, str):
        return value
    if isinstance(value, Substitution):
        return value.perform(context)
    if isinstance(value, Sequence):
        return ''.join(perform(part, context) for part in value)
    raise TypeError(f'expected str or substitution(s), got {value!r}')


class LaunchConfiguration(Substitution):
    """``launch.substitutions.LaunchConfiguration(variable_name, *, default=None)``."""

    def __init__(self, variable_name: object, *, default: object = None) -> None:
        self.variable_name = variable_name
        self.default = default

    def perform(self, context: LaunchContext) -> str:
        """The argument's value, else the default; real launch raises the same error."""
        name = perform(self.variable_name, context)
        if name in context.launch_configurations:
            return context.launch_configurations[name]
        if self.default is None:
            raise SubstitutionFailure(f'launch configuration {name!r} does not exist')
        return perform(self.default, context)


class Action:
    """``launch.Action(*, condition=None)``."""

    def __init__(self, *, condition: Any = None) -> None:
        self.condition = condition

    def execute(self, context: LaunchContext) -> list[Any] | None:
        """What the action yields when visited (nothing by default)."""
        return None


class LaunchDescription:
    """``launch.LaunchDescription(initial_entities=None, *, deprecated_reason=None)``."""

    def __init__(self, initial_entities: Iterable[Any] | None = None, *,
                 deprecated_reason: str | None = None) -> None:
        self.entities = list(initial_entities or [])
        self.deprecated_reason = deprecated_reason


class DeclareLaunchArgument(Action):
    """``launch.actions.DeclareLaunchArgument(name, *, default_value, description, choices)``."""

    def __init__(self, name: str, *, default_value: object = None,
                 description: str | None = None, choices: list[str] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if choices is not None and not choices:
            raise RuntimeError('Provided choices arg is empty. '
                               'Use None to ignore the choice list.')
        if (choices is not None and isinstance(default_value, str)
                and default_value not in choices):
            raise RuntimeError(f'Provided default_value "{default_value}" is not in provided '
                               f'choices "{choices}".')
        self.name = name
        self.default_value = default_value
        self.description = description
        self.choices = choices

    def execute(self, context: LaunchContext) -> None:
        """Apply the default and check the choices, with the real action's errors."""
        if self.name not in context.launch_configurations:
            if self.default_value is None:
                raise RuntimeError(f'Required launch argument "{self.name}" was not provided.')
            context.launch_configurations[self.name] = perform(self.default_value, context)
        value = context.launch_configurations[self.name]
        if self.choices is not None and value not in self.choices:
            raise RuntimeError(f'Argument "{self.name}" provided value "{value}" is not valid. '
                               f'Valid options are: {self.choices}')


class OpaqueFunction(Action):
    """``launch.actions.OpaqueFunction(*, function, args=None, kwargs=None)``."""

    def __init__(self, *, function: Callable[..., Any], args: Iterable[Any] | None = None,
                 kwargs: dict[str, Any] | None = None, **left_over_kwargs: Any) -> None:
        super().__init__(**left_over_kwargs)
        if not callable(function):
            raise TypeError(f"OpaqueFunction expected a callable for 'function', got "
                            f'{type(function)!r}')
        self.function = function
        self.args = list(args or [])
        self.kwargs = dict(kwargs or {})

    def execute(self, context: LaunchContext) -> list[Any] | None:
        """Call the function with the context, as the real action does."""
        return self.function(context, *self.args, **self.kwargs)


class _ExecuteProcess(Action):
    """The keyword arguments ``Node`` forwards to ``ExecuteProcess`` and ``ExecuteLocal``."""

    def __init__(self, *, cmd: list[Any], prefix: object = None, name: object = None,
                 cwd: object = None, env: Mapping[str, object] | None = None,
                 additional_env: Mapping[str, object] | None = None, shell: bool = False,
                 sigterm_timeout: object = 5, sigkill_timeout: object = 5,
                 emulate_tty: bool = False, output: object = 'log',
                 output_format: str = '[{this.process_description.final_name}] {line}',
                 cached_output: bool = False, log_cmd: bool = False, on_exit: object = None,
                 respawn: object = False, respawn_delay: float | None = None,
                 respawn_max_retries: int = -1, **kwargs: Any) -> None:
        # Accepted for the signature only: process handling is not emulated.
        super().__init__(**kwargs)
        self.cmd = cmd
        self.output = output


@dataclass(frozen=True)
class ResolvedNode:
    """A launch_ros ``Node`` after substitution: what ``ros2 launch`` would execute."""

    name: str
    namespace: str
    command: list[str]
    parameter_files: list[Path]

    @property
    def fully_qualified_name(self) -> str:
        """``/<ns>/<name>``, the key launch_ros gives dict parameters in their YAML file."""
        return f"{self.namespace.rstrip('/')}/{self.name}"


class Node(_ExecuteProcess):
    """``launch_ros.actions.Node`` (Jazzy signature); ``resolve`` builds its command line."""

    def __init__(self, *, executable: object, package: object = None, name: object = None,
                 namespace: object = None, exec_name: object = None,
                 parameters: list[Any] | None = None, remappings: Iterable[Any] | None = None,
                 ros_arguments: Iterable[Any] | None = None,
                 arguments: Iterable[Any] | None = None, **kwargs: Any) -> None:
        if parameters is not None and not isinstance(parameters, list):
            raise TypeError(f"'parameters' of Node must be a list, got {type(parameters)!r}")
        super().__init__(cmd=[], name=exec_name, **kwargs)
        self.executable = executable
        self.package = package
        self.node_name = name
        self.node_namespace = namespace
        self.parameters = list(parameters or [])
        self.remappings = list(remappings or [])
        self.ros_arguments = list(ros_arguments or [])
        self.arguments = list(arguments or [])

    def resolve(self, context: LaunchContext, workdir: Path) -> ResolvedNode:
        """The command line, parameter dicts written as YAML files into ``workdir``."""
        if self.node_name is None:
            raise NotImplementedError('the harness needs an explicit node name')
        if perform(self.output, context) not in OUTPUTS:
            raise ValueError(f'output must be one of {OUTPUTS}, got {self.output!r}')
        executable = perform(self.executable, context)
        if self.package is not None:
            package = perform(self.package, context)
            executable = str(Path(get_package_prefix(package)) / 'lib' / package / executable)
            if not os.access(executable, os.X_OK):
                raise SubstitutionFailure(f'executable {executable!r} not found')
        name = perform(self.node_name, context)
        validate_node_name(name)
        namespace = '' if self.node_namespace is None else perform(self.node_namespace, context)
        namespace = '/' + namespace.strip('/')   # launch_ros: prefix_namespace + make absolute
        validate_namespace(namespace)
        command = [executable, *(perform(a, context) for a in self.arguments)]
        if self.ros_arguments:
            command += ['--ros-args', *(perform(a, context) for a in self.ros_arguments)]
        command += ['--ros-args', '-r', f'__node:={name}', '-r', f'__ns:={namespace}']
        resolved = ResolvedNode(name, namespace, command, [])
        for i, entry in enumerate(self.parameters):
            if isinstance(entry, Mapping):
                path = workdir / f'launch_params_{name}_{i}.yaml'
                content = {resolved.fully_qualified_name: {'ros__parameters': flatten(entry)}}
                path.write_text(yaml.dump(content, default_flow_style=False))
            else:
                path = Path(perform(entry, context))
                if not path.is_file():
                    raise FileNotFoundError(f'parameter file {str(path)!r} does not exist')
            resolved.parameter_files.append(path)
            command += ['--params-file', str(path)]
        for source, target in self.remappings:
            command += ['-r', f'{perform(source, context)}:={perform(target, context)}']
        return resolved


def flatten(parameters: Mapping[str, Any], prefix: str = '') -> dict[str, Any]:
    """launch_ros' ``normalize_parameter_dict`` for literal values: nested keys joined by '.'."""
    flat: dict[str, Any] = {}
    for key, value in parameters.items():
        if not isinstance(key, str):
            raise TypeError(f'parameter names must be str here, got {key!r}')
        name = f'{prefix}{key}'
        if isinstance(value, Mapping):
            flat.update(flatten(value, f'{name}.'))
        elif isinstance(value, (str, bool, int, float, bytes)):
            flat[name] = value
        elif isinstance(value, Sequence) and all(
                isinstance(v, (str, bool, int, float)) for v in value):
            flat[name] = list(value)
        else:
            raise TypeError(f'Unexpected type for parameter value {value!r}')
    return flat


def _module(name: str, **attributes: object) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    return module


@contextmanager
def stand_in_modules() -> Iterator[None]:
    """Register the stand-ins as ``launch``, ``launch.actions``, ... while the block runs."""
    modules = {
        'launch': _module('launch', LaunchContext=LaunchContext,
                          LaunchDescription=LaunchDescription, Action=Action,
                          Substitution=Substitution),
        'launch.actions': _module('launch.actions', DeclareLaunchArgument=DeclareLaunchArgument,
                                  OpaqueFunction=OpaqueFunction),
        'launch.substitutions': _module('launch.substitutions',
                                        LaunchConfiguration=LaunchConfiguration,
                                        SubstitutionFailure=SubstitutionFailure),
        'launch_ros': _module('launch_ros'),
        'launch_ros.actions': _module('launch_ros.actions', Node=Node),
    }
    modules['launch'].actions = modules['launch.actions']
    modules['launch'].substitutions = modules['launch.substitutions']
    modules['launch_ros'].actions = modules['launch_ros.actions']
    with mock.patch.dict(sys.modules, modules):
        yield


def load_launch_description(path: Path) -> LaunchDescription:
    """Import a launch file against the stand-ins and call its ``generate_launch_description``."""
    with stand_in_modules():
        spec = importlib.util.spec_from_file_location(f'launch_file_{path.stem}', path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        description = module.generate_launch_description()
    if not isinstance(description, LaunchDescription):
        raise TypeError(f'generate_launch_description returned {description!r}')
    return description


def declared_arguments(description: LaunchDescription) -> dict[str, DeclareLaunchArgument]:
    """The arguments ``ros2 launch --show-args`` lists (top-level declarations)."""
    return {e.name: e for e in description.entities if isinstance(e, DeclareLaunchArgument)}


def resolve(description: LaunchDescription, arguments: Mapping[str, str],
            workdir: Path) -> list[ResolvedNode]:
    """Visit the description with the given argument values; the nodes it would start."""
    unknown = set(arguments) - set(declared_arguments(description))
    if unknown:
        raise ValueError(f'undeclared launch arguments: {sorted(unknown)!r}')
    context = LaunchContext()
    context.launch_configurations.update(arguments)
    nodes: list[ResolvedNode] = []

    def visit(entities: Iterable[Any]) -> None:
        for entity in entities:
            if not isinstance(entity, Action):
                raise TypeError(f'not a launch action the harness knows: {entity!r}')
            if entity.condition is not None and not entity.condition.evaluate(context):
                continue
            if isinstance(entity, Node):
                nodes.append(entity.resolve(context, workdir))
            else:
                visit(entity.execute(context) or [])

    visit(description.entities)
    return nodes


def start(node: ResolvedNode, env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start a resolved node, its output into ``log`` (a file never fills up like a pipe)."""
    with log.open('wb') as out:
        return subprocess.Popen(node.command, cwd=log.parent, env=dict(env), stdout=out,
                                stderr=subprocess.STDOUT)


def ros_environment(repo_root: Path, domain_id: int) -> dict[str, str]:
    """The environment ``scripts/env.sh`` gives (venv + install/), DDS on loopback, own domain."""
    if not (repo_root / 'install' / 'setup.bash').is_file():
        raise RuntimeError('no colcon install/: run `make setup` (scripts/build.sh) first')
    base = {k: v for k, v in os.environ.items() if k != '_ROS_WHEELS_BOOTSTRAP_COMPLETE'}
    proc = subprocess.run(['bash', '-c', '. scripts/env.sh >&2 && env -0'], cwd=repo_root,
                          env=base, capture_output=True, timeout=60, check=True)
    env = dict(item.split('=', 1) for item in proc.stdout.decode().split('\0') if '=' in item)
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env['ROS_DOMAIN_ID'] = str(domain_id)
    return env
