"""Start the Robo-Dopamine reward node with a parameter file and optional per-value overrides.

``ros2 launch robo_dopamine_ros reward.launch.py [namespace:=robot1] [model:=/models/GRM-3B]
[device:=cuda:0] [front_topic:=...] [left_topic:=...] [right_topic:=...] [task:='fold the towel']
[goal_image:=/path/goal.png] [params_file:=...] [use_sim_time:=true]``

The YAML file (default: the installed ``config/default.yaml``) is the configuration; a launch
argument overrides its parameter only when given a non-empty value, so an unset argument never
clobbers what the file says (an empty wrist topic, for instance, means "camera absent" and is
set with ``config/single_camera.yaml``, not here). The override dict has to be built after the
arguments are resolved, hence the ``OpaqueFunction``. Camera topics are parameters rather than
remappings because each topic also has a transport (raw or compressed) and may be empty.
"""

from __future__ import annotations

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = 'robo_dopamine_ros'

# launch argument -> (node parameter it overrides when non-empty, description).
OVERRIDES = {
    'model': ('model.path', 'GRM checkpoint: hub id already in the local cache, or a directory'),
    'device': ('model.device', 'torch device, e.g. cuda:0 or cpu'),
    'front_topic': ('cameras.front.topic', 'front camera image topic'),
    'left_topic': ('cameras.left.topic', 'left wrist camera image topic'),
    'right_topic': ('cameras.right.topic', 'right wrist camera image topic'),
    'task': ('task', 'task instruction for the GRM prompt'),
    'goal_image': ('goal_image', 'goal image file (png or jpg)'),
}


def _node(context: LaunchContext) -> list[Node]:
    """Build the node once the launch arguments have values.

    Only non-empty arguments become parameters: the params file stays the single source of
    every value the user did not explicitly override. The values are resolved to plain strings
    here, which launch_ros passes through as strings; a substitution would be YAML-parsed instead
    (a task such as 'yes' or 'put: cup' would turn into a bool or a dict).
    """
    overrides: dict[str, str | bool] = {
        'use_sim_time': LaunchConfiguration('use_sim_time').perform(context) == 'true',
    }
    for argument, (parameter, _) in OVERRIDES.items():
        value = LaunchConfiguration(argument).perform(context)
        if value:
            overrides[parameter] = value
    return [Node(
        package=PACKAGE,
        executable='reward_node',
        name='robo_dopamine',
        namespace=LaunchConfiguration('namespace'),
        parameters=[LaunchConfiguration('params_file'), overrides],
        output='screen',
    )]


def generate_launch_description() -> LaunchDescription:
    """The reward node and its launch arguments."""
    default_params = os.path.join(get_package_share_directory(PACKAGE), 'config', 'default.yaml')
    return LaunchDescription([
        DeclareLaunchArgument(
            'params_file', default_value=default_params,
            description='YAML parameter file of the node (/**: ros__parameters:); see '
                        'config/default.yaml, single_camera.yaml, demo.yaml'),
        DeclareLaunchArgument(
            'namespace', default_value='',
            description='namespace of the node; topics become <namespace>/robo_dopamine/...'),
        DeclareLaunchArgument(
            'use_sim_time', default_value='false', choices=['true', 'false'],
            description='use /clock (bag replay with robo-dopamine play) instead of wall time'),
        *(DeclareLaunchArgument(
            argument, default_value='',
            description=f"{text}; overrides {parameter} ('' = keep the params file value)")
          for argument, (parameter, text) in OVERRIDES.items()),
        OpaqueFunction(function=_node),
    ])
