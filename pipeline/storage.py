"""The one layer that touches storage: local paths, or URIs (s3://, gs://, hdfs://, ...)
through pyarrow's file systems, with credentials and endpoint from the standard sources
(AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, AWS_PROFILE, GOOGLE_APPLICATION_CREDENTIALS ...) or
the config's `storage` section, never printed.

`location(x)` is how the rest of curate names a place: a local path is a `pathlib.Path`
(nothing changes for local runs); a URI is an `ObjectPath`, which offers the part of the
Path API curate uses (`/`, exists, stat, iterdir, glob, read_bytes, write_bytes, unlink,
...). Object stores have no rename: `manifests.atomic` writes a temporary file on the
local disk and uploads it whole under its final key; a shard counts only once its
manifest row exists, on either kind of storage.
"""
from __future__ import annotations

import fnmatch
import os
import re
import tempfile
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace

URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


class StorageError(OSError):
    """A location cannot be read or written: the message names it (never the credentials)."""


def is_uri(location) -> bool:
    return bool(URI.match(str(location)))


@dataclass(frozen=True)
class Entry:
    location: str           # a local path or a URI
    name: str
    is_dir: bool
    link: bool = False      # a local symbolic link (its target is resolved on its own)


@lru_cache(maxsize=16)
def _filesystem(base: str):
    import pyarrow.fs as pafs
    return pafs.FileSystem.from_uri(base)[0]


def _split(uri: str):
    """(pyarrow file system, path inside it) of a URI; one file system per scheme and bucket."""
    scheme, rest = uri.split("://", 1)
    bucket = rest.split("/", 1)[0]
    if not bucket:
        raise StorageError(f"{uri}: no bucket or host after {scheme}://")
    try:
        fs = _filesystem(f"{scheme}://{bucket}")
        import pyarrow.fs as pafs
        _, path = pafs.FileSystem.from_uri(uri)
    except Exception as exc:
        raise StorageError(f"{uri}: cannot open this location ({type(exc).__name__}: {str(exc)[:200]})") from None
    return fs, path


def _fail(uri: str, what: str, exc: Exception) -> StorageError:
    return StorageError(f"{uri}: cannot {what} ({str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__})")


