"""The reward node's parameters that give the in-process wrapper's rewards (source c of issue 26).

:func:`node_parameters` turns a :class:`.GrmRewardConfig` into node parameter values: the engine
(readings, fusion, parsing, start ~ goal rule, task monitor), the reward (γ per env step, the
1 s control period the wrapper sets, δ, the terminal rule), a sampling interval of the 1 s
between env steps, and the checkpoint profile by name. It then validates them as the node does
(``NodeConfig.from_values``) and refuses a wrapper setting the node cannot take, so the two
engines are equal but for the sampler (the wrapper scores every env step it is given; the node's
header-time sampler, at 1 s, scores every sample 1 s apart). Not expressible as node parameters,
hence refused: ``upstream_zero`` and ``FusionConfig.accept_lenient`` off (no node parameter),
``score_every_n_steps`` > 1 (the node's sampler would span the steps without the wrapper's
per-step discount rule for unscored steps).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any

from ..core.errors import ConfigError
from ..core.monitor import MonitorConfig
from ..pipeline.params import NodeConfig
from .wrappers import GrmRewardConfig


def node_parameters(config: GrmRewardConfig,
                    model: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Node parameter values for ``config``'s engine and profile, plus ``model``'s (backend,
    path, device ...).

    Raises:
        ConfigError: A setting the node cannot take (module docstring), or ``model`` invalid.
    """
    if config.score_every_n_steps != 1:
        raise ConfigError(f'score_every_n_steps {config.score_every_n_steps} has no node '
                          'equivalent: the node scores every 1 s sample')
    engine = config.engine
    fusion, shaping = engine.fusion, engine.shaping
    values: dict[str, Any] = {
        'engine.modes': [m.value for m in fusion.modes],
        'engine.fusion': fusion.method.value,
        'engine.consistency': fusion.consistency,
        'engine.alpha': fusion.alpha,
        'engine.lenient_parse': engine.lenient_parse,
        'engine.missing_goal': engine.missing_goal.value,
        'engine.start_goal_threshold': engine.start_goal.threshold,
        'engine.start_goal_policy': engine.start_goal.policy.value,
        **{f'monitor.{f.name}': getattr(engine.monitor, f.name) for f in fields(MonitorConfig)},
        'reward.gamma': shaping.gamma,
        'reward.control_period_s': shaping.control_period_s,
        'reward.delta': shaping.delta,
        'reward.terminal_potential': shaping.terminal_potential.value,
        'sampling.interval_s': 1.0,
        'model.profile': config.profile.name,
        'task': config.task,
        **(model or {}),
    }
    node = NodeConfig.from_values(values)
    differs = [f.name for f in fields(engine)
               if f.name != 'sampling' and getattr(node.engine, f.name) != getattr(engine, f.name)]
    if node.profile != replace(config.profile, model_id=node.profile.model_id):
        differs.append('profile')
    if differs:
        raise ConfigError(f'the node cannot run this wrapper setting: {", ".join(differs)} '
                          'would differ')
    return values
