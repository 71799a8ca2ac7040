"""Gymnasium reward wrappers (no ROS): ``pip install .[rl]``. See :mod:`.wrappers`."""

from __future__ import annotations

from .wrappers import GrmRewardConfig, GrmRewardWrapper, GrmVectorRewardWrapper, RewardMode

__all__ = ['GrmRewardConfig', 'GrmRewardWrapper', 'GrmVectorRewardWrapper', 'RewardMode']