class ObjectPath:
    """A key (or key prefix) in object storage, with the pathlib.Path methods curate uses.
    `os.fspath()` gives the URI, which pyarrow's readers and writers open directly;
    `mkdir` is a no-op (prefixes need no creation)."""

    def __init__(self, uri: str):
        uri = str(uri)
        scheme, rest = uri.split("://", 1)
        rest = re.sub(r"/+", "/", rest).rstrip("/")
        self.scheme = scheme.lower()
        self.uri = f"{self.scheme}://{rest}"

    # -- names ---------------------------------------------------------------------------
    def __str__(self) -> str:
        return self.uri

    def __fspath__(self) -> str:
        return self.uri

    def __repr__(self) -> str:
        return f"ObjectPath({self.uri!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, ObjectPath) and other.uri == self.uri

    def __hash__(self) -> int:
        return hash(self.uri)

    def __lt__(self, other) -> bool:
        return self.uri < str(other)

    def __truediv__(self, name) -> "ObjectPath":
        return ObjectPath(f"{self.uri}/{str(name).lstrip('/')}")

    @property
    def name(self) -> str:
        return self.uri.rsplit("/", 1)[-1]

    @property
    def stem(self) -> str:
        return self.name.rsplit(".", 1)[0] if "." in self.name[1:] else self.name

    @property
    def suffix(self) -> str:
        return "." + self.name.rsplit(".", 1)[1] if "." in self.name[1:] else ""

    @property
    def parent(self) -> "ObjectPath":
        head = self.uri.rsplit("/", 1)[0]
        return self if head.endswith(":/") else ObjectPath(head)

    @property
    def bucket(self) -> str:
        return self.uri.split("://", 1)[1].split("/", 1)[0]

    def with_name(self, name: str) -> "ObjectPath":
        return self.parent / name

    def resolve(self) -> "ObjectPath":
        return self

    absolute = expanduser = resolve

    def relative_to(self, other) -> str:
        base = str(other).rstrip("/") + "/"
        if not self.uri.startswith(base):
            raise ValueError(f"{self.uri} is not under {other}")
        return self.uri[len(base):]

    # -- the store -----------------------------------------------------------------------
    def _fs(self):
        return _split(self.uri)

    def _info(self):
        fs, path = self._fs()
        try:
            return fs.get_file_info(path)
        except Exception as exc:
            raise _fail(self.uri, "look it up", exc) from None

    def exists(self) -> bool:
        import pyarrow.fs as pafs
        return self._info().type != pafs.FileType.NotFound

    def is_dir(self) -> bool:
        import pyarrow.fs as pafs
        return self._info().type == pafs.FileType.Directory

    def is_file(self) -> bool:
        import pyarrow.fs as pafs
        return self._info().type == pafs.FileType.File

    def stat(self):
        import pyarrow.fs as pafs
        info = self._info()
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(2, "No such object", self.uri)
        mtime = info.mtime_ns if info.mtime_ns is not None else 0
        return SimpleNamespace(st_size=info.size or 0, st_mtime_ns=mtime)

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Object stores have no folders to make."""

    def _list(self, recursive: bool):
        import pyarrow.fs as pafs
        fs, path = self._fs()
        try:
            return fs.get_file_info(pafs.FileSelector(path, recursive=recursive, allow_not_found=True))
        except Exception as exc:
            raise _fail(self.uri, "list it", exc) from None

    def listing(self) -> dict[str, int]:
        """{path below this prefix: size} of every object under it (recursive)."""
        import pyarrow.fs as pafs
        _, base = self._fs()
        cut = len(base.rstrip("/")) + 1
        return {i.path[cut:]: i.size or 0 for i in self._list(True) if i.type == pafs.FileType.File}

    def iterdir(self):
        import pyarrow.fs as pafs
        for info in sorted(self._list(False), key=lambda i: i.path):
            if info.type != pafs.FileType.NotFound:
                yield ObjectPath(f"{self.scheme}://{info.path}")

    def glob(self, pattern: str):
        """Files (and folders) whose path below this one matches the pattern ('*' does not
        cross '/', a leading '**/' matches any depth)."""
        import pyarrow.fs as pafs
        deep = pattern.startswith("**/")
        tail = pattern[3:] if deep else pattern
        _, base = self._fs()
        for info in sorted(self._list(deep or "/" in tail), key=lambda i: i.path):
            rel = info.path[len(base.rstrip("/")) + 1:]
            name = rel.rsplit("/", 1)[-1] if deep else rel
            if fnmatch.fnmatchcase(name, tail) and ("/" in tail or deep or "/" not in rel):
                if info.type != pafs.FileType.NotFound:
                    yield ObjectPath(f"{self.scheme}://{info.path}")

    def rglob(self, pattern: str):
        return self.glob("**/" + pattern)

    def open(self, mode: str = "rb"):
        if mode not in ("rb", "r"):
            raise ValueError(f"{self.uri}: object storage is opened for reading only here (mode {mode!r})")
        fs, path = self._fs()
        try:
            f = fs.open_input_file(path)
        except FileNotFoundError:
            raise
        except Exception as exc:
            if "not found" in str(exc).lower() or "does not exist" in str(exc).lower():
                raise FileNotFoundError(2, "No such object", self.uri) from None
            raise _fail(self.uri, "open it", exc) from None
        if mode == "r":
            import io
            return io.TextIOWrapper(f, encoding="utf-8")
        return f

    def read_bytes(self) -> bytes:
        with self.open("rb") as fh:
            return fh.read()

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_bytes(self, data: bytes) -> int:
        """One PUT: the object appears whole or not at all."""
        fs, path = self._fs()
        try:
            with fs.open_output_stream(path) as out:
                out.write(data)
        except Exception as exc:
            raise _fail(self.uri, "write it", exc) from None
        return len(data)

    def write_text(self, text: str, encoding: str = "utf-8") -> int:
        return self.write_bytes(text.encode(encoding))

    def upload(self, local: Path) -> None:
        """Copy a finished local file to this key."""
        import pyarrow.fs as pafs
        fs, path = self._fs()
        try:
            pafs.copy_files(str(local), path, source_filesystem=pafs.LocalFileSystem(),
                            destination_filesystem=fs)
        except Exception as exc:
            raise _fail(self.uri, f"upload {local} to it", exc) from None

    def download(self, local: Path) -> None:
        """Copy this object to a local file."""
        import pyarrow.fs as pafs
        fs, path = self._fs()
        try:
            pafs.copy_files(path, str(local), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
        except Exception as exc:
            raise _fail(self.uri, f"download it to {local}", exc) from None

    def unlink(self, missing_ok: bool = False) -> None:
        fs, path = self._fs()
        try:
            fs.delete_file(path)
        except FileNotFoundError:
            if not missing_ok:
                raise
        except Exception as exc:
            if "not found" in str(exc).lower() or "does not exist" in str(exc).lower():
                if missing_ok:
                    return
                raise FileNotFoundError(2, "No such object", self.uri) from None
            raise _fail(self.uri, "delete it", exc) from None

    def rmtree(self) -> None:
        fs, path = self._fs()
        try:
            fs.delete_dir_contents(path, missing_dir_ok=True)
        except Exception as exc:
            raise _fail(self.uri, "delete what is under it", exc) from None


def location(where) -> Path | ObjectPath:
    """A place to read or write: a Path for a local path, an ObjectPath for a URI."""
    if isinstance(where, (Path, ObjectPath)):
        return where
    where = str(where)
    if where.startswith("file://"):
        return Path(where[len("file://"):])
    return ObjectPath(where) if is_uri(where) else Path(where)


def is_remote(where) -> bool:
    return isinstance(location(where), ObjectPath)


def map_io(fn, items: list, where=None) -> list:
    """fn over items; side by side (threads) when `where` is in object storage, where each
    call waits on a round trip rather than on the CPU."""
    if where is not None and is_remote(where) and len(items) > 1:
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(min(16, len(items))) as pool:
            return list(pool.map(fn, items))
    return [fn(x) for x in items]


def rmtree(where) -> None:
    """Delete a folder (or key prefix) and everything under it; absent is fine."""
    import shutil
    loc = location(where)
    if isinstance(loc, ObjectPath):
        loc.rmtree()
    else:
        shutil.rmtree(loc, ignore_errors=True)


def local_copy(where, cache: Path) -> Path:
    """A local file with the content of `where`: itself when local, else a copy in `cache`
    named by the URI, size and modification time (so a changed object is fetched again)."""
    loc = location(where)
    if not isinstance(loc, ObjectPath):
        return loc
    import hashlib
    st = loc.stat()
    tag = hashlib.sha256(f"{loc.uri}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]
    dest = cache / f"{tag}-{loc.name}"
    if not dest.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}")
        loc.download(tmp)
        os.replace(tmp, dest)
    return dest


_SCRATCH_MAX_AGE_S = 24 * 3600
_scratch_swept = False


def parquet_dataset(paths: list[ObjectPath]):
    """A pyarrow dataset over Parquet objects, its schema the union of theirs (as DuckDB's
    union_by_name); footers are read side by side."""
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq
    fs, _ = paths[0]._fs()
    keys = [p._fs()[1] for p in paths]
    schemas = map_io(lambda k: pq.read_schema(k, filesystem=fs), keys, paths[0])
    schema = pa.unify_schemas([s.remove_metadata() for s in schemas], promote_options="permissive")
    return ds.dataset(keys, schema=schema, format="parquet", filesystem=fs)


def scratch_file(name: str) -> Path:
    """A fresh local temporary file name (for what must be written locally first: a file
    bound for object storage, a DuckDB database). The first call in a process removes what
    killed workers left there more than a day ago (nothing that old is still being written)."""
    global _scratch_swept
    folder = Path(tempfile.gettempdir()) / "curate-scratch"
    folder.mkdir(parents=True, exist_ok=True)
    if not _scratch_swept:
        _scratch_swept = True
        import shutil
        import time
        for entry in folder.iterdir():
            try:
                if time.time() - entry.lstat().st_mtime > _SCRATCH_MAX_AGE_S:
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
            except OSError:
                pass
    return folder / f"{uuid.uuid4().hex[:12]}-{name}"


def fsspec_filesystem(where):
    """An fsspec view of the location's pyarrow file system, for DuckDB's
    `register_filesystem` (no httpfs download). It is pyarrow's own S3/GCS/HDFS client
    under fsspec's thin `ArrowFSWrapper`: no s3fs, whose aiobotocore pins botocore so
    narrowly that pip backtracks for minutes and fails on a fresh machine."""
    from fsspec.implementations.arrow import ArrowFSWrapper
    loc = location(where)
    fs, _ = _split(loc.uri)
    return ArrowFSWrapper(fs)


def _put_if_absent_s3(loc: "ObjectPath", data: bytes) -> bool:
    """S3's conditional PUT (If-None-Match: *, honoured by AWS S3 since 2024, MinIO and
    moto): pyarrow has no conditional write, boto3 does."""
    import boto3
    from botocore.exceptions import ClientError
    key = loc.uri.split("://", 1)[1].split("/", 1)[1]
    try:
        boto3.client("s3").put_object(Bucket=loc.bucket, Key=key, Body=data, IfNoneMatch="*")
        return True
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412):
            return False
        if code in ("NotImplemented", "InvalidArgument") or status == 501:
            raise NotImplementedError(code) from None
        raise


def create_exclusive(loc: ObjectPath, data: bytes) -> bool | None:
    """Write an object only if it does not exist (a conditional PUT, If-None-Match: *).
    True: written; False: it exists; None: this store cannot say (not S3, or an S3 that
    ignores the condition), and the caller must fall back to write-then-read-back."""
    if loc.scheme not in ("s3", "s3a"):
        return None
    try:
        return _put_if_absent_s3(loc, data)
    except (NotImplementedError, ImportError):
        return None
    except Exception as exc:
        raise _fail(loc.uri, "create it", exc) from None


def configure(endpoint_url: str | None = None, region: str | None = None, profile: str | None = None) -> dict:
    """Apply the config's storage overrides where every library looks (pyarrow and
    botocore read these variables); returns them, for the Ray workers' environment."""
    env = {k: v for k, v in (("AWS_ENDPOINT_URL", endpoint_url), ("AWS_REGION", region),
                             ("AWS_DEFAULT_REGION", region), ("AWS_PROFILE", profile)) if v}
    if any(os.environ.get(k) != v for k, v in env.items()):
        os.environ.update(env)
        _filesystem.cache_clear()
    return env


