"""Domain errors: callers catch these, never a bare ``Exception``."""

from __future__ import annotations

import enum
from typing import TypeVar

E = TypeVar('E', bound=enum.Enum)


class GrmError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(GrmError, ValueError):
    """A setting or argument has an invalid value; the message names it and the value."""


class ModelLoadError(GrmError):
    """A GRM checkpoint could not be loaded; the message says what to do."""


class ImageError(GrmError, ValueError):
    """An image cannot be converted to the RGB uint8 array the GRM needs."""


class StampError(GrmError, ValueError):
    """A sample's timestamp is zero, or does not increase within an episode."""


class BackendError(GrmError):
    """A backend failed to answer a batch as a whole (e.g. it was stopped)."""


class BackendStoppedError(BackendError):
    """The backend was asked to stop (shutdown): the call was interrupted, nothing failed."""


def coerce_enum(obj: object, name: str, enum_cls: type[E]) -> E:
    """Set field ``name`` of frozen dataclass ``obj`` to its ``enum_cls`` member, or raise.

    Lets configs accept plain strings (YAML, ROS parameters, CLI) with one clear error.
    """
    value = getattr(obj, name)
    try:
        member = enum_cls(value)
    except ValueError:
        raise ConfigError(f'{name} must be one of {[m.value for m in enum_cls]}, '
                          f'got {value!r}') from None
    object.__setattr__(obj, name, member)
    return member
