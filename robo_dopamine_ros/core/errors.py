"""Domain errors: callers catch these, never a bare ``Exception``."""

from __future__ import annotations


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