def duckdb_connection(where, database: str = ":memory:"):
    """A DuckDB connection that can read the location's files: object storage through a
    registered fsspec file system (no httpfs download needed)."""
    import duckdb
    con = duckdb.connect(database)
    if is_remote(where):
        con.register_filesystem(fsspec_filesystem(where))
    return con


def check_output(where) -> None:
    """Fail fast, naming the location, when an output URI cannot be used: a malformed URI,
    an unknown scheme, missing credentials, a missing bucket."""
    loc = location(where)
    if not isinstance(loc, ObjectPath):
        return
    import pyarrow.fs as pafs
    fs, _ = _split(loc.uri)
    try:
        info = fs.get_file_info(loc.bucket)
    except Exception as exc:
        raise _fail(loc.uri, "reach its bucket (check credentials and endpoint)", exc) from None
    if info.type == pafs.FileType.NotFound:
        raise StorageError(f"{loc.uri}: bucket {loc.bucket!r} does not exist (create it first)")
    try:
        loc.exists()
    except StorageError as exc:
        raise StorageError(f"{exc}; check credentials and endpoint") from None


# -- inputs: listing and reading the crawl ---------------------------------------------------
def join(base: str, name: str) -> str:
    return base.rstrip("/") + "/" + name if is_uri(base) else os.path.join(base, name)


