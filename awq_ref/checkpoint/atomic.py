"""Write a directory atomically: build it beside the destination, then rename it into place.

A failure (or a kill) part-way leaves only a hidden ``.<name>.partial-*`` sibling, never a
half-written destination. An existing destination is replaced only after the new one is
complete, and only when ``replace=True``.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from awq_harness.awq_ref.errors import HarnessError


@contextlib.contextmanager
def atomic_directory(dest: str | os.PathLike, replace: bool = False) -> Iterator[Path]:
    dest = Path(dest).absolute()
    if dest.exists() and not replace:
        raise HarnessError(f"{dest} already exists (pass overwrite to replace it)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes it 0700; give it a normal folder's mode
    try:
        yield staging
        _fsync_tree(staging)
        _swap_into_place(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_tree(root: Path) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())


def _swap_into_place(staging: Path, dest: Path) -> None:
    if not dest.exists():
        os.rename(staging, dest)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
    os.rename(dest, old / "x")
    os.rename(staging, dest)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """An exclusive advisory lock (for building shared caches from parallel test workers)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
