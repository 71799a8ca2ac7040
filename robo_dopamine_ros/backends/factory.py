"""One way to build a product backend by name, for the node and every command.

Backends are imported only when built, so choosing ``openai`` never imports torch and a machine
without vLLM can still use the others. The test double (``ScriptedBackend``) is registered under
:data:`TEST_DOUBLE` for the node's tests and benchmarks only: it is not among the product names
(:data:`BACKEND_NAMES`) that the command line offers. Adding a backend touches this table only.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import TYPE_CHECKING, Any

from ..core.errors import ConfigError

if TYPE_CHECKING:                     # the CLI reads BACKEND_NAMES without importing numpy
    from ..core.types import GrmBackend

#: name -> (module, backend class, config class)
_BACKENDS: dict[str, tuple[str, str, str]] = {
    'transformers': ('transformers_backend', 'TransformersBackend', 'TransformersConfig'),
    'openai': ('openai_backend', 'OpenAIBackend', 'OpenAIConfig'),
    'vllm': ('vllm_backend', 'VllmBackend', 'VllmConfig'),
}
BACKEND_NAMES: tuple[str, ...] = tuple(_BACKENDS)
#: The pixel-digest test double: answers without a model, for tests and benchmarks only.
TEST_DOUBLE = 'scripted-test-double'
#: What the node's ``model.backend`` accepts.
NODE_BACKEND_NAMES: tuple[str, ...] = (*BACKEND_NAMES, TEST_DOUBLE)


def config_class(name: str) -> type:
    """The config dataclass of backend ``name`` (its fields are the accepted options)."""
    if name not in _BACKENDS:
        raise ConfigError(f'unknown backend {name!r}; choose one of {list(BACKEND_NAMES)}')
    module, _, config = _BACKENDS[name]
    return getattr(importlib.import_module(f'{__package__}.{module}'), config)


def make_config(name: str, **options: Any) -> Any:
    """The validated config of backend ``name`` (nothing is loaded).

    Raises:
        ConfigError: Unknown backend or option, or an invalid option value.
    """
    cls = config_class(name)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ConfigError(f'unknown option(s) {unknown} for the {name} backend; '
                          f'valid: {sorted(fields)}')
    try:
        return cls(**options)
    except TypeError as exc:              # a required option (e.g. openai's model) is missing
        raise ConfigError(f'the {name} backend: {exc}') from exc


def make_backend(name: str, **options: Any) -> GrmBackend:
    """Build backend ``name`` from the fields of its config class (the test double takes none).

    Raises:
        ConfigError: Unknown backend or option, or an invalid option value.
        ModelLoadError: The backend's runtime or model cannot be loaded.
    """
    if name == TEST_DOUBLE:
        from .scripted import ScriptedBackend

        return ScriptedBackend()
    config = make_config(name, **options)
    module, backend, _ = _BACKENDS[name]
    return getattr(importlib.import_module(f'{__package__}.{module}'), backend)(config)