def basename(location: str) -> str:
    return str(location).rstrip("/").rsplit("/", 1)[-1]


def is_dir(where: str) -> bool:
    if not is_uri(where):
        return os.path.isdir(where)
    return ObjectPath(where).is_dir()


def is_file(where: str) -> bool:
    if not is_uri(where):
        return os.path.isfile(where)
    return ObjectPath(where).is_file()


def list_dir(where: str) -> list[Entry]:
    """The entries of a folder, sorted by name. A local entry that cannot be followed (a
    symlink loop, a dangling link) is listed as a file, so that reading it fails by name."""
    if not is_uri(where):
        out = []
        with os.scandir(where) as it:
            for e in it:
                try:
                    d = e.is_dir()
                except OSError:
                    d = False
                out.append(Entry(e.path, e.name, d, e.is_symlink()))
        return sorted(out, key=lambda e: e.name)
    import pyarrow.fs as pafs
    loc = ObjectPath(where)
    infos = loc._list(False)
    return sorted((Entry(f"{loc.scheme}://{i.path}", i.base_name, i.type == pafs.FileType.Directory)
                   for i in infos), key=lambda e: e.name)


def tree(folder, sizes: bool = True) -> dict[str, int | None]:
    """{path below folder: size} of every file under it, recursive; {} when it is absent.
    Object storage: one listing (sizes come with it). Local: a directory scan per folder,
    and a stat per file only when `sizes` (else the sizes are None)."""
    loc = location(folder)
    if isinstance(loc, ObjectPath):
        return loc.listing()
    found: dict[str, int | None] = {}
    stack = [(str(loc), "")]
    while stack:
        path, prefix = stack.pop()
        try:
            with os.scandir(path) as it:
                for e in it:
                    try:
                        if e.is_dir():
                            stack.append((e.path, f"{prefix}{e.name}/"))
                        else:
                            found[prefix + e.name] = e.stat().st_size if sizes else None
                    except OSError:         # a dangling link, a file gone meanwhile
                        continue
        except (FileNotFoundError, NotADirectoryError):
            continue
    return found


def size(where: str) -> int:
    if not is_uri(where):
        return os.stat(where).st_size
    return ObjectPath(where).stat().st_size


def open_input(where: str):
    """A seekable binary file (read, seek, tell)."""
    if not is_uri(where):
        return open(where, "rb")
    return ObjectPath(where).open("rb")


def open_stream(where: str, compression: str | None = None):
    """A forward-only binary stream, decompressed (gzip, zstd, ...) as it is read."""
    import pyarrow as pa
    if not is_uri(where):
        return pa.input_stream(where, compression=compression)
    fs, path = _split(where)
    try:
        return fs.open_input_stream(path, compression=compression)
    except Exception as exc:
        raise _fail(where, "open it", exc) from None
