"""What each known GRM checkpoint supports, so adapters never feed one what it was not trained on.

Facts from upstream (docs/upstream.md §2.1, §4.1, §9): GRM-3B was trained with a real goal image
(REF END) and three views (single view works by duplicating the front camera, as upstream's README
does); the GRM-2.0 previews support single/multi view and a blank (grey) goal image. The training
prompt variant of the released checkpoints is unverified; every upstream inference script uses the
backtick (``INFERENCE``) variant, so all profiles use it.

The profile also owns the image geometry (:class:`PixelLimits`: resize factor and pixel bounds),
so the engine, every backend and the benchmarks resize alike. The architecture a profile names is
an assumption until a checkpoint's ``config.json`` is read: :func:`resolve_profile` lets the
checkpoint decide (the backends read the file; this module reads nothing).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import KW_ONLY, dataclass, field
from pathlib import PurePath

from .errors import ConfigError
from .images import PixelLimits, visual_tokens
from .prompt import PromptVariant

log = logging.getLogger(__name__)

#: ``model_type`` of each supported architecture -> its resize factor (patch size x merge size):
#: Qwen2.5-VL 14 px patches merged 2x2, Qwen3-VL 16 px patches merged 2x2.
ARCHITECTURE_FACTORS: dict[str, int] = {'qwen2_5_vl': 28, 'qwen3_vl': 32}
SUPPORTED_ARCHITECTURES: tuple[str, ...] = tuple(ARCHITECTURE_FACTORS)

#: A frame of this size (height, width) is the unit ``robo-dopamine profiles`` prices in tokens.
VGA = (480, 640)


def check_architecture(model_type: str | None, where: str = 'the checkpoint') -> str:
    """``model_type`` if supported, else a ConfigError naming what was found and what is not."""
    if model_type not in ARCHITECTURE_FACTORS:
        raise ConfigError(f'{where} has model_type {model_type!r}, which is not a supported GRM '
                          f'architecture; supported: {list(SUPPORTED_ARCHITECTURES)}')
    return model_type


def geometry(architecture: str, min_pixels: int = 12544, max_pixels: int = 76800) -> PixelLimits:
    """Pixel bounds with ``architecture``'s resize factor."""
    factor = ARCHITECTURE_FACTORS[check_architecture(architecture, 'the profile')]
    return PixelLimits(min_pixels, max_pixels, factor)


@dataclass(frozen=True)
class CheckpointProfile:
    """Capabilities and image geometry of one GRM checkpoint.

    Attributes:
        architecture: The ``model_type`` the checkpoint is believed to have; a local
            checkpoint's ``config.json`` overrides it (:func:`resolve_profile`).
        pixel_limits: Resize factor and pixel bounds every adapter resizes with.
        verified: What is known from a released file or upstream code.
        assumed: What is not (shown by ``robo-dopamine profiles``, so users know what to check).
        answer_prefill: What ``model.answer_prefill: auto`` means: on only for a checkpoint
            shown lossless with it (``robo-dopamine prefill-check``), so off for the released
            ones, whose answers nobody has checked that way.
    """

    name: str
    model_id: str
    _: KW_ONLY
    prompt_variant: PromptVariant = PromptVariant.INFERENCE
    single_view: bool = True        # accepts the front camera duplicated into the wrist slots
    goalless: bool = False          # trained to accept a blank goal image as REF END
    architecture: str = 'qwen2_5_vl'
    pixel_limits: PixelLimits = field(default_factory=PixelLimits)
    verified: tuple[str, ...] = ()
    assumed: tuple[str, ...] = ()
    notes: str = ''
    answer_prefill: bool = False

    def __post_init__(self) -> None:
        check_architecture(self.architecture, f'profile {self.name!r}')
        want = ARCHITECTURE_FACTORS[self.architecture]
        if self.pixel_limits.factor != want:
            raise ConfigError(f'profile {self.name!r}: resize factor {self.pixel_limits.factor!r}'
                              f' does not match {self.architecture!r} (factor {want!r})')

    @property
    def vga_tokens(self) -> int:
        """Visual tokens one 640x480 camera frame costs after resizing (x8 per query)."""
        return visual_tokens(*VGA, self.pixel_limits)

    def with_pixels(self, min_pixels: int | None = None,
                    max_pixels: int | None = None) -> CheckpointProfile:
        """This profile with other pixel bounds (same factor); ``None`` keeps a bound.

        A lower ``max_pixels`` than the profile's ``min_pixels`` lowers the minimum with it.
        """
        if min_pixels is None and max_pixels is None:
            return self
        limits = self.pixel_limits
        hi = limits.max_pixels if max_pixels is None else max_pixels
        lo = min(limits.min_pixels, hi) if min_pixels is None else min_pixels
        return dataclasses.replace(self, pixel_limits=PixelLimits(lo, hi, limits.factor))

    def with_architecture(self, architecture: str) -> CheckpointProfile:
        """This profile for a checkpoint whose ``config.json`` says ``architecture``.

        The bounds are kept, the factor follows the architecture: the file beats the belief.
        """
        check_architecture(architecture)
        if architecture == self.architecture:
            return self
        log.warning('profile %r assumed %r but the checkpoint is %r; using %r geometry',
                    self.name, self.architecture, architecture, architecture)
        limits = geometry(architecture, self.pixel_limits.min_pixels, self.pixel_limits.max_pixels)
        return dataclasses.replace(
            self, architecture=architecture, pixel_limits=limits,
            assumed=(*self.assumed, f'architecture {architecture!r} read from config.json, not '
                                    f'{self.architecture!r} as profiled'))


