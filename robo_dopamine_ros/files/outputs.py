"""Outputs appear whole or not at all.

A bag, a frame folder, a JSON, PNG or MP4 file is written under its final name inside a hidden
temporary folder beside it and moved into place only when complete; a failed or killed run
leaves no half-written output (a re-run then finds nothing in its way), only the temporary
folder of a run killed outright (``.<name>.partial-<pid>``, safe to delete).

Streaming result files (``results.jsonl/csv``) are the exception by design: a killed run keeps
what it scored. Their writer marks a finished run with ``<stem>.complete`` instead
(:func:`mark_complete`).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def written(path: str | Path, replace: bool = True) -> Iterator[Path]:
    """Yield where to write ``path`` (a file or a folder); move it into place on success.

    The yielded path has the same name (so writers that name files after it, such as
    rosbags, or pick a format by suffix, such as OpenCV and Matplotlib, behave the same).

    Args:
        path: The output's final path; its parent is created.
        replace: Replace an existing output (folders are removed first); otherwise the caller
            has checked that none exists.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.parent / f'.{final.name}.partial-{os.getpid()}'
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging / final.name
        if replace and final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        os.replace(staging / final.name, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextmanager
def output_folder(path: str | Path) -> Iterator[Path]:
    """Yield ``path``, a folder that outputs go into; when the body fails, the folders this run
    created for it (``path`` and missing parents) are removed again if still empty, so a failed
    run leaves no empty folder behind. Outputs already complete in it, and folders that were
    there before, stay."""
    folder = Path(path)
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        yield folder
    except BaseException:
        for made in created:                 # deepest first; stops at the first one in use
            try:
                if made.exists():
                    made.rmdir()
            except OSError:
                break
        raise


def write_text(path: str | Path, text: str) -> Path:
    """Write a text file whole or not at all."""
    with written(path) as tmp:
        tmp.write_text(text, encoding='utf-8')
    return Path(path)


def write_json(path: str | Path, data: Any, indent: int = 2) -> Path:
    """Write JSON as upstream does (UTF-8, non-ASCII kept), whole or not at all: an interrupted
    run never leaves a file that a later step or a resumed run would read as complete."""
    return write_text(path, json.dumps(data, ensure_ascii=False, indent=indent))


def mark_complete(folder: str | Path, stem: str, rows: int) -> Path:
    """Mark the streaming files ``<stem>.jsonl/csv`` in ``folder`` as finished (``rows`` rows)."""
    return write_text(Path(folder) / f'{stem}.complete', json.dumps({'rows': rows}) + '\n')
