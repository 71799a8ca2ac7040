"""The learner side of the reward node, without ROS types: join rewards to a learner's transitions.

See :mod:`.link`. An RL node imports it (ROS-free, so it is tested without DDS); the example
consumer node (ros/consumer.py) shares its record type and stamp matching.
"""

from __future__ import annotations

from .link import LinkedReward, LinkStatus, RewardLink, RewardRecord, match_transition, stamp_ns

__all__ = ['LinkStatus', 'LinkedReward', 'RewardLink', 'RewardRecord', 'match_transition',
           'stamp_ns']
