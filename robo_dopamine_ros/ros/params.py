"""The node's parameters on ROS: declared from the one table (pipeline/param_table.py).

The table, its validation and :class:`NodeConfig` are ROS-free (bag replay reads them too); this
module only puts them on an rclpy node and reads them back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException

from ..core.errors import ConfigError
from ..pipeline.param_table import PARAMS, Param
from ..pipeline.params import NodeConfig
from ..pipeline.params_file import named_parameters, unknown_parameters

if TYPE_CHECKING:
    from rclpy.node import Node


def descriptor(param: Param) -> ParameterDescriptor:
    """What ``ros2 param describe`` shows: description, constraints in words, ROS range."""
    out = ParameterDescriptor(description=param.description,
                              additional_constraints=param.constraints,
                              read_only=param.startup_only)
    if param.minimum is not None and param.maximum is not None:
        if isinstance(param.default, int):
            out.integer_range = [IntegerRange(
                from_value=int(param.minimum), to_value=int(param.maximum), step=0)]
        else:
            out.floating_point_range = [FloatingPointRange(
                from_value=float(param.minimum), to_value=float(param.maximum), step=0.0)]
    return out


def declare(node: Node, params_files: Sequence[str] = ()) -> None:
    """Declare every parameter of :data:`PARAMS` on ``node`` (its constructor).

    Unknown names among the node's overrides are checked by :func:`unknown_parameters` (with the
    names ``params_files`` give in sections addressed to this node by name); its warnings are
    logged.

    Raises:
        ConfigError: A parameter override has the wrong type or is out of the descriptor's
            range (ROS's own checks, reported the same way as ours), or an unknown name under
            our prefixes.
    """
    # rclpy keeps the overrides (command line, params files, constructor) only in this private
    # attribute; a name that is never declared would otherwise be dropped without a word.
    node_name = node.get_fully_qualified_name()
    named = {name for path in params_files for name in named_parameters(path, node_name)}
    for warning in unknown_parameters(getattr(node, '_parameter_overrides', {}), named):
        node.get_logger().warning(f'unknown parameter {warning}')
    try:
        node.declare_parameters('', [(p.name, p.default, descriptor(p)) for p in PARAMS])
    except InvalidParameterTypeException as err:
        raise ConfigError(f'{err}; give a value of the declared type '
                          '(e.g. 1.0, not 1, for a floating-point parameter)') from None
    except InvalidParameterValueException as err:
        raise ConfigError(str(err)) from None


def read(node: Node) -> NodeConfig:
    """The node's current parameter values, validated (``configure``).

    Raises:
        ConfigError: A value is invalid; the message names the parameter and the value.
    """
    return NodeConfig.from_values({p.name: node.get_parameter(p.name).value for p in PARAMS})
