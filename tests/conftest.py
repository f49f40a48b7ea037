"""Shared fixtures: the real data in ../shared, one Ray for the whole session, runs."""
from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CURATE_SHARED", REPO.parent / "shared")).resolve()
DATA = SHARED / "data"


def pytest_configure(config):
    import logging
    logging.getLogger("werkzeug").setLevel(logging.WARNING)     # the moto S3 server's request lines
    if not DATA.is_dir():
        raise pytest.UsageError(
            f"the shared test data is not at {DATA}; set CURATE_SHARED to the shared/ folder")


@pytest.fixture(scope="session")
def ray_address():
    """One local Ray for all tests (ray.init costs seconds); in-process runs reuse it and
    subprocess runs connect to it with --address."""
    import ray
    # tests define plugins (custom filters) in their own modules: Ray workers import them too
    here = str(Path(__file__).resolve().parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def run_stages(ray_address, input_dir, output, stages=None, force=False, log=None, **sections):
    """Run the pipeline in this process (on the session's Ray) and return its RunResult.
    Log lines are printed, and also passed to `log` when given."""
    from curate.pipeline.config import config_from_dict
    from curate.pipeline.runner import Runner
    raw = {"input": str(input_dir), "output": str(output), **sections}
    cfg = config_from_dict(raw)

    def _log(m):
        print(m)
        if log:
            log(m)
    return Runner(cfg, address=ray_address, log=_log).run(only=stages, force=force)


def read_shards(output, stage, kind="docs"):
    """Rows of every finished shard of a stage, as Python dicts (via the manifests)."""
    from curate.manifests.manifest import FINISHED, read_rows
    rows = []
    for row in read_rows(output, stage).values():
        if row.status in FINISHED:
            path = row.path if kind == "docs" else row.rejects_path
            from curate.pipeline.storage import location
            rows += pq.read_table(location(output) / path).to_pylist()
    return rows


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory):
    from curate.pipeline.demo_corpus import make_demo_corpus
    folder = tmp_path_factory.mktemp("demo") / "corpus"
    make_demo_corpus(folder, seed=0)
    return folder


@pytest.fixture(scope="session")
def crawl_extract(ray_address, tmp_path_factory):
    """The default pipeline over all three dumps of the shared crawl, once per session."""
    out = tmp_path_factory.mktemp("crawl") / "out"
    result = run_stages(ray_address, DATA / "crawl", out)
    return out, result


@contextlib.contextmanager
def s3_server(*buckets: str):
    """A moto S3 server on loopback holding these buckets, this process's AWS_* variables
    pointed at it until the block ends; yields (environment for subprocesses, boto3 client).
    moto keeps buckets per process across servers: give names no other test uses."""
    import boto3
    from moto.server import ThreadedMotoServer
    from curate.pipeline import storage
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    saved = dict(os.environ)
    os.environ.pop("AWS_PROFILE", None)
    os.environ.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1",
                      AWS_REGION="us-east-1", AWS_ENDPOINT_URL=f"http://{host}:{port}",
                      AWS_EC2_METADATA_DISABLED="true")
    storage._filesystem.cache_clear()           # file systems made before now know another endpoint
    client = boto3.client("s3")
    for bucket in buckets:
        client.create_bucket(Bucket=bucket)
    try:
        yield {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, client
    finally:
        os.environ.clear()
        os.environ.update(saved)
        storage._filesystem.cache_clear()
        server.stop()


def curate_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("curate")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "curate.pipeline.cli"]


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.fixture(scope="session")
def demo_run(ray_address, demo_corpus, tmp_path_factory):
    """extract over the demo corpus, once per session (the reference for rerun tests)."""
    out = tmp_path_factory.mktemp("demo-run") / "out"
    first = run_stages(ray_address, demo_corpus, out, stages=["extract"])
    return out, first


def doc_set(out, stage="extract"):
    """(id, sha256 of text) of every document of a stage; fails on duplicates."""
    import hashlib
    docs = read_shards(out, stage)
    keys = [(d["id"], hashlib.sha256(d["text"].encode()).hexdigest()) for d in docs]
    assert len(keys) == len(set(keys)), "a document was written twice"
    return set(keys)
