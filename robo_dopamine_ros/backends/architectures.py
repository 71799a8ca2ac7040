"""Which transformers classes run a checkpoint, decided by the checkpoint's own ``config.json``.

The released GRMs are not all one architecture: GRM-3B is a Qwen2.5-VL, the GRM-2.0 previews are
believed to be Qwen3-VL. No name or profile is trusted for that: :func:`read_checkpoint` reads
``model_type`` (and the vision tower's patch and merge sizes, which give the resize factor), and
:func:`model_class`/:func:`processor_class` pick the classes. Anything else is refused, naming the
type found and the supported ones. Importing this module imports neither torch nor transformers.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError, ModelLoadError
from ..core.profiles import (
    ARCHITECTURE_FACTORS,
    GRM_3B,
    CheckpointProfile,
    check_architecture,
    known_profile,
    resolve_profile,
)

logger = logging.getLogger(__name__)

#: model_type -> (model class, config class, processor class) in ``transformers``.
_CLASSES: dict[str, tuple[str, str, str]] = {
    'qwen2_5_vl': ('Qwen2_5_VLForConditionalGeneration', 'Qwen2_5_VLConfig',
                   'Qwen2_5_VLProcessor'),
    'qwen3_vl': ('Qwen3VLForConditionalGeneration', 'Qwen3VLConfig', 'Qwen3VLProcessor'),
}
DEFAULT_MODEL = GRM_3B.model_id


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint's ``config.json`` says about its architecture.

    Attributes:
        model_type: A supported ``model_type``.
        architectures: The ``architectures`` list (informational).
        factor: The vision tower's patch size x spatial merge size (the resize factor).
    """

    model_type: str
    architectures: tuple[str, ...]
    factor: int


def _transformers_attr(name: str) -> type:
    import transformers

    return getattr(transformers, name)


def model_class(architecture: str) -> type:
    """The ``*ForConditionalGeneration`` class of ``architecture`` (imports transformers)."""
    return _transformers_attr(_CLASSES[check_architecture(architecture)][0])


def model_config_class(architecture: str) -> type:
    """The config class of ``architecture`` (imports transformers)."""
    return _transformers_attr(_CLASSES[check_architecture(architecture)][1])


def processor_class(architecture: str) -> type:
    """The processor class of ``architecture`` (imports transformers)."""
    return _transformers_attr(_CLASSES[check_architecture(architecture)][2])


