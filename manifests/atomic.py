"""Atomic writes: a reader (or a rerun after a crash) sees either the old file or the
whole new one, never half a file.

On a local or shared file system: write under a temporary name in the same folder, fsync,
rename. In object storage, which has no rename: write the temporary file on the local
disk, then upload it whole under its final key (a PUT is all or nothing). Temporary names
contain TMP_MARK so a rerun can sweep leftovers.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from curate.pipeline.storage import ObjectPath, location, scratch_file

TMP_MARK = ".tmp-"


def temp_path_for(path) -> Path:
    """Where to write before publishing to `path`: beside it, or on the local disk when
    `path` is in object storage."""
    if isinstance(path, ObjectPath):
        return scratch_file(f"{path.name}{TMP_MARK}")
    path = Path(path)
    return path.with_name(f".{path.name}{TMP_MARK}{uuid.uuid4().hex[:12]}")


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def publish(tmp: Path, path) -> None:
    """Move a finished temporary file into place (a rename on POSIX file systems, an
    upload then removing the local file in object storage)."""
    if isinstance(path, ObjectPath):
        path.upload(tmp)
        tmp.unlink(missing_ok=True)
        return
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_path(path) -> Iterator[Path]:
    """Yield a temporary local path to write; on success it replaces `path`, on error it is removed."""
    path = location(path)
    path.parent.mkdir(parents=True, exist_ok=True)      # a no-op in object storage
    tmp = temp_path_for(path)
    try:
        yield tmp
        publish(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_table_atomic(table: pa.Table, path, **kw) -> None:
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, **kw)


def write_bytes_atomic(data: bytes, path) -> None:
    path = location(path)
    if isinstance(path, ObjectPath):        # one PUT, no local copy needed
        path.write_bytes(data)
        return
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def sha256_file(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with location(path).open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sweep_temporaries(root) -> int:
    """Remove temporary files a killed run left behind under root; returns how many.
    (Object storage holds none: its temporaries are on the writers' local disks.)"""
    n = 0
    root = location(root)
    if isinstance(root, ObjectPath) or not root.exists():
        return 0
    for p in root.rglob(f"*{TMP_MARK}*"):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            n += 1
    return n
