"""File I/O every layer shares: atomic replacement of a file, and an exclusive lock on a folder."""
from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from mmrb.core.errors import MmrbError

LOCK_NAME, HOLDER_NAME = ".mmrb.lock", ".mmrb.lock.pid"


def atomic_write(path: str | Path, data: str | bytes | Callable[[Path], None], exclusive: bool = False) -> Path:
    """Write `data` (text, bytes, or a function that writes the temporary file it is given) to `path` through a
    temporary file in the same folder and a rename, so no reader sees half a file. `exclusive`: refuse (FileExistsError)
    if `path` exists, also when another process creates it meanwhile (a hard link, not a rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        if callable(data):
            data(tmp)
        elif isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding="utf-8")
        if exclusive:
            os.link(tmp, path)
        else:
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


@contextlib.contextmanager
def folder_lock(folder: str | Path, what: str, wait: bool) -> Iterator[None]:
    """An exclusive lock on `folder` (filelock; released by the OS if the process dies). `wait=False` refuses at once
    with a message naming the holder's pid instead of waiting."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise MmrbError(f"{folder} is a file, not a folder: give --out a folder (a new one, or one this suite ran "
                        "into before)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MmrbError(f"{folder}: cannot create the folder ({exc.strerror}); give --out a folder you can write") \
            from None
    lock, holder = FileLock(folder / LOCK_NAME), folder / HOLDER_NAME
    try:
        lock.acquire(timeout=-1 if wait else 0)
    except Timeout:
        pid = holder.read_text().strip() if holder.exists() else "unknown"
        raise MmrbError(f"{folder}: {what} is in use by another mmrb process (pid {pid or 'unknown'}); wait for it to "
                        "finish, or give this run another --out folder") from None
    try:
        holder.write_text(str(os.getpid()))
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def build_lock(cache_dir: str | Path, name: str) -> Iterator[None]:
    """An exclusive lock for building the cache entry `name` (released by the OS if the process dies): two
    processes sharing a cache (Ray tasks, two runs) build an entry once; the second waits, then loads it."""
    folder = Path(cache_dir) / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(folder / f"{name}.lock"):
        yield


def write_atomically(folder: str | Path, fill: Callable[[Path], None]) -> Path:
    """Create `folder` by filling a temporary sibling with `fill(tmp)` and renaming it into place, so a
    crash (even SIGKILL) never leaves a half-written folder under the final name."""
    folder = Path(folder)
    tmp = folder.with_name(f"{folder.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        fill(tmp)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
