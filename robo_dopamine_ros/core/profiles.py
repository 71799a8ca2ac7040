"""What each known GRM checkpoint supports, so adapters never feed one what it was not trained on.

Facts from the spec (§2.1, §4.1 item 6, §9): GRM-3B was trained with a real goal image (REF END)
and three views (single view works by duplicating the front camera, as upstream's README does);
the GRM-2.0 previews support single/multi view and a blank (grey) goal image. The training prompt
variant of the released checkpoints is unverified; every upstream inference script uses the
backtick (``INFERENCE``) variant, so all profiles use it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import PurePath

from .errors import ConfigError
from .images import PixelLimits
from .prompt import PromptVariant

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckpointProfile:
    """Capabilities of one GRM checkpoint."""

    name: str
    model_id: str
    prompt_variant: PromptVariant = PromptVariant.INFERENCE
    single_view: bool = True        # accepts the front camera duplicated into the wrist slots
    goalless: bool = False          # trained to accept a blank goal image as REF END
    pixel_limits: PixelLimits = field(default_factory=PixelLimits)
    notes: str = ''


GRM_3B = CheckpointProfile(
    'GRM-3B', 'tanhuajie2001/Robo-Dopamine-GRM-3B',
    notes='needs a real goal image: offline use the last front frame; online give one')
GRM_8B = CheckpointProfile(
    'GRM-8B', 'tanhuajie2001/Robo-Dopamine-GRM-8B',
    notes='from RoboBrain-2.0-8B; goal-less use not documented, so a goal is required')
GRM_2_8B = CheckpointProfile(
    'GRM-2.0-8B-Preview', 'tanhuajie2001/Robo-Dopamine-GRM-2.0-8B-Preview', goalless=True,
    notes='single/multi view, with or without a goal (blank grey goal image)')
GRM_2_4B = CheckpointProfile(
    'GRM-2.0-4B-Preview', 'tanhuajie2001/Robo-Dopamine-GRM-2.0-4B-Preview', goalless=True,
    notes='single/multi view, with or without a goal (blank grey goal image)')
#: The small demo GRM committed under ``robo_dopamine_ros/models/demo_grm`` (trained on synthetic
#: episodes by ``scripts/train_demo_grm.py``): compact prompt, 112x84 images (12 tokens each).
DEMO_GRM = CheckpointProfile(
    'demo-grm', 'demo_grm', prompt_variant=PromptVariant.COMPACT,
    pixel_limits=PixelLimits(min_pixels=3136, max_pixels=9408),
    notes='toy model for offline demos on synthetic pick-and-place scenes; not a real GRM')
#: For checkpoints we do not know (e.g. a local fine-tune): GRM-3B's conservative contract.
GENERIC = CheckpointProfile('generic', '', notes='unknown checkpoint: GRM-3B rules apply')

PROFILES: dict[str, CheckpointProfile] = {
    p.name: p for p in (GRM_3B, GRM_8B, GRM_2_8B, GRM_2_4B, DEMO_GRM, GENERIC)}


def profile_for(model: str, name: str | None = None) -> CheckpointProfile:
    """Pick the profile of ``model`` (hub id or local path), or the one named ``name``.

    A local directory matches a known checkpoint by its final path component (e.g.
    ``/models/Robo-Dopamine-GRM-3B``); anything else gets ``GENERIC`` with a warning.
    """
    if name:
        if name not in PROFILES:
            raise ConfigError(f'unknown checkpoint profile {name!r}; known: {sorted(PROFILES)}')
        return PROFILES[name]
    base = PurePath(model.rstrip('/')).name.lower()
    for profile in (GRM_3B, GRM_8B, GRM_2_8B, GRM_2_4B, DEMO_GRM):
        if model == profile.model_id or base == profile.model_id.split('/')[-1].lower():
            return profile
    log.warning('model %r is not a known GRM checkpoint; using the generic (GRM-3B) profile',
                model)
    return GENERIC
