"""Append-only per-sample results (JSONL and CSV), so a run killed midway leaves valid files.

Every adapter that scores an episode offline (demo, bag replay, video pipeline) writes its
``StepResult`` records through this one writer: each line is flushed as soon as it is scored.
A run that finished writes ``results.complete`` (its row count) beside them; without it the files
hold what a killed or failed run had scored.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from ..core.result import StepResult
from ..files.outputs import mark_complete


class ResultWriter:
    """Writes ``results.jsonl`` and ``results.csv`` in ``out_dir``, one row per result.

    The CSV columns are fixed by the first record (``StepResult.to_record`` always has the same
    keys), so rows stay aligned; extra keys given per row (e.g. a frame reference) are kept.
    """

    def __init__(self, out_dir: str | Path, stem: str = 'results') -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.stem = stem
        self.jsonl_path = self.out_dir / f'{stem}.jsonl'
        self.csv_path = self.out_dir / f'{stem}.csv'
        self._jsonl: IO[str] = self.jsonl_path.open('w', encoding='utf-8')
        self._csv_file: IO[str] = self.csv_path.open('w', encoding='utf-8', newline='')
        self._csv: csv.DictWriter[str] | None = None
        self.count = 0

    def write(self, result: StepResult, **extra: Any) -> dict[str, Any]:
        """Append one result (plus ``extra`` columns) to both files and flush them."""
        record = {**result.to_record(), **extra}
        self._jsonl.write(json.dumps(record, ensure_ascii=False) + '\n')
        self._jsonl.flush()
        if self._csv is None:
            self._csv = csv.DictWriter(self._csv_file, fieldnames=list(record),
                                       extrasaction='ignore')
            self._csv.writeheader()
        self._csv.writerow(record)
        self._csv_file.flush()
        self.count += 1
        return record

    def close(self) -> None:
        self._jsonl.close()
        self._csv_file.close()

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
        if exc_type is None:        # a run that ended by an error has no completion marker
            mark_complete(self.out_dir, self.stem, self.count)


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Read a ``results.jsonl`` back (a truncated last line from a killed run is skipped)."""
    records = []
    for line in Path(path).read_text(encoding='utf-8').splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return records
