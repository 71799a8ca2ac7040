"""Command-line options that choose and configure a GRM backend, shared by every command.

``bench``, ``episode`` and ``replay`` take the same backend options, so they are declared and
turned into a backend here once. Module-level imports stay light (argparse and the backend
names) so ``robo-dopamine --help`` stays instant.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from .factory import BACKEND_NAMES

if TYPE_CHECKING:
    from ..core.profiles import CheckpointProfile
    from ..core.types import GrmBackend

#: Which command-line values each backend's config takes (None values are left at defaults).
_BACKEND_OPTIONS: dict[str, tuple[str, ...]] = {
    'transformers': ('model', 'device', 'upstream_sampling', 'pixel_limits', 'confidence'),
    'vllm': ('model', 'device', 'upstream_sampling', 'pixel_limits', 'architecture',
             'max_model_len', 'max_memory_gib'),
    'openai': ('model', 'upstream_sampling', 'base_url', 'api_key_env', 'max_workers',
               'timeout_s', 'deadline_s', 'max_retries', 'retry_delay_s', 'image_format'),
}


def add_backend_arguments(parser: argparse.ArgumentParser, *, required: bool = False,
                          upstream_help: str = "upstream's sampled decoding (temperature 0.1, "
                                               'top-p 0.9) instead of greedy') -> None:
    """Add ``--backend`` (default transformers unless ``required``), ``--model`` and the
    options of each backend, in one group per backend."""
    parser.add_argument('--backend', required=required, choices=BACKEND_NAMES,
                        default=None if required else 'transformers',
                        help=None if required else 'GRM runtime (default: %(default)s)')
    parser.add_argument('--model', default=None,
                        help='checkpoint dir / cached hub id (transformers, vllm; default GRM-3B) '
                             'or served model name (openai, required)')
    parser.add_argument('--upstream-sampling', action='store_true', help=upstream_help)
    parser.add_argument('--profile', default=None,
                        help='checkpoint profile name (robo-dopamine profiles); default: the '
                             'known checkpoint --model names, else generic')
    parser.add_argument('--architecture', default=None,
                        help="openai: the served model's model_type, e.g. qwen3_vl (its image "
                             'geometry), needed unless --profile or a known --model name gives '
                             "it; transformers/vllm read it from the checkpoint's config.json")
    parser.add_argument('--min-pixels', type=int, default=None,
                        help='resize frames to at least this many pixels (default: the '
                             "checkpoint profile's, 12544)")
    parser.add_argument('--max-pixels', type=int, default=None,
                        help='resize frames to at most this many pixels (default: the '
                             "checkpoint profile's, 76800)")
    local = parser.add_argument_group('transformers / vllm')
    local.add_argument('--device', default=None,
                       help="transformers: 'cuda:0' (default), 'cpu'; vllm: 'auto' (default), "
                            "checked against the vLLM build")
    local.add_argument('--confidence', action='store_true',
                       help="transformers: also score the model's distribution over the score "
                            '(<mode>_confidence_* result columns; costs model time)')
    local.add_argument('--max-model-len', type=int, default=None, help='vllm (default 8192)')
    local.add_argument('--max-memory-gib', type=float, default=None,
                       help="vllm: on CPU the KV cache's size, on CUDA the engine's share of "
                            "the GPU (default: vLLM's, 90 %% of a GPU)")
    api = parser.add_argument_group('openai (any OpenAI-compatible server)')
    api.add_argument('--base-url', default=None, help='API root incl. /v1')
    api.add_argument('--api-key-env', default=None,
                     help='environment variable holding the key (default OPENAI_API_KEY)')
    api.add_argument('--max-workers', type=int, default=None,
                     help='requests in flight at most (default 8)')
    api.add_argument('--timeout', dest='timeout_s', type=float, default=None,
                     help='read timeout of one attempt in seconds (default 60)')
    api.add_argument('--deadline', dest='deadline_s', type=float, default=None,
                     help='seconds per reading, retries included (default 2 x --timeout)')
    api.add_argument('--max-retries', type=int, default=None, help='attempts per query (5)')
    api.add_argument('--retry-delay', dest='retry_delay_s', type=float, default=None,
                     help='first backoff in seconds, doubling (2.0)')
    api.add_argument('--image-format', choices=('jpeg', 'png'), default=None,
                     help='data-URL encoding (default jpeg, as upstream)')


def backend_from_args(args: argparse.Namespace) -> tuple[GrmBackend, CheckpointProfile]:
    """Build the chosen backend (loads the model) and the checkpoint profile it runs with.

    The profile's geometry comes from the checkpoint's ``config.json`` (transformers, vllm) or,
    for a served model (openai), from ``--profile``, a known ``--model`` name or
    ``--architecture``.

    Raises:
        ConfigError: An invalid option, or a served model of unknown geometry.
        ModelLoadError: The model cannot be loaded (or its architecture is not supported).
    """
    from .factory import make_backend

    profile = profile_from_args(args)
    values = {**vars(args), 'pixel_limits': profile.pixel_limits,
              'architecture': profile.architecture}
    backend = make_backend(args.backend, **{k: values[k] for k in _BACKEND_OPTIONS[args.backend]
                                            if values[k] is not None})
    return backend, profile


def profile_from_args(args: argparse.Namespace) -> CheckpointProfile:
    """The checkpoint profile of ``--backend``/``--model``/``--profile``/``--architecture`` and
    the pixel overrides (nothing is loaded; a local checkpoint's ``config.json`` is read).

    Raises:
        ConfigError: Unknown profile, a served model of unknown geometry, an ``--architecture``
            that contradicts the checkpoint, or invalid pixel bounds.
        ModelLoadError: The checkpoint is missing or of an unsupported architecture.
    """
    from ..core.profiles import GRM_3B
    from .architectures import backend_profile

    model = args.model or ('' if args.backend == 'openai' else GRM_3B.model_id)
    return backend_profile(args.backend, model, args.profile, args.architecture,
                           min_pixels=args.min_pixels, max_pixels=args.max_pixels)