_UPSTREAM_PIXELS = 'pixels 12544..76800 (upstream inference scripts, docs/upstream.md §2.2)'
_GRM2_ASSUMED = (
    'architecture qwen3_vl (4B/8B are Qwen3-VL sizes; RoboBrain 2.5 base): config.json decides',
    'factor 32 (16 px patches merged 2x2) with the qwen3_vl architecture',
    'pixels 12544..76800 as GRM-3B (a stock Qwen3-VL processor allows 16.7M; '
    'override with model.min_pixels/model.max_pixels or --min-pixels/--max-pixels)',
    'prompt variant INFERENCE (as upstream inference scripts)',
)

GRM_3B = CheckpointProfile(
    'GRM-3B', 'tanhuajie2001/Robo-Dopamine-GRM-3B',
    verified=('architecture qwen2_5_vl (RoboBrain2.0-3B)', 'factor 28', _UPSTREAM_PIXELS,
              'three views and a real goal image (paper, upstream README)'),
    assumed=('prompt variant INFERENCE (training prompt unpublished)',),
    notes='needs a real goal image: offline use the last front frame; online give one')
GRM_8B = CheckpointProfile(
    'GRM-8B', 'tanhuajie2001/Robo-Dopamine-GRM-8B',
    verified=('from RoboBrain-2.0-8B',),
    assumed=('architecture qwen2_5_vl (RoboBrain 2.0-7B base): config.json decides',
             'pixels 12544..76800 as GRM-3B', 'prompt variant INFERENCE'),
    notes='from RoboBrain-2.0-8B; goal-less use not documented, so a goal is required')
GRM_2_8B = CheckpointProfile(
    'GRM-2.0-8B-Preview', 'tanhuajie2001/Robo-Dopamine-GRM-2.0-8B-Preview', goalless=True,
    architecture='qwen3_vl', pixel_limits=geometry('qwen3_vl'),
    verified=('single/multi view, with or without a goal (release note)',),
    assumed=_GRM2_ASSUMED,
    notes='single/multi view, with or without a goal (blank grey goal image)')
GRM_2_4B = CheckpointProfile(
    'GRM-2.0-4B-Preview', 'tanhuajie2001/Robo-Dopamine-GRM-2.0-4B-Preview', goalless=True,
    architecture='qwen3_vl', pixel_limits=geometry('qwen3_vl'),
    verified=('single/multi view, with or without a goal (release note)',),
    assumed=_GRM2_ASSUMED,
    notes='single/multi view, with or without a goal (blank grey goal image)')
#: The small demo GRMs committed under ``robo_dopamine_ros/models/`` (trained on synthetic
#: episodes by ``scripts/train_demo_grm.py``): compact prompt, 12 visual tokens per image
#: (112x84 at factor 28, 128x96 at factor 32).
DEMO_GRM = CheckpointProfile(
    'demo-grm', 'demo_grm', prompt_variant=PromptVariant.COMPACT,
    pixel_limits=PixelLimits(min_pixels=3136, max_pixels=9408),
    verified=('trained here by scripts/train_demo_grm.py',),
    notes='toy model for offline demos on synthetic pick-and-place scenes; not a real GRM')
