"""Robo-Dopamine process reward for ROS 2: the GRM core, backends, offline tools and the node.

The top-level package imports nothing heavy and never imports ROS, so the offline tools work on a
machine without ROS. The colcon build installs the generated ``msg``/``srv`` modules beside it.
"""

__version__ = '0.1.0'
