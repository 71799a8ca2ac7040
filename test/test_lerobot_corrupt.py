"""relabel-lerobot on corrupt or inconsistent datasets: one clear line, exit 1, nothing written.

Each case corrupts a copy of a small synthetic dataset and runs the command line as a user
would (a served backend at an address nothing listens on: every case must be refused before a
model is asked). The error names the file at fault, and no output, sidecar, resume folder or
dataset copy is left behind.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

pa = pytest.importorskip('pyarrow')
pytest.importorskip('av')

import pyarrow.parquet as pq  # noqa: E402
from test_lerobot_outputs import two_episodes  # noqa: E402

from robo_dopamine_ros.cli import main  # noqa: E402
from robo_dopamine_ros.lerobot.synthetic_dataset import LEROBOT_KEYS  # noqa: E402

TOP = LEROBOT_KEYS['front']
DATA = 'data/chunk-000/file-000.parquet'
EPISODES = 'meta/episodes/chunk-000/file-000.parquet'
VIDEO = f'videos/{TOP}/chunk-000/file-001.mp4'


@pytest.fixture(scope='module')
def pristine(tmp_path_factory) -> Path:
    return two_episodes(tmp_path_factory.mktemp('pristine') / 'ds', 12)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def _edit_info(**changes: object) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        path = root / 'meta' / 'info.json'
        info = json.loads(path.read_text())
        info.update(changes)
        for key, value in changes.items():
            if value is None:
                del info[key]
        path.write_text(json.dumps(info))
    return edit


def _edit_episodes(column: str, value: object) -> Callable[[Path], None]:
    def edit(root: Path) -> None:
        table = pq.read_table(root / EPISODES)
        i = table.schema.get_field_index(column)
        pq.write_table(table.set_column(i, column, pa.array([value] * table.num_rows,
                                                            table.schema.field(i).type)),
                       root / EPISODES)
    return edit


CASES = {
    'truncated data file': (lambda r: _truncate(r / DATA), [], DATA),
    'truncated episode metadata': (lambda r: _truncate(r / EPISODES), [], EPISODES),
    'data file not parquet': (lambda r: (r / DATA).write_text('{}'), [], DATA),
    'info.json not JSON': (lambda r: (r / 'meta/info.json').write_text('{"fps": 1'), [],
                           'meta/info.json'),
    'info.json without fps': (_edit_info(fps=None), [], 'meta/info.json'),
    'info.json without video_path': (_edit_info(video_path=None), [], 'meta/info.json'),
    'episode count mismatch': (_edit_info(total_episodes=5), [], 'meta/info.json'),
    'episode index range mismatch': (_edit_episodes('dataset_from_index', 3), [], DATA),
    'episode length mismatch': (_edit_episodes('length', 20), [], DATA),
    'missing episode column': (
        lambda r: pq.write_table(pq.read_table(r / EPISODES).drop_columns(['length']),
                                 r / EPISODES), [], "'length'"),
    'missing video file': (lambda r: (r / VIDEO).unlink(), [], VIDEO),
    'missing data file': (lambda r: (r / DATA).unlink(), [], DATA),
    'unknown camera key': (lambda r: None, ['--left', 'observation.images.wrist'],
                           'observation.images.wrist'),
    'truncated tasks file': (lambda r: _truncate(r / 'meta/tasks.parquet'),
                             ['--write-dataset'], 'meta/tasks.parquet'),
    'corrupt stats.json': (lambda r: (r / 'meta/stats.json').write_text('[1,'),
                           ['--write-dataset'], 'meta/stats.json'),
}


@pytest.mark.parametrize('case', list(CASES))
def test_corrupt_input_is_one_line_naming_the_file_and_nothing_is_written(
        case, pristine, tmp_path, capsys):
    corrupt, extra, named = CASES[case]
    root = tmp_path / 'ds'
    shutil.copytree(pristine, root)
    corrupt(root)
    work = tmp_path / 'work'
    work.mkdir()
    if extra[-1:] == ['--write-dataset']:
        extra = [*extra, str(work / 'copy')]
    rc = main(['relabel-lerobot', str(root), '--out', str(work / 'r.parquet'), '--front', TOP,
               '--goal-per-episode', '--backend', 'openai', '--model', 'm',
               '--architecture', 'qwen2_5_vl', '--base-url', 'http://127.0.0.1:9/v1',
               '--no-progress', *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and err[0].startswith('ERROR: '), err
    assert named in err[0] and 'Traceback' not in err[0], err
    assert list(work.iterdir()) == []
