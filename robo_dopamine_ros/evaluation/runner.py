"""The benchmark run: datasets in, upstream's output layout and ``summary_voc.json`` out.

Episodes are evaluated concurrently (``batch_size`` at a time, their queries merged into one
backend batch) and each is written when it finishes: its run dirs, then its record. A rerun
reads the records and skips every episode finished with the same settings, so a run killed
midway resumes where it stopped; failed episodes are retried (fix the data, rerun). The
per-dataset result files and the summary are rebuilt from all records at the end.

``summary_voc.json`` is upstream's ``{meta, summary: {<dataset>: {"voc+", "voc-"}}}`` with the
``meta`` keys of the upstream script whose convention applies (``evaluation_grm.py`` for local
runtimes, ``evaluation_api.py`` for the API), plus an ``extra`` key with what upstream does not
report, per dataset:

* ``episodes``, ``evaluated``, ``failed_episodes`` (name and reason);
* ``voc+``/``voc-`` under both failed-episode conventions (``grm``: counted as 0, ``api``:
  skipped); ``summary`` holds the one of the convention in force;
* ``voc_fused``, ``voc_shuffled``, ``kendall_tau`` (per curve), ``hop_sign_accuracy``
  (``forward``, ``reversed``): means over evaluated episodes;
* ``parse_failure_rate``, ``lenient_parse_rate`` (per reading), ``latency_s_per_query`` (model
  time per query actually sent) and ``queries`` (``sent``, ``reused``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..backends.batching import BatchDispatcher, EpisodeBackend
from ..core.errors import ConfigError
from ..core.profiles import GENERIC, CheckpointProfile
from ..core.types import GrmBackend
from ..files.outputs import write_json
from . import metrics
from .layout import (
    DIRECTIONS,
    EpisodeEntry,
    dataset_names,
    read_dataset,
    read_saved_json,
    record_path,
    result_path,
    run_dir,
)
from .protocol import BenchSettings, evaluate_episode

logger = logging.getLogger(__name__)

EXTRA_CURVES = ('voc+', 'voc-', 'fused', 'shuffled')


@dataclass(frozen=True)
class BenchConfig:
    """One benchmark run.

    Attributes:
        input_json_dir: The benchmark's ``jsons/``.
        base_dir: The benchmark's ``images/``.
        out_root_dir: Where outputs go (and where a rerun finds finished episodes).
        backend: Backend name; names ``pred_<backend>.json`` and picks the default convention.
        model: Model path or name, for the ``meta`` blocks.
        datasets: Dataset names; None evaluates every ``*.json`` in ``input_json_dir``.
        interval: Frames per sampled step (upstream ``--interval``, 30).
        batch_size: Queries per backend call at most, and episodes evaluated concurrently.
        upstream_sampling: Numeric parity with upstream: the backend samples as upstream did
            (the caller configures it) and parsing, short episodes and unreadable answers follow
            the upstream script of the convention (see ``protocol``).
        extra_metrics: Also run the fused and shuffled passes.
        seed: Seed of the shuffled pass's frame order.
        convention: Failed-episode convention of ``summary``; None: ``api`` for the openai
            backend, ``grm`` otherwise (what each upstream script does).
        meta: Extra ``meta`` keys, e.g. an API's ``base_url``/``max_workers``/``max_retries``/
            ``retry_delay`` (never a key or secret).
        show_progress: Draw a progress bar on stderr.
    """

    input_json_dir: Path
    base_dir: Path
    out_root_dir: Path
    backend: str
    model: str
    _: KW_ONLY
    datasets: tuple[str, ...] | None = None
    interval: int = 30
    batch_size: int = 16
    upstream_sampling: bool = False
    extra_metrics: bool = True
    seed: int = 0
    convention: metrics.Convention | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    show_progress: bool = False

    def __post_init__(self) -> None:
        for name in ('interval', 'batch_size'):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f'{name} must be an integer >= 1, got {value!r}')

    @property
    def resolved_convention(self) -> metrics.Convention:
        if self.convention is not None:
            return metrics.Convention(self.convention)
        return metrics.Convention.API if self.backend == 'openai' else metrics.Convention.GRM


def run_benchmark(config: BenchConfig, backend: GrmBackend, profile: CheckpointProfile = GENERIC,
                  on_episode: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Evaluate, resume-aware, and write every output; returns the summary written.

    Args:
        config: The run.
        backend: The model (not closed here).
        profile: Checkpoint profile for the engine (prompt variant, pixel limits).
        on_episode: Called with each newly finished episode's record (progress reporting).

    Raises:
        ConfigError: A dataset index is missing or malformed.
    """
    settings = BenchSettings(config.interval, config.upstream_sampling,
                             config.resolved_convention, config.extra_metrics, config.seed,
                             profile)
    datasets = dataset_names(config.input_json_dir, config.datasets)
    entries = {d: read_dataset(config.input_json_dir, d) for d in datasets}
    unique: dict[Path, EpisodeEntry] = {}
    for dataset_entries in entries.values():
        for entry in dataset_entries:
            unique.setdefault(record_path(config.out_root_dir, entry), entry)
    records: dict[Path, dict[str, Any]] = {}
    todo: list[EpisodeEntry] = []
    for path, entry in unique.items():
        record = read_saved_json(path)
        if (isinstance(record, dict) and record.get('status') == 'ok'
                and record.get('settings') == settings.fingerprint()
                and record.get('name') == entry.name):
            records[path] = record
        else:
            todo.append(entry)
    logger.info('%d episodes: %d finished before, %d to evaluate', len(unique),
                len(unique) - len(todo), len(todo))
    _evaluate(config, settings, backend, todo, records, len(unique), on_episode)
    return _write_summary(config, settings, backend.model_id, entries, records)


