"""Offline result files: append-only JSONL/CSV that survive a killed run, and the plot."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from robo_dopamine_ros.backends.scripted import ScriptedBackend
from robo_dopamine_ros.core.engine import EpisodeEngine, Sample
from robo_dopamine_ros.core.profiles import GRM_3B
from robo_dopamine_ros.offline.plots import plot_results
from robo_dopamine_ros.offline.records import ResultWriter, read_records


def scored(n: int) -> list:
    engine = EpisodeEngine(ScriptedBackend(), profile=GRM_3B)
    engine.start('stack cups', np.full((64, 64, 3), 200, np.uint8))
    return [engine.step(Sample(i * 10**9, np.full((64, 64, 3), 10 * i, np.uint8)))
            for i in range(n)]


def test_offline_records_rows_are_flushed_as_they_are_written(tmp_path: Path) -> None:
    results = scored(3)
    writer = ResultWriter(tmp_path)
    writer.write(results[0], frame='cam_high.mp4#000000')
    writer.write(results[1], frame='cam_high.mp4#000030')
    # not closed yet: a run killed here still leaves two complete rows
    rows = read_records(tmp_path / 'results.jsonl')
    assert [r['step'] for r in rows] == [0, 1] and rows[1]['frame'] == 'cam_high.mp4#000030'
    with (tmp_path / 'results.csv').open() as f:
        assert [r['step'] for r in csv.DictReader(f)] == ['0', '1']
    writer.close()


def test_offline_records_skip_a_truncated_last_line(tmp_path: Path) -> None:
    with ResultWriter(tmp_path) as writer:
        for r in scored(2):
            writer.write(r)
    path = tmp_path / 'results.jsonl'
    path.write_text(path.read_text() + '{"step": 2, "prog', encoding='utf-8')
    assert len(read_records(path)) == 2


def test_offline_plot_writes_a_png(tmp_path: Path) -> None:
    records = [r.to_record() for r in scored(4)]
    out = plot_results(records, tmp_path / 'p.png')
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
