"""Output in object storage (issue 10), on a moto S3 server on loopback: the whole
pipeline to s3:// equals a local run; the lock object (run id + lease, conditional
create) refuses a second driver and is taken over when its lease has ended; publication
is fenced; a deleted shard is found by verify and redone by a rerun; the config file
itself may be an s3:// object."""
from __future__ import annotations

import datetime
import os
import subprocess

import pytest

from conftest import REPO, curate_cmd, doc_set, read_shards, run_stages, s3_server
from curate.manifests.manifest import read_rows


@pytest.fixture(scope="module")
def s3():
    """(environment for subprocesses, boto3 client); this process reads the buckets too."""
    with s3_server("objstore-out", "objstore-cfg") as server:
        yield server


def _curate(env, *args, ok=(0,)):
    r = subprocess.run(curate_cmd() + list(args), env=env, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert r.returncode in ok, r.stdout[-2000:] + r.stderr[-3000:]
    return r


def test_pipeline_to_object_storage_equals_a_local_run_and_repairs(s3, ray_address, demo_corpus, tmp_path):
    env, client = s3
    out = "s3://objstore-out/demo"
    client.put_object(Bucket="objstore-cfg", Key="run.yaml",
                      Body=f"input: {demo_corpus}\noutput: {out}\nray:\n  num_cpus: 2\n".encode())
    _curate(env, "run", "--config", "s3://objstore-cfg/run.yaml", "--no-report", "--quiet")
    local = tmp_path / "local"
    run_stages(ray_address, demo_corpus, local)
    for stage in ("extract", "langid", "dedup", "quality", "decontaminate"):
        assert doc_set(out, stage) == doc_set(local, stage), stage
    copies = lambda o: sorted((d["id"], d["copy"], d["text"]) for d in read_shards(o, "remix"))
    assert copies(out) and copies(out) == copies(local)
    # nothing was written beside the process: no ./s3: folder, no lock left behind
    assert not (REPO / "s3:").exists()
    assert "Contents" not in client.list_objects_v2(Bucket="objstore-out", Prefix="demo/.curate.lock")
    # a shard deleted from the bucket: verify names it and marks it stale, a rerun redoes it
    row = next(iter(read_rows(out, "quality").values()))
    client.delete_object(Bucket="objstore-out", Key=f"demo/{row.path}")
    r = _curate(env, "verify", "--output", out, ok=(1,))
    assert row.path in r.stdout and "missing" in r.stdout
    _curate(env, "run", "--config", "s3://objstore-cfg/run.yaml", "--no-report", "--quiet")
    assert doc_set(out, "quality") == doc_set(local, "quality")
    assert "match their manifest rows" in _curate(env, "verify", "--deep", "--output", out).stdout
    # status and query read the bucket
    assert "tokenize" in _curate(env, "status", "--output", out).stdout
    q = _curate(env, "query", "SELECT count(*) AS n FROM rejects WHERE stage = 'dedup'", "--output", out,
                "--format", "csv").stdout
    assert q.splitlines()[1] == str(len(read_shards(local, "dedup", kind="rejects")))


def test_the_lock_object_refuses_a_second_driver_and_expires(s3, demo_corpus):
    from curate.pipeline.config import config_from_dict
    from curate.pipeline.registry import STAGES
    from curate.pipeline.runner import RunError, output_lock, plan_pipeline
    from curate.pipeline.stage import LOCK_FILE, execute_unit
    from curate.pipeline.storage import location
    out = location("s3://objstore-out/locked")
    lock = out / LOCK_FILE
    with output_lock(out, lease_s=30) as run_id:
        held = lock.read_text()
        assert held.startswith(run_id) and "lease_until" in held
        with pytest.raises(RunError, match="in use by another curate run"):
            with output_lock(out, lease_s=30):
                pass
        # a worker of this run publishes; a worker of another run is fenced off
        cfg = config_from_dict({"input": str(demo_corpus), "output": str(out), "order": ["extract"]})
        unit = plan_pipeline(cfg)["extract"][0]
        fenced = execute_unit(STAGES["extract"], cfg.settings("extract"), unit, out, run_id="someone-else")
        assert fenced.status == "failed" and "not published" in fenced.error
        assert read_rows(out, "extract") == {} and not (out / unit.out_path).exists()
        done = execute_unit(STAGES["extract"], cfg.settings("extract"), unit, out, run_id=run_id)
        assert done.status == "done" and (out / unit.out_path).exists() and set(read_rows(out, "extract")) == {unit.key}
    assert not lock.exists()                    # released
    # a killed driver's lock: refused while its lease runs, taken over once it has ended
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=5)
    future = past + datetime.timedelta(hours=1)
    lock.write_text(f"deadbeef pid 1 on elsewhere since x lease_until {future.isoformat(timespec='seconds')}\n")
    with pytest.raises(RunError, match="deadbeef"):
        with output_lock(out, lease_s=30):
            pass
    lock.write_text(f"deadbeef pid 1 on elsewhere since x lease_until {past.isoformat(timespec='seconds')}\n")
    with output_lock(out, lease_s=30) as run_id:
        assert lock.read_text().startswith(run_id)