DEMO_GRM_QWEN3 = CheckpointProfile(
    'demo-grm-qwen3', 'demo_grm_qwen3', prompt_variant=PromptVariant.COMPACT,
    architecture='qwen3_vl', pixel_limits=geometry('qwen3_vl', 4096, 12288),
    verified=('trained here by scripts/train_demo_grm.py --arch qwen3_vl',),
    notes='the demo GRM on a Qwen3-VL tiny model (128x96 images); not a real GRM')
#: For checkpoints we do not know (e.g. a local fine-tune): GRM-3B's conservative contract, with
#: the geometry of the architecture the checkpoint's config.json names.
GENERIC = CheckpointProfile('generic', '', assumed=('everything: GRM-3B rules apply',),
                            notes='unknown checkpoint: GRM-3B rules apply')
GENERIC_QWEN3 = CheckpointProfile(
    'generic-qwen3', '', architecture='qwen3_vl', pixel_limits=geometry('qwen3_vl'),
    assumed=('everything but the architecture: GRM-3B rules, factor 32',),
    notes='unknown Qwen3-VL checkpoint: GRM-3B rules with Qwen3-VL geometry')

PROFILES: dict[str, CheckpointProfile] = {
    p.name: p for p in (GRM_3B, GRM_8B, GRM_2_8B, GRM_2_4B, DEMO_GRM, DEMO_GRM_QWEN3, GENERIC,
                        GENERIC_QWEN3)}
_GENERIC_BY_ARCH = {GENERIC.architecture: GENERIC, GENERIC_QWEN3.architecture: GENERIC_QWEN3}
_KNOWN = (GRM_3B, GRM_8B, GRM_2_8B, GRM_2_4B, DEMO_GRM, DEMO_GRM_QWEN3)


def known_profile(model: str, name: str | None = None) -> CheckpointProfile | None:
    """The profile named ``name``, else the known checkpoint ``model`` is, else ``None``.

    A local directory matches a known checkpoint by its final path component (e.g.
    ``/models/Robo-Dopamine-GRM-3B``).

    Raises:
        ConfigError: ``name`` is not a profile.
    """
    if name:
        if name not in PROFILES:
            raise ConfigError(f'unknown checkpoint profile {name!r}; known: {sorted(PROFILES)}')
        return PROFILES[name]
    base = PurePath(model.rstrip('/')).name.lower()
    for profile in _KNOWN:
        if model == profile.model_id or base == profile.model_id.split('/')[-1].lower():
            return profile
    return None


def profile_for(model: str, name: str | None = None) -> CheckpointProfile:
    """Pick the profile of ``model`` (hub id or local path), or the one named ``name``.

    Anything unknown gets ``GENERIC`` with a warning (use :func:`resolve_profile` when the
    checkpoint's architecture is known).
    """
    return resolve_profile(model, name)


def resolve_profile(model: str, name: str | None = None, *, architecture: str | None = None,
                    min_pixels: int | None = None,
                    max_pixels: int | None = None) -> CheckpointProfile:
    """The profile ``model`` runs with, its architecture and pixel bounds settled.

    Args:
        model: Hub id, local directory or served model name.
        name: An explicit profile name (wins over ``model``'s name).
        architecture: The ``model_type`` from the checkpoint's ``config.json`` (or given for a
            served model): it decides the geometry over what the profile assumed.
        min_pixels: Override of the profile's lower bound (``None``: keep).
        max_pixels: Override of the profile's upper bound (``None``: keep).

    Raises:
        ConfigError: Unknown profile name, unsupported architecture or invalid bounds.
    """
    profile = known_profile(model, name)
    if profile is None:
        if architecture is None:
            log.warning('model %r is not a known GRM checkpoint; using the generic (GRM-3B) '
                        'profile', model)
        profile = _GENERIC_BY_ARCH[check_architecture(architecture or 'qwen2_5_vl')]
    if architecture is not None:
        profile = profile.with_architecture(architecture)
    return profile.with_pixels(min_pixels, max_pixels)
