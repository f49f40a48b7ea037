"""A real multi-node run where the data lives in object storage (issue 10): a local
S3-compatible server (moto), a Ray head and a second Ray node on this machine with their
own temporary directories and no shared output folder. The second node is killed while
extract runs and again while dedup runs; the final documents equal a local run's. Then
`ray job submit` to the same head with S3 paths, and status / query / verify on S3."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import DATA, REPO, curate_cmd, doc_set, read_shards, s3_server

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_env():
    """A moto S3 server on loopback; the environment every process of the test gets."""
    with s3_server("cluster-crawl", "cluster-corpus") as (env, s3):
        yield dict(env, PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"), s3


def _upload(s3, folder: Path, bucket: str, prefix: str) -> str:
    for f in sorted(folder.rglob("*")):
        if f.is_file():
            s3.upload_file(str(f), bucket, f"{prefix}/{f.relative_to(folder)}")
    return f"s3://{bucket}/{prefix}"


class Node:
    """One `ray start --block` process and everything it started, found by its own
    temporary directory (the only thing the two nodes on this machine do not share)."""

    def __init__(self, args: list[str], env: dict, log: Path):
        self.temp_dir = tempfile.mkdtemp(prefix="cr", dir="/tmp")     # short: Ray's socket paths
        ray_cli = shutil.which("ray", path=env["PATH"])
        self.proc = subprocess.Popen([ray_cli, "start", f"--temp-dir={self.temp_dir}", "--disable-usage-stats",
                                      f"--dashboard-agent-listen-port={_free_port()}",
                                      f"--metrics-export-port={_free_port()}",
                                      f"--runtime-env-agent-port={_free_port()}", "--block"] + args,
                                     env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)

    def pids(self) -> list[int]:
        import psutil
        found = []
        for p in psutil.process_iter(["cmdline"]):
            try:
                if any(self.temp_dir in a for a in (p.info["cmdline"] or [])):
                    found.append(p.pid)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return found

    def kill(self) -> list[int]:
        """SIGKILL the node (raylet, its workers and agents): a machine that went away."""
        pids = self.pids() + [self.proc.pid]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(30)
        return pids

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _wait_for_nodes(gcs: str, env: dict, n: int, log_hint: Path) -> None:
    probe = ("import ray,sys; ray.init(address=sys.argv[1], logging_level='ERROR'); "
             "print(sum(1 for x in ray.nodes() if x['Alive']))")
    deadline = time.time() + 120
    while time.time() < deadline:
        r = subprocess.run([sys.executable, "-c", probe, gcs], env=env, capture_output=True, text=True)
        if r.returncode == 0 and r.stdout.strip().splitlines()[-1:] == [str(n)]:
            return
        time.sleep(1)
    pytest.fail(f"the Ray cluster did not reach {n} nodes:\n" + log_hint.read_text()[-3000:])


@pytest.fixture(scope="module")
def cluster(s3_env, tmp_path_factory):
    env, _ = s3_env
    logs = tmp_path_factory.mktemp("cluster-logs")
    port, dash = _free_port(), _free_port()
    head = Node(["--head", f"--port={port}", f"--dashboard-port={dash}", "--dashboard-host=127.0.0.1",
                 "--include-dashboard=true", "--num-cpus=1"], env, logs / "head.log")
    nodes = [head]
    gcs = f"127.0.0.1:{port}"
    try:
        _wait_for_nodes(gcs, env, 1, logs / "head.log")

        def add_worker_node() -> Node:
            node = Node([f"--address={gcs}", "--num-cpus=2"], env, logs / f"node{len(nodes)}.log")
            nodes.append(node)
            _wait_for_nodes(gcs, env, 2, logs / f"node{len(nodes) - 1}.log")
            return node
        yield gcs, f"http://127.0.0.1:{dash}", add_worker_node
    finally:
        for node in reversed(nodes):
            node.stop()


def _kill_when(proc: subprocess.Popen, triggers: list[tuple], lines: list[str]) -> threading.Thread:
    """Read the driver's output; at the first line a trigger's test accepts, call its action."""
    def follow():
        pending = list(triggers)
        for line in proc.stdout:
            lines.append(line)
            if pending and pending[0][0](line):
                pending.pop(0)[1]()
    t = threading.Thread(target=follow, daemon=True)
    t.start()
    return t


def test_two_node_cluster_on_object_storage_survives_losing_a_node(s3_env, cluster, crawl_extract):
    env, s3 = s3_env
    gcs, dashboard, add_worker_node = cluster
    src = _upload(s3, DATA / "crawl", "cluster-crawl", "cc")
    out = "s3://cluster-corpus/run"
    node = add_worker_node()
    killed: dict[str, list[int]] = {}

    def kill_then_replace(stage):
        def act():
            killed[stage] = node_ref[0].kill()
            if stage == "extract":          # a fresh second node, to lose again during dedup
                node_ref[0] = add_worker_node()
        return act
    node_ref = [node]
    driver = subprocess.Popen(curate_cmd() + ["run", "--input", src, "--output", out, "--address", gcs,
                                              "--no-report"],
                              env=env, cwd=tempfile.mkdtemp(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    lines: list[str] = []
    # extract: after its second unit finished, others in flight; dedup: as its global step starts
    follower = _kill_when(driver, [(lambda line: line.startswith("[extract] 2/"), kill_then_replace("extract")),
                                   (lambda line: line.startswith("[dedup]") and "to run" in line,
                                    kill_then_replace("dedup"))], lines)
    try:
        rc = driver.wait(900)
    finally:
        if driver.poll() is None:
            driver.kill()
    follower.join(10)
    log = "".join(lines)
    assert rc == 0, log[-4000:]
    assert set(killed) == {"extract", "dedup"}, log[-3000:]
    assert all(len(pids) > 2 for pids in killed.values()), killed     # raylet and workers, not just `ray start`
    # the run wrote nothing on any node's disk: the output is in the bucket only
    listed = s3.list_objects_v2(Bucket="cluster-corpus", Prefix="run/manifests/")
    assert listed["KeyCount"] > 0
    # the same corpus as the local run of the same crawl, stage by stage
    local_out, _ = crawl_extract
    for stage in ("extract", "dedup", "quality"):
        assert doc_set(out, stage) == doc_set(local_out, stage), stage
    copies = lambda o: sorted((d["id"], d["copy"], d["text"]) for d in read_shards(o, "remix"))
    assert copies(out) == copies(local_out)
    counts = lambda o: sorted((d["id"], d["n_tokens"]) for d in read_shards(o, "tokenize"))
    assert counts(out) == counts(local_out)
    assert (_read(out, "tokenize/tokenizer.json") == (Path(local_out) / "tokenize" / "tokenizer.json").read_bytes())
    # status, query and verify read the bucket
    for args, expect in ((["status"], "tokenize"),
                         (["query", "SELECT count(*) AS n FROM docs_remix"], str(len(read_shards(out, "remix")))),
                         (["verify", "--deep"], "match their manifest rows")):
        r = subprocess.run(curate_cmd() + args + ["--output", out], env=env, capture_output=True, text=True,
                           timeout=300, cwd=REPO)
        assert r.returncode == 0 and expect in r.stdout, r.stdout + r.stderr
    # a batch job on the same head, same kind of paths
    demo = DATA.parent / "data" / "crawl" / "CC-MAIN-2024-26"
    job_in = _upload(s3, demo, "cluster-crawl", "job/CC-MAIN-2024-26")
    ray_cli = shutil.which("ray", path=env["PATH"])
    job_env = dict(env, RAY_AUTH_MODE="token")
    deadline = time.time() + 90
    while True:
        job = subprocess.run([ray_cli, "job", "submit", "--address", dashboard, "--"] + curate_cmd() +
                             ["run", "--input", job_in.rsplit("/", 1)[0], "--output", "s3://cluster-corpus/job",
                              "--until", "extract", "--no-report"],
                             env=job_env, capture_output=True, text=True, timeout=600)
        if "No available agent" not in job.stderr or time.time() > deadline:
            break
        time.sleep(2)
    assert job.returncode == 0 and "succeeded" in job.stdout + job.stderr, job.stdout[-3000:] + job.stderr[-3000:]
    assert doc_set("s3://cluster-corpus/job") == {d for d in doc_set(local_out) if d[0] in
                                          {x["id"] for x in read_shards(local_out, "extract")
                                           if x["dump"] == "CC-MAIN-2024-26"}}
    # the same S3 paths as the run above, as a job: every unit found done, nothing rewritten
    again = subprocess.run([ray_cli, "job", "submit", "--address", dashboard, "--"] + curate_cmd() +
                           ["run", "--input", src, "--output", out, "--no-report"],
                           env=job_env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "6 units: 6 already done, 0 to run" in again.stdout + again.stderr


def _read(out: str, rel: str) -> bytes:
    from curate.pipeline.storage import location
    return (location(out) / rel).read_bytes()