def info_from_config(cfg: dict[str, Any], where: str) -> CheckpointInfo:
    """:class:`CheckpointInfo` from a parsed ``config.json``.

    Raises:
        ModelLoadError: Unsupported ``model_type``, or a resize factor that disagrees with it.
    """
    model_type = cfg.get('model_type')
    try:
        check_architecture(model_type, where)
    except ConfigError as exc:
        raise ModelLoadError(str(exc)) from exc
    vision = cfg.get('vision_config') or {}
    default = ARCHITECTURE_FACTORS[model_type]
    factor = int(vision.get('patch_size', default // 2)) * int(vision.get('spatial_merge_size', 2))
    if factor != default:
        raise ModelLoadError(f'{where}: vision patch_size x spatial_merge_size = {factor!r}, but '
                             f'{model_type!r} checkpoints use {default!r}; unsupported variant')
    return CheckpointInfo(model_type, tuple(cfg.get('architectures') or ()), factor)


def read_checkpoint(model: str, *, local_files_only: bool = True,
                    trust_remote_code: bool = False) -> CheckpointInfo:
    """Read the architecture of ``model`` (a directory, or a hub id in the HF cache).

    transformers' own errors for these cases are long and generic (and for a missing directory
    it may try the hub); the user needs to know which file is missing and how to get it.

    Raises:
        ModelLoadError: Missing directory, no ``config.json``, an unsupported architecture, or a
            hub id that is not cached (with ``local_files_only``) or not reachable.
    """
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(f'model {model!r} is a file; pass the checkpoint directory')
        cfg_file = path / 'config.json'
        if not cfg_file.is_file():
            raise ModelLoadError(f'model directory {model!r} has no config.json, so it is not a '
                                 f'checkpoint; {download_hint()}')
        try:
            cfg = json.loads(cfg_file.read_text())
            if not isinstance(cfg, dict):
                raise ValueError('not a JSON object')
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f'cannot read {str(cfg_file)!r}: {exc}') from exc
        return info_from_config(cfg, f'model {model!r}')
    if looks_like_path(model):
        raise ModelLoadError(f'model directory {model!r} does not exist; {download_hint()}')
    from transformers import AutoConfig

    try:
        cfg_obj = AutoConfig.from_pretrained(model, local_files_only=local_files_only,
                                             trust_remote_code=trust_remote_code)
    except Exception as exc:
        where = 'in the local HF cache' if local_files_only else 'on the hub or in the cache'
        cause = ' '.join(str(exc).split())
        raise ModelLoadError(f'model {model!r} was not found {where}; '
                             f'{download_hint(model)} (cause: {cause})') from exc
    return info_from_config(cfg_obj.to_dict(), f'model {model!r}')


def backend_profile(backend: str, model: str, name: str | None = None,
                    architecture: str | None = None, *, min_pixels: int | None = None,
                    max_pixels: int | None = None) -> CheckpointProfile:
    """The checkpoint profile ``backend`` runs ``model`` with, its geometry settled.

    In-process backends (transformers, vllm): a local checkpoint's ``config.json`` decides the
    architecture (``architecture``, if given, must agree); a hub id keeps its profile's (the
    backend checks the downloaded config when it loads). A served model (openai) has no file
    to read: :func:`served_profile`.

    Raises:
        ConfigError: Unknown profile, a served model of unknown geometry, an ``architecture``
            that contradicts the checkpoint, or invalid pixel bounds.
        ModelLoadError: A local checkpoint of an unsupported architecture or unreadable config.
    """
    bounds = {'min_pixels': min_pixels, 'max_pixels': max_pixels}
    if backend == 'openai':
        return served_profile(model, name, architecture, **bounds)
    found = None
    if (Path(model).expanduser() / 'config.json').is_file():
        found = read_checkpoint(model).model_type
        if architecture not in (None, found):
            raise ConfigError(f'architecture {architecture!r} given, but the config.json of '
                              f'{model!r} says {found!r}')
    return resolve_profile(model, name, architecture=found or architecture, **bounds)


def served_profile(model: str, name: str | None = None, architecture: str | None = None, *,
                   min_pixels: int | None = None,
                   max_pixels: int | None = None) -> CheckpointProfile:
    """The profile of a served model, which has no local ``config.json`` to read.

    Its geometry must be stated: a profile name, a served name that is a known checkpoint, or
    an architecture. Guessing would resize for the wrong patch grid without any error.

    Raises:
        ConfigError: None of the three, or an unsupported architecture / unknown profile.
    """
    if not name and architecture is None and known_profile(model) is None:
        raise ConfigError(
            f'served model {model!r} is not a known GRM checkpoint, so its image geometry is '
            f'unknown: give a checkpoint profile (model.profile / --profile) or its '
            f'architecture (model.architecture / --architecture, one of '
            f'{list(ARCHITECTURE_FACTORS)})')
    return resolve_profile(model, name, architecture=architecture, min_pixels=min_pixels,
                           max_pixels=max_pixels)


def looks_like_path(model: str) -> bool:
    """A hub id is ``owner/name``; anything else that does not exist is a missing directory."""
    return (model.startswith(('/', '.', '~')) or '\\' in model or model.count('/') != 1)


def download_hint(model: str = DEFAULT_MODEL) -> str:
    """How to get a checkpoint directory."""
    return (f'download the checkpoint with `huggingface-cli download {model} --local-dir '
            f'<dir>` and pass that directory as the model')