def test_a_killed_run_on_object_storage_reruns_to_the_same_corpus(s3, ray_address, demo_corpus, tmp_path):
    """SIGKILL the driver mid-run (its lock object stays, with its lease); the rerun waits
    for the lease to end, takes the output over and finishes with the same documents,
    none twice."""
    import signal
    import time
    env, client = s3
    out = "s3://objstore-out/killed"
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"input: {demo_corpus}\noutput: {out}\nray:\n  num_cpus: 2\nstorage:\n  lock_lease_s: 10\n")
    proc = subprocess.Popen(curate_cmd() + ["run", "--config", str(cfg), "--no-report"], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    for line in proc.stdout:                        # killed once dedup has started
        if line.startswith("[dedup]"):
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    assert "Contents" in client.list_objects_v2(Bucket="objstore-out", Prefix="killed/.curate.lock")
    refused = _curate(env, "run", "--config", str(cfg), "--no-report", ok=(2,))
    assert "in use by another curate run" in refused.stderr and "lease_until" in refused.stderr
    time.sleep(11)                                  # the dead driver's lease ends
    _curate(env, "run", "--config", str(cfg), "--no-report", "--quiet")
    local = tmp_path / "local"
    run_stages(ray_address, demo_corpus, local)
    for stage in ("extract", "dedup", "quality"):
        assert doc_set(out, stage) == doc_set(local, stage), stage
    assert "match their manifest rows" in _curate(env, "verify", "--output", out).stdout


def test_object_paths_behave_like_the_paths_curate_uses(s3):
    from curate.pipeline.storage import ObjectPath, location, rmtree
    root = location("s3://objstore-out//paths/")
    assert isinstance(root, ObjectPath) and str(root) == "s3://objstore-out/paths"
    assert location("rel/dir") == __import__("pathlib").Path("rel/dir")
    for key in ("a/x.parquet", "a/y.parquet", "a/sub/z.parquet", "b.txt"):
        (root / key).write_bytes(key.encode())
    assert [p.name for p in (root / "a").glob("*.parquet")] == ["x.parquet", "y.parquet"]
    assert sorted(p.name for p in root.glob("**/*.parquet")) == ["x.parquet", "y.parquet", "z.parquet"]
    assert (root / "a" / "sub" / "z.parquet").parent == root / "a" / "sub"
    assert (root / "a" / "x.parquet").relative_to(root) == "a/x.parquet"
    assert (root / "a" / "x.parquet").stem == "x" and (root / "a" / "x.parquet").suffix == ".parquet"
    assert root.listing() == {"a/x.parquet": 11, "a/y.parquet": 11, "a/sub/z.parquet": 15, "b.txt": 5}
    assert (root / "a").is_dir() and (root / "b.txt").is_file() and not (root / "nope").exists()
    assert (root / "b.txt").read_text() == "b.txt" and (root / "b.txt").stat().st_size == 5
    with pytest.raises(FileNotFoundError):
        (root / "nope").read_bytes()
    (root / "nope").unlink(missing_ok=True)
    rmtree(root / "a")
    assert not list((root / "a").glob("*.parquet")) and (root / "b.txt").exists()


# -- issue 22: a paused driver must not harm the run that took over ------------------------------

def test_a_fenced_worker_never_deletes_what_the_new_owner_published(s3, demo_corpus):
    # A's fenced workers, giving up, deleted the final shard and rejects keys of their units,
    # which B had just published
    from curate.manifests.verify import damage
    from curate.pipeline.config import config_from_dict
    from curate.pipeline.registry import STAGES
    from curate.pipeline.runner import output_lock, plan_pipeline
    from curate.pipeline.stage import execute_unit
    from curate.pipeline.storage import location
    out = location("s3://objstore-out/fenced")
    cfg = config_from_dict({"input": str(demo_corpus), "output": str(out), "order": ["extract"]})
    unit = plan_pipeline(cfg)["extract"][0]
    with output_lock(out, lease_s=30) as run_b:
        done = execute_unit(STAGES["extract"], cfg.settings("extract"), unit, out, run_id=run_b)
        stale = execute_unit(STAGES["extract"], cfg.settings("extract"), unit, out, run_id="paused-run-a")
        assert stale.status == "failed" and "not published" in stale.error
        row = read_rows(out, "extract")[unit.key]
        assert row.fingerprint == done.fingerprint and damage(out, row, deep=True) is None


def test_a_driver_that_lost_its_lease_stops_saying_so(s3, demo_corpus):
    import time
    from curate.pipeline.config import config_from_dict
    from curate.pipeline.runner import RunError, Runner, lease_lost, output_lock
    from curate.pipeline.stage import LOCK_FILE
    from curate.pipeline.storage import location
    out = location("s3://objstore-out/lost")
    with output_lock(out, lease_s=1.5) as run_a:
        assert lease_lost(run_a) is None
        (out / LOCK_FILE).write_text("run-b pid 2 on elsewhere since x lease_until 2999-01-01T00:00:00+00:00\n")
        time.sleep(1.5)
        assert "took the output over" in lease_lost(run_a)
        runner = Runner(config_from_dict({"input": str(demo_corpus), "output": str(out)}))
        runner.run_id = run_a
        with pytest.raises(RunError, match="no longer owns the output"):
            runner._check_lease()
    assert (out / LOCK_FILE).read_text().startswith("run-b")      # the new owner's lock stays


@pytest.mark.slow
def test_a_paused_driver_leaves_the_run_that_took_over_complete(s3, ray_address, demo_corpus, tmp_path):
    """kill -STOP run A during extract, wait past its lease, run B to the end, kill -CONT A:
    B's output is complete and verify --deep clean; A stops, saying another run took over."""
    import signal
    import time
    _, client = s3
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}    # Ray's token settings too
    out = "s3://objstore-out/paused"
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"input: {demo_corpus}\noutput: {out}\nstorage:\n  lock_lease_s: 10\n")
    # A on an embedded Ray of its own: a stopped driver keeps its leased workers (and their
    # CPUs) from a shared cluster, which is Ray's affair, not this test's
    a = subprocess.Popen(curate_cmd() + ["run", "--config", str(cfg), "--no-report"],
                         env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True)
    try:
        for line in a.stdout:
            if line.startswith("[extract] 1/"):
                break
        os.kill(a.pid, signal.SIGSTOP)
        time.sleep(14)                                  # past A's lease
        # B on an embedded Ray too: the session Ray's workers were started without the S3 endpoint
        _curate(env, "run", "--config", str(cfg), "--no-report", "--quiet")
    finally:
        os.kill(a.pid, signal.SIGCONT)
    rest, _ = a.communicate(timeout=300)
    assert a.returncode != 0 and "no longer owns the output" in rest, rest[-3000:]
    assert "match their manifest rows" in _curate(env, "verify", "--deep", "--output", out).stdout
    status = _curate(env, "status", "--output", out).stdout
    assert all(line.split()[1] == line.split()[2] for line in status.splitlines()[2:9]), status
    local = tmp_path / "local"
    run_stages(ray_address, demo_corpus, local)
    for stage in ("extract", "dedup", "quality", "decontaminate"):
        assert doc_set(out, stage) == doc_set(local, stage), stage
    assert sum(r.tokens for r in read_rows(out, "tokenize").values()) == sum(
        r.tokens for r in read_rows(local, "tokenize").values())
