"""Gymnasium reward wrappers (no ROS): ``pip install .[rl]``. See :mod:`.wrappers`."""

from __future__ import annotations

from .wrappers import (
    LEARNING_ENGINE,
    GrmRewardConfig,
    GrmRewardWrapper,
    GrmVectorRewardWrapper,
    RewardMode,
)

__all__ = ['LEARNING_ENGINE', 'GrmRewardConfig', 'GrmRewardWrapper', 'GrmVectorRewardWrapper',
           'RewardMode']