def _evaluate(config: BenchConfig, settings: BenchSettings, backend: GrmBackend,
              todo: list[EpisodeEntry], records: dict[Path, dict[str, Any]], total: int,
              on_episode: Callable[[dict[str, Any]], None] | None) -> None:
    dispatcher = BatchDispatcher(backend, config.batch_size)
    stop = threading.Event()

    def episode(entry: EpisodeEntry) -> dict[str, Any] | None:
        with dispatcher.worker():
            ep_backend = EpisodeBackend(dispatcher)
            try:
                outcome = evaluate_episode(entry, config.base_dir, settings, ep_backend)
            except Exception as exc:  # a runtime boundary: one bad episode never ends a run
                logger.error('episode %r of %s failed: %s', entry.name, entry.dataset, exc,
                             exc_info=not isinstance(exc, ConfigError))
                outcome = None
                record = {'name': entry.name, 'task': entry.task, 'status': 'failed',
                          'reason': f'{type(exc).__name__}: {exc}',
                          'settings': settings.fingerprint()}
            finally:
                ep_backend.close()
        if stop.is_set():               # aborted: whatever it computed is not trustworthy
            return None
        if outcome is not None:
            record = outcome.record
            for inverse, items in outcome.items.items():
                folder = run_dir(config.out_root_dir, entry, inverse)
                write_json(folder / 'sample.json',
                           [{k: item[k] for k in ('id', 'task', 'image')} for item in items])
                write_json(folder / f'pred_{config.backend}.json', items)
        write_json(record_path(config.out_root_dir, entry), record)
        return record

    workers = max(1, min(config.batch_size, len(todo)))
    with tqdm(total=total, initial=total - len(todo), unit='episode', desc='bench',
              disable=not config.show_progress) as bar, ThreadPoolExecutor(
                  workers, thread_name_prefix='bench') as pool:
        futures = {pool.submit(episode, entry): entry for entry in todo}
        try:
            for future in as_completed(futures):
                record = future.result()
                if record is None:
                    continue
                records[record_path(config.out_root_dir, futures[future])] = record
                bar.update(1)
                if on_episode is not None:
                    on_episode(record)
        except BaseException:
            stop.set()
            dispatcher.abort()
            for future in futures:
                future.cancel()
            raise


def _write_summary(config: BenchConfig, settings: BenchSettings, model_id: str,
                   entries: dict[str, list[EpisodeEntry]],
                   records: dict[Path, dict[str, Any]]) -> dict[str, Any]:
    convention = settings.convention
    summary: dict[str, dict[str, float]] = {}
    extra: dict[str, dict[str, Any]] = {}
    for dataset, dataset_entries in entries.items():
        recs = [records[record_path(config.out_root_dir, e)] for e in dataset_entries]
        ok = [r for r in recs if r['status'] == 'ok']
        summary[dataset] = {}
        for inverse, key in ((False, 'voc+'), (True, 'voc-')):
            vocs = [r[key] for r in ok]
            num = len(recs) if convention is metrics.Convention.GRM else len(ok)
            avg = sum(vocs) / num if num else 0.0
            meta = {**_result_meta(config, convention, model_id, dataset, inverse),
                    'sum_voc': sum(vocs), 'num_voc': num, 'avg_voc': avg,
                    **_api_meta(config, convention, ('base_url', 'max_workers')),
                    **({'batch_size': config.batch_size}
                       if convention is metrics.Convention.API else {}),
                    **_our_meta(config, convention)}
            folder = config.out_root_dir / dataset / DIRECTIONS[inverse]
            for stale in folder.glob(f'result_interval_{config.interval}_{key}_*.json'):
                stale.unlink()
            write_json(result_path(config.out_root_dir, dataset, inverse, config.interval, avg),
                       {'meta': meta,
                        'results': [{'name': r['name'], 'voc': r[key]} for r in ok]})
            summary[dataset][key] = avg
        extra[dataset] = _extra(recs)
    data = {'meta': _summary_meta(config, convention, model_id, list(entries)),
            'summary': summary, 'extra': extra}
    write_json(config.out_root_dir / 'summary_voc.json', data)
    return data


