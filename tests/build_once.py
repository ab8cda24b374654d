"""Expensive test inputs (prepared corpora, trained models, recipe runs) built once per test run.

``pytest -n 3`` (scripts/test.sh) runs three worker processes; a session-scoped fixture would be
built once in *each*. :func:`build_once` builds into a folder shared by the run's workers, under
a file lock: the first worker to ask builds it, the other waits for it and reuses it. A build
that failed is recorded, so the other worker fails at once with the same message instead of
building it a second time.
"""
from __future__ import annotations

import os
import shutil
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock

_BUILT = ".built"
_FAILED = ".failed"


def shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This test run's folder common to every xdist worker (the run's own basetemp without
    xdist; with it, the parent of the workers' ``popen-gwN`` folders)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def build_once(tmp_path_factory: pytest.TempPathFactory, name: str,
               build: Callable[[Path], object]) -> Path:
    """``<shared root>/<name>/``, made by ``build(folder)`` the first time any worker asks."""
    folder = shared_root(tmp_path_factory) / name
    with FileLock(f"{folder}.lock"):
        if (folder / _FAILED).is_file():
            pytest.fail(f"{name} failed to build in another worker:\n"
                        f"{(folder / _FAILED).read_text()}", pytrace=False)
        if not (folder / _BUILT).is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            try:
                build(folder)
            except BaseException:
                (folder / _FAILED).write_text(traceback.format_exc()[-6000:])
                raise
            (folder / _BUILT).write_text(name)
    return folder
