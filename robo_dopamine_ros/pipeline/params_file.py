"""The reward node's parameter names as given to it: unknown names (a typo is refused, another
node's parameter only warned about) and the node's YAML files, read as rcl reads them.

ROS-free: bag replay reads the robot's own YAML on a machine without ROS.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from ..core.errors import ConfigError
from .param_table import NODE_NAME, OWN_PREFIXES, PARAM_NAMES, ROS_PARAMS, ROS_PREFIXES

#: How close (difflib's ratio) an unknown name must be to one of ours to count as its typo.
TYPO_CUTOFF = 0.85


def unknown_parameters(names: Iterable[str], named: Iterable[str] = ()) -> list[str]:
    """Check parameter names given to the node against the table (param_table.py).

    A name under one of this node's prefixes (``cameras.``, ``model.``, ...) that is not declared
    is a typo that would silently leave the default in force, so it is refused; so is a name in
    ``named`` (given in a params-file section addressed to this node by name) that is a near
    miss of one of ours (``sampling_interval_s``). Any other unknown name only earns a warning
    (returned): a robot-wide params file passes ``/**`` entries meant for other nodes.

    Raises:
        ConfigError: Such names, each with the nearest known name.
    """
    unknown = sorted(n for n in set(names) - PARAM_NAMES - ROS_PARAMS
                     if not n.startswith(ROS_PREFIXES))
    addressed = set(named)
    ours = [n for n in unknown if n.split('.')[0] in OWN_PREFIXES
            or (n in addressed and _nearest(n, TYPO_CUTOFF))]
    if ours:
        raise ConfigError('unknown parameter(s): ' + '; '.join(_did_you_mean(n) for n in ours))
    return [f'{_did_you_mean(n)} (ignored)' for n in unknown]


def _nearest(name: str, cutoff: float = 0.6) -> str | None:
    close = difflib.get_close_matches(name, sorted(PARAM_NAMES), n=1, cutoff=cutoff)
    return close[0] if close else None


def _did_you_mean(name: str) -> str:
    close = _nearest(name)
    return f'{name!r}' + (f' (did you mean {close!r}?)' if close else '')


def named_parameters(path: str | Path, node: str) -> set[str]:
    """The parameter names a params file gives ``node`` in sections addressed to it by name
    (``robo_dopamine``, ``/robot1/robo_dopamine``, ``/**/robo_dopamine``), not only through a
    wildcard (``/**``) that also reaches other nodes. An unreadable file gives none (rcl has
    already refused it)."""
    try:
        tree = yaml.safe_load(Path(path).read_text(encoding='utf-8'))
    except (OSError, yaml.YAMLError):
        return set()
    if not isinstance(tree, Mapping):
        return set()
    return {name for key, params in _sections(tree, '')
            if key.rstrip('/').rsplit('/', 1)[-1] not in ('*', '**') and _matches(key, node)
            for name in flatten(params)}


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
