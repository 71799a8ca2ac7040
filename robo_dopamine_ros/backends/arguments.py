"""Command-line options that choose and configure a GRM backend, shared by every command.

``bench``, ``episode`` and ``replay`` take the same backend options, so they are declared and
turned into a backend here once. Module-level imports stay light (argparse and the backend
names) so ``robo-dopamine --help`` stays instant.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import TYPE_CHECKING

from .factory import BACKEND_NAMES

if TYPE_CHECKING:
    from ..core.profiles import CheckpointProfile
    from .base import GrmBackend

#: Which command-line values each backend's config takes (None values are left at defaults).
_BACKEND_OPTIONS: dict[str, tuple[str, ...]] = {
    'transformers': ('model', 'device', 'upstream_sampling', 'pixel_limits'),
    'vllm': ('model', 'upstream_sampling', 'pixel_limits', 'max_model_len',
             'gpu_memory_utilization'),
    'openai': ('model', 'upstream_sampling', 'base_url', 'api_key_env', 'max_workers',
               'timeout_s', 'max_retries', 'retry_delay_s', 'image_format'),
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
    parser.add_argument('--max-pixels', type=int, default=None,
                        help='resize frames to at most this many pixels (default: the '
                             "checkpoint profile's, 76800)")
    local = parser.add_argument_group('transformers / vllm')
    local.add_argument('--device', default=None, help="transformers: 'cuda:0' (default), 'cpu'")
    local.add_argument('--max-model-len', type=int, default=None, help='vllm (default 8192)')
    local.add_argument('--gpu-memory-utilization', type=float, default=None,
                       help='vllm (default 0.9)')
    api = parser.add_argument_group('openai (any OpenAI-compatible server)')
    api.add_argument('--base-url', default=None, help='API root incl. /v1')
    api.add_argument('--api-key-env', default=None,
                     help='environment variable holding the key (default OPENAI_API_KEY)')
    api.add_argument('--max-workers', type=int, default=None,
                     help='requests in flight at most (default 8)')
    api.add_argument('--timeout', dest='timeout_s', type=float, default=None,
                     help='seconds per socket operation (default 60)')
    api.add_argument('--max-retries', type=int, default=None, help='attempts per query (5)')
    api.add_argument('--retry-delay', dest='retry_delay_s', type=float, default=None,
                     help='first backoff in seconds, doubling (2.0)')
    api.add_argument('--image-format', choices=('jpeg', 'png'), default=None,
                     help='data-URL encoding (default jpeg, as upstream)')


def backend_from_args(args: argparse.Namespace) -> tuple[GrmBackend, CheckpointProfile]:
    """Build the chosen backend (loads the model) and the checkpoint profile it runs with.

    Raises:
        ConfigError: An invalid option.
        ModelLoadError: The model cannot be loaded.
    """
    from ..core.images import PixelLimits
    from ..core.profiles import GRM_3B, profile_for
    from .factory import make_backend

    profile = profile_for(args.model or GRM_3B.model_id)      # GRM-3B: the local default
    if args.max_pixels is not None:
        limits = PixelLimits(min(profile.pixel_limits.min_pixels, args.max_pixels),
                             args.max_pixels)
        profile = dataclasses.replace(profile, pixel_limits=limits)
    values = {**vars(args), 'pixel_limits': profile.pixel_limits}
    backend = make_backend(args.backend, **{k: values[k] for k in _BACKEND_OPTIONS[args.backend]
                                            if values[k] is not None})
    return backend, profile