def _model_key(convention: metrics.Convention) -> str:
    return 'model_name' if convention is metrics.Convention.API else 'model_path'


def _result_meta(config: BenchConfig, convention: metrics.Convention, model_id: str,
                 dataset: str, inverse: bool) -> dict[str, Any]:
    return {_model_key(convention): config.model or model_id, 'interval': config.interval,
            'inverse': inverse,
            'input_json': str((config.input_json_dir / f'{dataset}.json').resolve()),
            'base_dir': str(config.base_dir),
            'out_root': str(config.out_root_dir / dataset / DIRECTIONS[inverse])}


def _summary_meta(config: BenchConfig, convention: metrics.Convention, model_id: str,
                  datasets: list[str]) -> dict[str, Any]:
    api = convention is metrics.Convention.API
    return {_model_key(convention): config.model or model_id,
            **_api_meta(config, convention, ('base_url',)),
            'interval': config.interval, 'input_json_dir': str(config.input_json_dir),
            'base_dir': str(config.base_dir), 'out_root_dir': str(config.out_root_dir),
            'inverse_modes': ['false', 'true'], 'evaluation_list': datasets,
            **({'max_workers': config.meta.get('max_workers'), 'batch_size': config.batch_size,
                'max_retries': config.meta.get('max_retries'),
                'retry_delay': config.meta.get('retry_delay')} if api else {}),
            **_our_meta(config, convention)}


def _api_meta(config: BenchConfig, convention: metrics.Convention,
              keys: tuple[str, ...]) -> dict[str, Any]:
    if convention is not metrics.Convention.API:
        return {}
    return {k: config.meta.get(k) for k in keys}


def _our_meta(config: BenchConfig, convention: metrics.Convention) -> dict[str, Any]:
    """Keys upstream does not write: how these numbers were produced."""
    return {'backend': config.backend, 'upstream_sampling': config.upstream_sampling,
            'convention': convention.value, 'extra_metrics': config.extra_metrics,
            'seed': config.seed}


def _extra(recs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in recs if r['status'] == 'ok']
    failed = [r for r in recs if r['status'] != 'ok']

    def total(group: str, key: str) -> int:
        return sum(r.get(group, {}).get(key, 0) for r in ok)

    signs = {d: [r['hop_sign'][d] for r in ok if 'hop_sign' in r]
             for d in ('forward', 'reversed')}
    seconds = sum(r.get('queries', {}).get('model_seconds', 0.0) for r in ok)
    sent = total('queries', 'sent')
    return {
        'episodes': len(recs), 'evaluated': len(ok),
        'failed_episodes': [{'name': r['name'], 'reason': r['reason']} for r in failed],
        'voc+': metrics.convention_means([r['voc+'] for r in ok], len(failed)),
        'voc-': metrics.convention_means([r['voc-'] for r in ok], len(failed)),
        'voc_fused': metrics.mean([r.get('voc_fused') for r in ok]),
        'voc_shuffled': metrics.mean([r.get('voc_shuffled') for r in ok]),
        'kendall_tau': {c: metrics.mean([r.get('kendall_tau', {}).get(c) for r in ok])
                        for c in EXTRA_CURVES},
        'hop_sign_accuracy': {d: metrics.ratio(sum(c for c, _ in s), sum(t for _, t in s))
                              for d, s in signs.items()},
        'parse_failure_rate': metrics.ratio(total('readings', 'failed'),
                                            total('readings', 'total')),
        'lenient_parse_rate': metrics.ratio(total('readings', 'lenient'),
                                            total('readings', 'total')),
        'latency_s_per_query': seconds / sent if sent else None,
        'queries': {'sent': sent, 'reused': total('queries', 'reused')},
    }
