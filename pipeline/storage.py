"""Where input files are read from: local paths, or URIs (s3://, gs://, hdfs://, ...) through
pyarrow's file systems, with credentials and endpoint from the standard sources
(AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, profiles, GOOGLE_APPLICATION_CREDENTIALS ...),
never printed.

Only inputs go through here for now: the crawl (WARC, WET, JSONL, Parquet) may live in
object storage; the output must be a local path or a shared file system mounted on every
node (object-storage output, with its lock and atomic publication, is not built yet).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache

URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


class StorageError(OSError):
    """A location cannot be read: the message names it (never the credentials)."""


def is_uri(location) -> bool:
    return bool(URI.match(str(location)))


@dataclass(frozen=True)
class Entry:
    location: str           # a local path or a URI
    name: str
    is_dir: bool


@lru_cache(maxsize=16)
def _filesystem(base: str):
    import pyarrow.fs as pafs
    return pafs.FileSystem.from_uri(base)[0]


def _split(uri: str):
    """(pyarrow file system, path inside it) of a URI; one file system per scheme and bucket."""
    scheme, rest = uri.split("://", 1)
    bucket = rest.split("/", 1)[0]
    try:
        fs = _filesystem(f"{scheme}://{bucket}")
        import pyarrow.fs as pafs
        _, path = pafs.FileSystem.from_uri(uri)
    except Exception as exc:
        raise StorageError(f"{uri}: cannot open this location ({type(exc).__name__}: {str(exc)[:200]})") from None
    return fs, path


def join(base: str, name: str) -> str:
    return base.rstrip("/") + "/" + name if is_uri(base) else os.path.join(base, name)


def basename(location: str) -> str:
    return str(location).rstrip("/").rsplit("/", 1)[-1]


def is_dir(location: str) -> bool:
    if not is_uri(location):
        return os.path.isdir(location)
    import pyarrow.fs as pafs
    fs, path = _split(location)
    try:
        return fs.get_file_info(path).type == pafs.FileType.Directory
    except Exception as exc:
        raise StorageError(f"{location}: {str(exc)[:300]}") from None


def list_dir(location: str) -> list[Entry]:
    """The entries of a folder, sorted by name. A local entry that cannot be followed (a
    symlink loop, a dangling link) is listed as a file, so that reading it fails by name."""
    if not is_uri(location):
        out = []
        with os.scandir(location) as it:
            for e in it:
                try:
                    d = e.is_dir()
                except OSError:
                    d = False
                out.append(Entry(e.path, e.name, d))
        return sorted(out, key=lambda e: e.name)
    import pyarrow.fs as pafs
    fs, path = _split(location)
    try:
        infos = fs.get_file_info(pafs.FileSelector(path, recursive=False))
    except Exception as exc:
        raise StorageError(f"{location}: cannot list it ({str(exc)[:300]})") from None
    scheme = location.split("://", 1)[0]
    return sorted((Entry(f"{scheme}://{i.path}", i.base_name, i.type == pafs.FileType.Directory) for i in infos),
                  key=lambda e: e.name)


def size(location: str) -> int:
    if not is_uri(location):
        return os.stat(location).st_size
    fs, path = _split(location)
    try:
        return fs.get_file_info(path).size or 0
    except Exception as exc:
        raise StorageError(f"{location}: {str(exc)[:300]}") from None


def open_input(location: str):
    """A seekable binary file (read, seek, tell)."""
    if not is_uri(location):
        return open(location, "rb")
    fs, path = _split(location)
    try:
        return fs.open_input_file(path)
    except Exception as exc:
        raise StorageError(f"{location}: cannot open it ({str(exc)[:300]})") from None


def open_stream(location: str, compression: str | None = None):
    """A forward-only binary stream, decompressed (gzip, zstd, ...) as it is read."""
    import pyarrow as pa
    if not is_uri(location):
        return pa.input_stream(location, compression=compression)
    fs, path = _split(location)
    try:
        return fs.open_input_stream(path, compression=compression)
    except Exception as exc:
        raise StorageError(f"{location}: cannot open it ({str(exc)[:300]})") from None
