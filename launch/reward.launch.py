"""Start the Robo-Dopamine reward node with a parameter file and optional per-value overrides.

``ros2 launch robo_dopamine_ros reward.launch.py [namespace:=robot1] [model:=/models/GRM-3B]
[device:=cuda:0] [front_topic:=...] [left_topic:=...] [right_topic:=...] [task:='fold the towel']
[goal_image:=/path/goal.png] [params_file:=...] [use_sim_time:=true] [autostart:=false]``

The YAML file (default: the installed ``config/default.yaml``) is the configuration; a launch
argument overrides its parameter only when given a non-empty value, so an unset argument never
clobbers what the file says (an empty wrist topic, for instance, means "camera absent" and is
set with ``config/single_camera.yaml``, not here; ``use_sim_time`` too is the file's unless
given). The override dict has to be built after the arguments are resolved, hence the
``OpaqueFunction``. Camera topics are parameters rather than remappings because each topic also
has a transport (raw or compressed) and may be empty.

The node is a managed (lifecycle) node. Jazzy's launch_ros ``LifecycleNode`` has no autostart of
its own, so the node's ``autostart`` parameter is set false and this file drives the transitions
with lifecycle events: configure at launch, activate once configure reached inactive. With
``autostart:=false`` nothing is driven: the operator (``ros2 lifecycle set``) or a lifecycle
manager sequences the transitions.
"""

from __future__ import annotations

import os
from typing import Any

from ament_index_python.packages import get_package_share_directory
from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition

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


def _node(context: LaunchContext) -> list[Any]:
    """Build the node (and the events that configure and activate it) once the launch
    arguments have values.

    Only non-empty arguments become parameters: the params file stays the single source of
    every value the user did not explicitly override. The values are resolved to plain strings
    here, which launch_ros passes through as strings; a substitution would be YAML-parsed instead
    (a task such as 'yes' or 'put: cup' would turn into a bool or a dict).
    """
    overrides: dict[str, str | bool] = {'autostart': False}    # the events below drive it
    use_sim_time = LaunchConfiguration('use_sim_time').perform(context)
    if use_sim_time:
        overrides['use_sim_time'] = use_sim_time == 'true'
    for argument, (parameter, _) in OVERRIDES.items():
        value = LaunchConfiguration(argument).perform(context)
        if value:
            overrides[parameter] = value
    node = LifecycleNode(
        package=PACKAGE,
        executable='reward_node',
        name='robo_dopamine',
        namespace=LaunchConfiguration('namespace'),
        parameters=[LaunchConfiguration('params_file'), overrides],
        output='screen',
    )
    if LaunchConfiguration('autostart').perform(context) != 'true':
        return [node]

    def change(transition: int) -> EmitEvent:
        return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                           transition_id=transition))

    return [
        node,
        # Only a configure leads to activate: a later deactivate (also -> inactive) stays so.
        RegisterEventHandler(OnStateTransition(
            target_lifecycle_node=node, start_state='configuring', goal_state='inactive',
            entities=[change(Transition.TRANSITION_ACTIVATE)])),
        change(Transition.TRANSITION_CONFIGURE),
    ]


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
            'use_sim_time', default_value='', choices=['', 'true', 'false'],
            description="use /clock (bag replay with robo-dopamine play) instead of wall time; "
                        "'' = keep the params file value"),
        DeclareLaunchArgument(
            'autostart', default_value='true', choices=['true', 'false'],
            description='configure and activate the node at launch; false: drive the '
                        'lifecycle yourself (ros2 lifecycle set <node> configure|activate)'),
        *(DeclareLaunchArgument(
            argument, default_value='',
            description=f"{text}; overrides {parameter} ('' = keep the params file value)")
          for argument, (parameter, text) in OVERRIDES.items()),
        OpaqueFunction(function=_node),
    ])
